package tftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"pxed/internal/lograte"
)

// ErrServerClosed is returned by Serve after Close or Shutdown.
var ErrServerClosed = errors.New("tftp: server closed")

// Server is a read-only TFTP server. The zero value serves nothing (every
// request gets "file not found"); set Handler. Fields must not change once
// Serve has been called.
type Server struct {
	Handler Handler
	Logger  *slog.Logger  // nil discards
	OnStart func(Request) // optional; called when a transfer is accepted
	// OnDone is optional; it is called once per read request that got an
	// answer, when it ends: refused requests (Err set) and transfers.
	OnDone        func(Transfer)
	Timeout       time.Duration // initial retransmit timeout if client sets none; 0 => 1s
	Retries       int           // 0 => 5; exponential backoff between retries
	MaxBlksize    int           // 0 => 65464 (RFC 2348 upper bound); min 8; also clamped to the path MTU
	MaxWindowsize int           // 0 => 64 (RFC 7440)
	// WindowBytes caps windowsize so that a window fits the client's socket
	// receive buffer at the granted blksize: 0 => DefaultWindowBytes; < 0 => no cap.
	WindowBytes int
	// DisableGSO sends windows one datagram per system call instead of
	// batching them with UDP GSO (used automatically where GSO fails).
	DisableGSO bool
	// DisableSharedPort serves each lockstep (windowsize 1) transfer from
	// its own socket and goroutine instead of the shared lockstep engine:
	// one ephemeral port per local address for all of them, batched
	// recvmmsg/sendmmsg (lockstep.go).
	DisableSharedPort bool
	// EngineShards is how many goroutines and sockets (on one port) the
	// lockstep engine of a local address runs, each serving the transfers
	// of a share of the client ports (lockstep_shard.go): 0 or 1 => one;
	// at most 16. More than one has not been measured faster yet.
	EngineShards int
	// CacheMax is the largest file (an *os.File from the Handler) whose
	// content concurrent transfers share in memory, read once while any
	// transfer of it runs: 0 => DefaultCacheMax; < 0 => every block is
	// read from the file.
	CacheMax int64

	// MaxTransfers is how many transfers run at once in total: 0 =>
	// DefaultMaxTransfers (1000); < 0 => no limit. Each holds a socket and,
	// with Dir, an open file: keep the open file limit well above twice this.
	MaxTransfers int
	// MaxPerClient is how many transfers run at once per client IP address
	// (whatever its ports): 0 => DefaultMaxPerClient (64); < 0 => no limit.
	MaxPerClient int
	// QueueLen is how many read requests wait for a slot when a limit is
	// reached: 0 => DefaultQueueLen (4096); < 0 => none. A queued request
	// holds no socket. Past it a request is refused at once with ERROR 0
	// "server busy: ...". When a slot frees, the oldest request whose client
	// is under MaxPerClient starts.
	QueueLen int
	// QueueWait is the longest a request waits in the queue before it is
	// refused with ERROR 0 "server busy: ...": 0 => DefaultQueueWait (30s).
	QueueWait time.Duration
	// MaxTimeout is the largest RFC 2349 timeout option acknowledged; a
	// larger one is left out of the OACK and Timeout applies: 0 =>
	// DefaultMaxTimeout (10s); < 0 => RFC 2349's 255 s. Whatever the timeout,
	// a client that acknowledges nothing is given up after 4 timeouts (at
	// least 5 s), not after the whole Retries schedule.
	MaxTimeout time.Duration
	// Multicast, when set, serves RFC 2090 multicast requests and PXE MTFTP
	// (ServeMTFTP) as multicast.go describes; nil: unicast only.
	Multicast *Multicast

	mu        sync.Mutex
	closed    bool
	listeners map[net.PacketConn]struct{}
	active    map[netip.AddrPort]*transfer
	engines   map[netip.Addr]*engineGroup // lockstep engines by local address
	adm       admission
	wg        sync.WaitGroup
	logLimit  lograte.Limiter // refusals by a limit, silent clients

	malformed, refused, ok, failed, aborted, bytes, activeN atomic.Int64
	queuedN, busy, timeoutClamped, peak                     atomic.Int64
	resent                                                  atomic.Int64
	acks                                                    atomic.Int64 // ACKs of unicast transfers (Acks)
	sessions                                                map[mcKey]*mcSession
	mcActive, mcSessions, mcBytes                           atomic.Int64
	noGSO                                                   atomic.Bool // GSO failed once: stop trying
	noNowait                                                atomic.Bool // preadv2 RWF_NOWAIT refused: plain preadv
	cache                                                   fileCache
}

// Stats are the server's counters since it was created.
type Stats struct {
	Malformed        int64 // datagrams dropped: truncated, unknown opcode, bad strings
	Refused          int64 // read requests answered with an ERROR (not found, access, WRQ, options)
	TransfersOK      int64 // transfers whose last block was acknowledged
	TransfersFailed  int64 // transfers that timed out or failed to read
	TransfersAborted int64 // transfers the client ended with an ERROR packet
	Bytes            int64 // payload bytes acknowledged by clients
	Active           int64 // transfers in progress
	PeakActive       int64 // most transfers in progress at once
	Queued           int64 // read requests waiting for a slot now
	// Busy counts read requests refused with "server busy" (not counted in
	// Refused): queue full, QueueWait over, or no socket for the transfer.
	Busy int64
	// TimeoutClamped counts timeout options above MaxTimeout, not acknowledged.
	TimeoutClamped int64
	Resent         int64 // DATA packets sent again after a timeout

	MulticastActive   int64 // multicast sessions running
	MulticastSessions int64 // multicast sessions started
	MulticastBytes    int64 // DATA payload bytes multicast sessions sent (each datagram once)
}

// InProgress returns the transfers running, waiting in the admission queue
// or multicasting now: three atomic loads, cheap enough to ask per HTTP
// chunk (the HTTP server yields to TFTP while this is above 0).
func (s *Server) InProgress() int64 {
	return s.activeN.Load() + s.queuedN.Load() + s.mcActive.Load()
}

// Acks returns how many ACKs unicast transfers have received so far: an
// atomic load, cheap enough to ask per HTTP chunk. While transfers run, a
// count that stopped moving means none of them is making progress (their
// clients went silent or their packets are lost): the HTTP server yields
// to TFTP only while it moves.
func (s *Server) Acks() int64 { return s.acks.Load() }

// MulticastBytes returns the DATA payload bytes multicast sessions sent so
// far (Stats.MulticastBytes), one atomic load.
func (s *Server) MulticastBytes() int64 { return s.mcBytes.Load() }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Malformed:        s.malformed.Load(),
		Refused:          s.refused.Load(),
		TransfersOK:      s.ok.Load(),
		TransfersFailed:  s.failed.Load(),
		TransfersAborted: s.aborted.Load(),
		Bytes:            s.bytes.Load(),
		Active:           s.activeN.Load(),
		PeakActive:       s.peak.Load(),
		Queued:           s.queuedN.Load(),
		Busy:             s.busy.Load(),
		TimeoutClamped:   s.timeoutClamped.Load(),
		Resent:           s.resent.Load(),

		MulticastActive:   s.mcActive.Load(),
		MulticastSessions: s.mcSessions.Load(),
		MulticastBytes:    s.mcBytes.Load(),
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) timeout() time.Duration {
	if s.Timeout <= 0 {
		return time.Second
	}
	return s.Timeout
}

func (s *Server) cacheMax() int64 {
	if s.CacheMax == 0 {
		return DefaultCacheMax
	}
	return s.CacheMax
}

func (s *Server) retries() int {
	if s.Retries <= 0 {
		return 5
	}
	return s.Retries
}

// ListenAndServe listens on the UDP address addr and serves it.
func (s *Server) ListenAndServe(addr string) error {
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("tftp: listen %s: %w", addr, err)
	}
	return s.Serve(conn)
}

// Serve answers requests arriving on conn until conn is closed or Close or
// Shutdown is called; it closes conn when it returns. Each transfer runs in its
// own goroutine from its own ephemeral port (RFC 1350 §4), within the limits
// MaxTransfers and MaxPerClient; requests over them wait in a queue (QueueLen,
// QueueWait) or get ERROR 0 "server busy". Requests still queued from conn
// when Serve returns are refused with "server shutting down".
func (s *Server) Serve(conn net.PacketConn) error {
	return s.listen(conn, netip.IPv6Unspecified(), 65536, "read request", func() { s.dropQueued(conn) },
		func(dst netip.Addr, from netip.AddrPort, b []byte) { s.handleRequest(conn, dst, from, b) })
}

// listen reads the datagrams arriving on conn until reading fails or the
// server closes (then ErrServerClosed) and hands each to handle with its
// destination address: IP_PKTINFO's when conn listens on a wildcard
// address, else conn's own, else unknown. The buffer (size bytes) is
// reused: handle must not keep b. conn is registered so Close ends the
// read; when listen returns it calls done (if set) and closes conn. what
// names the reads in errors.
func (s *Server) listen(conn net.PacketConn, unknown netip.Addr, size int, what string, done func(),
	handle func(dst netip.Addr, from netip.AddrPort, b []byte)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = make(map[net.PacketConn]struct{})
	}
	s.listeners[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		if done != nil {
			done()
		}
		s.mu.Lock()
		delete(s.listeners, conn)
		s.mu.Unlock()
		conn.Close()
	}()

	local := unknown
	var udp *net.UDPConn
	pktinfo := false
	if u, ok := conn.(*net.UDPConn); ok {
		udp = u
		if la, ok := u.LocalAddr().(*net.UDPAddr); ok {
			local = la.AddrPort().Addr().Unmap()
			if local.IsUnspecified() {
				pktinfo = enablePktinfo(u, local.Is4()) == nil
			}
		}
	}
	buf := make([]byte, size)
	oob := make([]byte, 128)
	for {
		var (
			n, oobn int
			from    netip.AddrPort
			err     error
		)
		if udp != nil {
			n, oobn, _, from, err = udp.ReadMsgUDPAddrPort(buf, oob)
		} else {
			var a net.Addr
			n, a, err = conn.ReadFrom(buf)
			if ua, ok := a.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
		}
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: %s: %w", what, err)
		}
		dst := local
		if pktinfo {
			if d, ok := parsePktinfo(oob[:oobn]); ok {
				dst = d
			}
		}
		handle(dst, from, buf[:n])
	}
}

// handleRequest is the listener's per-datagram step: parse, then start a
// transfer or answer with an ERROR. It logs at most once.
func (s *Server) handleRequest(conn net.PacketConn, local netip.Addr, from netip.AddrPort, b []byte) {
	log := s.logger()
	p, err := ParsePacket(b)
	if err != nil {
		s.malformed.Add(1)
		log.Debug("tftp: dropped malformed packet", "client", from, "len", len(b), "err", err)
		return
	}
	switch p.Op {
	case OpRRQ:
		if local.Is4() {
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		}
		if s.Multicast != nil && s.joinMulticast(local, from, p) {
			return // RFC 2090: served by a multicast session (multicast.go)
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		_, running := s.active[from]
		_, queued := s.adm.waiting[from]
		if running || queued {
			// The client resent its RRQ before our first reply arrived:
			// the running transfer's own retransmission answers it, or
			// the queued request will.
			s.mu.Unlock()
			log.Debug("tftp: duplicate read request ignored", "client", from, "file", p.Filename, "queued", queued)
			return
		}
		now := time.Now()
		t := &transfer{srv: s, local: local, peer: from, req: p, lconn: conn}
		ok := s.admitLocked(t, now)
		s.mu.Unlock()
		if !ok {
			s.refuseBusy(t, now, "queue full", msgBusyQueue)
		}
	case OpWRQ:
		s.refused.Add(1)
		log.Info("tftp: write request refused", "client", from, "file", p.Filename)
		s.reply(conn, from, ErrCodeAccess, "read-only server")
	case OpERROR:
		log.Debug("tftp: error packet to listener ignored", "client", from, "code", p.ErrCode, "msg", p.ErrMsg)
	default:
		log.Debug("tftp: unexpected packet to listener", "client", from, "op", p.Op)
		s.reply(conn, from, ErrCodeIllegalOperation, "expected RRQ")
	}
}

func (s *Server) reply(conn net.PacketConn, to netip.AddrPort, code ErrorCode, msg string) {
	if conn == nil {
		return
	}
	pkt := appendError(nil, code, msg)
	if _, err := conn.WriteTo(pkt, net.UDPAddrFromAddrPort(to)); err != nil {
		s.logger().Debug("tftp: send error", "client", to, "err", err)
	}
}

// Close stops accepting requests and ends in-flight transfers at once (they
// report an error to OnDone); queued requests are refused with ERROR 0
// "server shutting down" (OnDone gets an error wrapping ErrServerClosed).
// Serve returns ErrServerClosed.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.dropQueued(nil)
	s.mu.Lock()
	var errs []error
	for l := range s.listeners {
		errs = append(errs, l.Close())
	}
	for _, t := range s.active {
		t.cancel()
	}
	s.mu.Unlock()
	s.closeSessions()
	s.wg.Wait()
	s.closeEngines()
	return errors.Join(errs...)
}

// Shutdown stops accepting requests, refuses queued ones as Close does and
// waits for in-flight transfers to end on their own; if ctx ends first it
// closes them as Close does.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.dropQueued(nil)
	s.mu.Lock()
	var errs []error
	for l := range s.listeners {
		errs = append(errs, l.Close())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.closeEngines()
	case <-ctx.Done():
		errs = append(errs, s.Close(), ctx.Err())
	}
	return errors.Join(errs...)
}

func (s *Server) transferDone(t *transfer) {
	s.mu.Lock()
	if s.active[t.peer] == t {
		delete(s.active, t.peer)
		s.releaseLocked(t.peer.Addr())
	}
	s.mu.Unlock()
	s.activeN.Add(-1)
	s.wg.Done()
}

// enablePktinfo asks the kernel for each request's destination address, so a
// transfer on a wildcard listener answers from the address the client used.
func enablePktinfo(c *net.UDPConn, v4 bool) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("tftp: pktinfo: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v4 {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
			return
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVPKTINFO, 1)
		// Dual-stack sockets also report IPv4 destinations with IP_PKTINFO.
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_PKTINFO, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("tftp: pktinfo: %w", err)
	}
	return nil
}

// parsePktinfo extracts the destination address from IP_PKTINFO/IPV6_PKTINFO.
func parsePktinfo(oob []byte) (netip.Addr, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_PKTINFO && len(m.Data) >= 12:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			return netip.AddrFrom4([4]byte(m.Data[8:12])), true
		case m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_PKTINFO && len(m.Data) >= 16:
			return netip.AddrFrom16([16]byte(m.Data[:16])).Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// pathMaxBlksize returns the largest blksize whose datagram fits the route MTU
// towards client (RFC 2348 asks for blocks that avoid IP fragmentation), or
// MaxBlksize if it cannot tell. A connected UDP socket sends nothing.
func pathMaxBlksize(local netip.Addr, client netip.AddrPort) int {
	la := &net.UDPAddr{}
	if !local.IsUnspecified() {
		la.IP = local.AsSlice()
	}
	c, err := net.DialUDP("udp", la, net.UDPAddrFromAddrPort(client))
	if err != nil {
		return MaxBlksize
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return MaxBlksize
	}
	mtu, hdr := 0, 20
	v4 := client.Addr().Unmap().Is4()
	rc.Control(func(fd uintptr) {
		if v4 {
			mtu, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU)
		} else {
			hdr = 40
			mtu, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_MTU)
		}
	})
	if err != nil || mtu <= 0 {
		return MaxBlksize
	}
	return min(max(mtu-hdr-8-4, MinBlksize), MaxBlksize)
}

func isMode(mode string) (octet bool, refuse string) {
	switch strings.ToLower(mode) {
	case "octet", "netascii": // netascii is served as octet: boot files are binary
		return true, ""
	case "mail":
		return false, "mail mode not supported"
	}
	return false, fmt.Sprintf("unknown mode %q", mode)
}
