package tftp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pxed/internal/mmsg"
)

// maxRTO caps the exponential retransmission backoff.
const maxRTO = 60 * time.Second

// transfer is one read request being served from its own socket (its TID).
type transfer struct {
	srv   *Server
	local netip.Addr
	peer  netip.AddrPort
	req   Packet
	rc    syscall.RawConn // the transfer socket, for readWait
	frc   syscall.RawConn // the file, when an *os.File, for preadv
	iov   []unix.Iovec    // preadv's buffers, reused
	pr    preadCall       // the preadv in flight
	prFn  func(fd uintptr) bool
	rsa   unix.RawSockaddrAny
	mm    mmsgState      // sendmmsg's vectors, where GSO is off
	lconn net.PacketConn // the listener the request came in on, for "server busy"

	acked  atomic.Bool // an ACK came: the client is alive (watchFirstAck)
	silent atomic.Bool // no ACK within firstAckWait: the socket was closed

	mu       sync.Mutex
	conn     *net.UDPConn
	ls       *lsXfer // in the lockstep engine eng instead of on conn
	eng      *engine
	canceled bool
}

// cancel ends the transfer from another goroutine (Server.Close).
func (t *transfer) cancel() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.canceled = true
	if t.conn != nil {
		t.conn.Close()
	}
	if t.ls != nil {
		t.eng.stop(t.ls)
	}
}

func (t *transfer) run() {
	s := t.srv
	defer s.transferDone(t)
	tr := Transfer{
		Filename: t.req.Filename, Client: t.peer, Blksize: DefaultBlksize,
		Windowsize: 1, Size: -1, Start: time.Now(),
	}
	tr.Err = t.serve(&tr)
	tr.Dur = time.Since(tr.Start)
	s.bytes.Add(tr.Bytes)
	s.resent.Add(tr.Resent)
	log := s.logger()
	attrs := []any{"file", tr.Filename, "client", tr.Client, "bytes", tr.Bytes,
		"blksize", tr.Blksize, "windowsize", tr.Windowsize, "resent", tr.Resent, "dur", tr.Dur}
	switch {
	case tr.Aborted:
		s.aborted.Add(1)
		log.Debug("tftp: transfer aborted by client", append(attrs, "err", tr.Err)...)
	case tr.Err == nil:
		s.ok.Add(1)
		log.Info("tftp: transfer done", attrs...)
	case errors.Is(tr.Err, errRefused):
		// Once per interval per client address: a flood of requests for
		// missing files must not flood the log (each is counted and, in
		// pxed, an event on the machine's timeline).
		if ok, n := s.logLimit.Allow("refused " + tr.Client.Addr().String()); ok {
			log.Info("tftp: request refused", append(attrs, "err", tr.Err, "suppressed", n)...)
		} else {
			log.Debug("tftp: request refused", append(attrs, "err", tr.Err)...)
		}
	case errors.Is(tr.Err, ErrBusy):
		// Counted and logged (at most once per interval) by socketBusy.
	case errors.Is(tr.Err, errNoAck):
		// A flood of RRQs that never ACK would log a line each.
		s.failed.Add(1)
		if ok, n := s.logLimit.Allow("noack"); ok {
			log.Warn("tftp: transfer failed: client never acknowledged", append(attrs, "err", tr.Err, "suppressed", n)...)
		} else {
			log.Debug("tftp: transfer failed: client never acknowledged", append(attrs, "err", tr.Err)...)
		}
	default:
		s.failed.Add(1)
		log.Warn("tftp: transfer failed", append(attrs, "err", tr.Err)...)
	}
	if s.OnDone != nil {
		s.OnDone(tr)
	}
}

// errRefused marks requests answered with an ERROR before any data was sent.
var errRefused = errors.New("request refused")

// serve answers the request and runs the transfer; it returns its outcome.
func (t *transfer) serve(tr *Transfer) error {
	s := t.srv
	// A lockstep transfer runs in the engine's shared socket (lockstep.go);
	// the others, and all where the engine is off, on their own.
	eng := s.engineFor(t.local, t.peer)
	var conn *net.UDPConn
	if eng == nil {
		var err error
		if conn, err = t.open(); err != nil {
			return err
		}
		defer conn.Close()
	}
	var err error
	reply := func(b []byte) {
		if conn != nil {
			conn.WriteToUDPAddrPort(b, t.peer)
		} else {
			eng.conn.WriteToUDPAddrPort(b, t.peer)
		}
	}
	refuse := func(code ErrorCode, msg string, err error) error {
		s.refused.Add(1)
		reply(appendError(nil, code, msg))
		return fmt.Errorf("tftp: %q: %w: %w", t.req.Filename, errRefused, err)
	}
	if _, why := isMode(t.req.Mode); why != "" {
		return refuse(ErrCodeIllegalOperation, why, errors.New(why))
	}
	req := Request{Filename: t.req.Filename, Client: t.peer, Local: t.local, Options: OptionMap(t.req.Options)}
	var (
		f    File
		size int64
	)
	if s.Handler == nil {
		err = ErrNotFound
	} else {
		f, size, err = s.Handler(req)
	}
	if err != nil {
		code, msg := errorCodeFor(err)
		return refuse(code, msg, err)
	}
	defer f.Close()
	if mf, release, ok := s.cache.open(f, size, s.cacheMax()); ok {
		defer release()
		f = mf
	}
	tr.Size = size
	lim := Limits{MaxBlksize: s.MaxBlksize, MaxWindowsize: s.MaxWindowsize, Size: size, WindowBytes: s.WindowBytes,
		MaxTimeout: s.maxTimeout()}
	if lim.WindowBytes == 0 {
		lim.WindowBytes = DefaultWindowBytes
	}
	if lim.MaxBlksize <= 0 {
		lim.MaxBlksize = MaxBlksize
	}
	if lim.MaxWindowsize <= 0 {
		lim.MaxWindowsize = DefaultWindowsize
	}
	if v, ok := req.Options[OptBlksize]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > DefaultBlksize {
			lim.MaxBlksize = min(lim.MaxBlksize, pathMaxBlksize(t.local, t.peer))
		}
	}
	neg, err := Negotiate(t.req.Options, lim)
	if err != nil {
		return refuse(ErrCodeOptionNegotiation, err.Error(), err)
	}
	if neg.TimeoutOverMax {
		s.timeoutClamped.Add(1)
	}
	tr.Blksize, tr.Windowsize = neg.Blksize, neg.Windowsize
	if s.OnStart != nil {
		s.OnStart(req)
	}
	if eng != nil && neg.Windowsize == 1 {
		if ok, err := t.serveShared(eng, f, size, neg, tr); ok {
			var pe *PeerError
			if errors.As(err, &pe) {
				tr.Aborted = true
			}
			return err
		}
	}
	if conn == nil {
		if conn, err = t.open(); err != nil {
			return err
		}
		defer conn.Close()
	}
	wait := firstAckWait(cmp.Or(neg.Timeout, s.timeout()))
	watch := t.watchFirstAck(conn, wait)
	err = t.send(conn, f, size, neg, tr)
	watch.Stop()
	if err != nil && !t.acked.Load() && (t.silent.Load() || errors.Is(err, os.ErrDeadlineExceeded)) {
		err = t.noAckErr(err, wait)
	}
	var pe *PeerError
	if errors.As(err, &pe) {
		tr.Aborted = true
	}
	return err
}

// open opens the transfer's own socket (its TID) for the client.
func (t *transfer) open() (*net.UDPConn, error) {
	conn, err := listenTransfer(t.local)
	if err != nil {
		return nil, t.socketBusy(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.canceled {
		conn.Close()
		return nil, ErrServerClosed
	}
	t.conn = conn
	return conn, nil
}

// send runs the data phase: optional OACK, then windows of DATA blocks
// (RFC 7440; windowsize 1 is RFC 1350 lockstep).
func (t *transfer) send(conn *net.UDPConn, f File, size int64, neg Negotiated, tr *Transfer) error {
	s := t.srv
	rto0 := neg.Timeout
	if rto0 == 0 {
		rto0 = s.timeout()
	}
	retries := s.retries()
	bs := neg.Blksize
	rbuf := make([]byte, 1024)

	// RFC 2347: the OACK is acknowledged by ACK 0.
	if len(neg.Ack) > 0 {
		oack := AppendPacket(nil, Packet{Op: OpOACK, Options: neg.Ack})
		rto := rto0
		for tries := 0; ; {
			if err := t.write(conn, oack); err != nil {
				return err
			}
			a, err := t.recvAck(conn, rbuf, time.Now().Add(rto))
			if err == nil && a == 0 {
				break
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			if err != nil {
				if tries++; tries > retries {
					return fmt.Errorf("tftp: %q: no ACK of OACK after %d tries: %w", t.req.Filename, tries, err)
				}
				rto = min(rto*2, maxRTO)
			}
		}
	}

	ws := uint64(neg.Windowsize)
	seg := 4 + bs
	gso := newGSO(s, ws, seg)
	buf := make([]byte, gso.segs*seg) // one reused buffer: a batch of DATA packets
	base := uint64(1)                 // first unacknowledged block
	var last uint64                   // last block number, 0 while unknown
	lastLen := 0
	if size >= 0 {
		last = uint64(size)/uint64(bs) + 1
		lastLen = int(size % int64(bs))
	}
	// Without a client-chosen timeout (RFC 2349), the retransmission
	// timeout adapts to the measured round trip as TCP's does (RFC 6298:
	// SRTT + 4·RTTVAR, Karn's rule: no samples from resent windows), between
	// minRTO and the configured timeout: a DATA packet lost to a full queue
	// during a boot storm is resent after a fraction of a second, not a
	// whole one.
	est := rttEstimator{max: rto0, adaptive: neg.Timeout == 0}
	rto, tries, resent := est.rto(), 0, false
	progress, idle := time.Now(), idleWait(rto0)
	for {
		sent := time.Now()
		end := base + ws - 1
		if last != 0 && end > last {
			end = last
		}
		for k := base; k <= end; {
			nb := int(min(uint64(gso.segs), end-k+1))
			got, err := t.readBatch(f, buf, k, nb, bs, size) // straight into the packets
			if err != nil {
				conn.WriteToUDPAddrPort(appendError(nil, ErrCodeUndefined, "read error"), t.peer)
				return err
			}
			if full := got / bs; full < nb { // a short block ends the file (RFC 1350 §6)
				nb = full + 1
				last, end, lastLen = k+uint64(full), k+uint64(full), got%bs
			}
			for i := range nb {
				putDataHeader(buf[i*seg:], uint16(k+uint64(i))) // RFC 1350 block numbers roll over to 0
			}
			if resent {
				tr.Resent += int64(nb)
			}
			if err := t.writeBatch(conn, &gso, buf[:4*nb+got], nb, seg); err != nil {
				return err
			}
			k += uint64(nb)
		}
		// Wait for the ACK, but never past the idle bound.
		deadline := time.Now().Add(min(rto, max(time.Until(progress.Add(idle)), time.Millisecond)))
		for {
			a, err := t.recvAck(conn, rbuf, deadline)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// Timeouts shorter than the configured one (adaptive RTO)
				// do not count against Retries: a transfer is as patient
				// as with the fixed timeout, it only retransmits sooner.
				if rto >= est.max {
					if tries++; tries > retries {
						return fmt.Errorf("tftp: %q: no ACK for block %d after %d tries: %w", t.req.Filename, base, tries, err)
					}
				}
				if since := time.Since(progress); since >= idle {
					return fmt.Errorf("tftp: %q: no ACK for block %d for %v: %w", t.req.Filename, base, since.Round(time.Millisecond), err)
				}
				rto, resent = min(rto*2, maxRTO), true
				break // resend the window from base
			}
			if err != nil {
				return err
			}
			// Map the 16-bit ACK onto the window [base-1, end].
			d := uint64(a - uint16(base-1))
			k := base - 1 + d
			if d == 0 || k > end {
				// Duplicate ACK of an acknowledged block, or outside the
				// window: never resend on it (Sorcerer's Apprentice, RFC 1123
				// §4.2.3.1); only a timeout resends.
				continue
			}
			if !resent { // Karn: no round-trip sample from a resent window
				est.sample(time.Since(sent))
			}
			base, tries, resent, rto, progress = k+1, 0, false, est.rto(), time.Now()
			if k == last {
				tr.Bytes = int64(last-1)*int64(bs) + int64(lastLen)
				return nil
			}
			tr.Bytes = int64(k) * int64(bs)
			break // next window; after a gap ACK (k < end) it starts at the gap
		}
	}
}

// readBatch reads nb blocks of bs bytes from block first on into the payload
// slots of buf (4+bs bytes apart) and returns how many bytes it read: fewer
// than nb*bs only at the end of the file. From an *os.File it reads the
// batch with one preadv(2) instead of a pread per block.
func (t *transfer) readBatch(f File, buf []byte, first uint64, nb, bs int, size int64) (int, error) {
	off := int64(first-1) * int64(bs)
	want := int64(nb) * int64(bs)
	if size >= 0 {
		want = max(0, min(want, size-off))
	}
	seg := 4 + bs
	if of, ok := f.(*os.File); ok {
		if t.frc == nil {
			if rc, err := of.SyscallConn(); err == nil {
				t.frc = rc
			}
		}
		if t.frc != nil {
			got, err := t.preadv(buf, bs, off, int(want))
			if err != nil {
				return 0, fmt.Errorf("tftp: read %q at %d: %w", t.req.Filename, off, err)
			}
			return got, nil
		}
	}
	got := 0
	for i := range nb {
		n := int(min(int64(bs), want-int64(got)))
		if n <= 0 {
			break
		}
		m, err := f.ReadAt(buf[i*seg+4:i*seg+4+n], off+int64(got))
		got += m
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("tftp: read %q at %d: %w", t.req.Filename, off+int64(got), err)
		}
		if m < bs {
			break
		}
	}
	return got, nil
}

// preadv reads want bytes of the file from off into the payload slots of buf
// (4+bs bytes apart), as io.ReadFull would: short only at the end of the file.
func (t *transfer) preadv(buf []byte, bs int, off int64, want int) (int, error) {
	got := 0
	for got < want {
		t.iov = t.iov[:0]
		for g := got; g < want; g += bs - g%bs { // the rest of block g/bs, then whole blocks
			i := g / bs
			n := min(bs-g%bs, want-g)
			v := unix.Iovec{Base: &buf[i*(4+bs)+4+g%bs]}
			v.SetLen(n)
			t.iov = append(t.iov, v)
		}
		pos := off + int64(got)
		t.pr = preadCall{lo: uintptr(pos), hi: uintptr(uint64(pos) >> (8*unix.SizeofLong - 1) >> 1),
			nowait: !t.srv.noNowait.Load()}
		if t.prFn == nil {
			t.prFn = t.preadvFD
		}
		err := t.frc.Read(t.prFn)
		n, errno := t.pr.n, t.pr.errno
		switch {
		case err != nil:
			return got, err
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return got, errno
		case n == 0:
			return got, nil // end of file
		}
		got += int(n)
	}
	return got, nil
}

// preadCall is one preadv of transfer.preadv: the offset's two halves, and
// what it read. It lives in the transfer with the function the file's
// RawConn runs (preadvFD, made once), so that a read allocates nothing.
type preadCall struct {
	lo, hi uintptr
	nowait bool
	n      uintptr
	errno  unix.Errno
}

// preadvFD reads the vectors t.iov at t.pr's offset from the file fd.
func (t *transfer) preadvFD(fd uintptr) bool {
	r := &t.pr
	if r.nowait {
		// From the page cache only, as a raw system call: it cannot
		// block, and a syscall.Syscall per window wakes the runtime's
		// monitor thread (sysmon, see recvfrom).
		r.n, _, r.errno = unix.RawSyscall6(unix.SYS_PREADV2, fd, uintptr(unsafe.Pointer(&t.iov[0])), uintptr(len(t.iov)),
			r.lo, r.hi, unix.RWF_NOWAIT)
		if r.errno != unix.EAGAIN && r.errno != unix.EOPNOTSUPP && r.errno != unix.ENOSYS && r.errno != unix.EINVAL {
			return true
		}
		if r.errno == unix.EOPNOTSUPP || r.errno == unix.ENOSYS { // no RWF_NOWAIT here: stop trying
			t.srv.noNowait.Store(true)
		}
	}
	// Not cached: a read that may wait for the disk.
	r.n, _, r.errno = unix.Syscall6(unix.SYS_PREADV, fd, uintptr(unsafe.Pointer(&t.iov[0])), uintptr(len(t.iov)), r.lo, r.hi, 0)
	return true
}

// writeBatch sends nb DATA packets laid out back to back in b, each seg bytes
// but the last: with UDP GSO in one system call, else with sendmmsg(2), else
// one by one.
func (t *transfer) writeBatch(conn *net.UDPConn, g *gsoState, b []byte, nb, seg int) error {
	if nb > 1 && g.on {
		err := t.sendGSO(conn, g, b)
		if err == nil {
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("tftp: %q: %w", t.req.Filename, err)
		}
		switch {
		case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EPERM),
			errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
			return nil // packet loss (a full queue, a firewall, a route): retransmission deals with it
		case errors.Is(err, syscall.ENOPROTOOPT), errors.Is(err, syscall.EOPNOTSUPP):
			// This kernel has no UDP GSO: no transfer tries it again.
			g.on = false
			t.srv.noGSO.Store(true)
			t.srv.logger().Debug("tftp: UDP GSO unavailable, sending with sendmmsg", "client", t.peer, "err", err)
		default:
			// EIO, EINVAL, EMSGSIZE: not on this transfer's path (its
			// device, its MTU); other transfers keep GSO.
			g.on = false
			t.srv.logger().Debug("tftp: UDP GSO unavailable to this client, sending with sendmmsg", "client", t.peer, "err", err)
		}
	}
	if nb > 1 {
		sent, err := t.sendmmsg(conn, &t.mm, b, seg)
		if !errors.Is(err, errNoMMsg) {
			return err
		}
		b = b[sent*seg:]
	}
	for len(b) > 0 {
		n := min(seg, len(b))
		if err := t.write(conn, b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (t *transfer) write(conn *net.UDPConn, b []byte) error {
	if _, err := conn.WriteToUDPAddrPort(b, t.peer); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("tftp: %q: %w", t.req.Filename, err)
		}
		// Transient send errors (ENOBUFS under load) are packet loss:
		// retransmission deals with them.
		t.srv.logger().Debug("tftp: send failed", "client", t.peer, "err", err)
	}
	return nil
}

// recvAck waits until deadline for an ACK from the peer. Datagrams from
// another address get ERROR 5 (RFC 1350 §4) and are otherwise ignored; an
// ERROR from the peer is returned as *PeerError.
func (t *transfer) recvAck(conn *net.UDPConn, rbuf []byte, deadline time.Time) (uint16, error) {
	if err := conn.SetReadDeadline(deadline); err != nil {
		return 0, fmt.Errorf("tftp: set deadline: %w", err)
	}
	for {
		n, from, err := t.readWait(conn, rbuf)
		if err != nil {
			return 0, fmt.Errorf("tftp: %q: wait for ACK: %w", t.req.Filename, err)
		}
		if from != t.peer {
			conn.WriteToUDPAddrPort(appendError(nil, ErrCodeUnknownTID, "unknown transfer ID"), from)
			continue
		}
		if n < 4 {
			t.srv.malformed.Add(1)
			t.srv.logger().Debug("tftp: dropped malformed packet", "client", from, "len", n)
			continue
		}
		switch Opcode(binary.BigEndian.Uint16(rbuf)) {
		case OpACK:
			t.acked.Store(true)
			t.srv.acks.Add(1)
			return binary.BigEndian.Uint16(rbuf[2:]), nil
		case OpERROR:
			p, _ := ParsePacket(rbuf[:n])
			return 0, &PeerError{Code: p.ErrCode, Message: p.ErrMsg}
		default:
			t.srv.malformed.Add(1)
			t.srv.logger().Debug("tftp: unexpected packet during transfer", "client", from, "len", n)
		}
	}
}

// readWait reads one datagram, parking the goroutine in the network poller
// until the socket is readable. It does not poll in a loop first: spinning
// for the ACK (64 non-blocking reads with a yield between them) took the CPU
// the client needs when both share a machine, and cost twice the server CPU
// per byte for a slower transfer (lockstep blksize 1468 on loopback, 2 cores:
// 21 -> 38 MB/s, 27 -> 13 CPU-s/GiB without it).
func (t *transfer) readWait(conn *net.UDPConn, rbuf []byte) (int, netip.AddrPort, error) {
	if t.rc == nil {
		rc, err := conn.SyscallConn()
		if err != nil {
			return conn.ReadFromUDPAddrPort(rbuf)
		}
		t.rc = rc
	}
	var (
		n    int
		from netip.AddrPort
		rerr error
	)
	err := t.rc.Read(func(fd uintptr) bool {
		n, rerr = recvfrom(int(fd), rbuf, &t.rsa)
		if rerr == unix.EAGAIN {
			return false // park until readable
		}
		if rerr == nil {
			from = rawToAddrPort(&t.rsa)
		}
		return true
	})
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	return n, from, rerr
}

// recvfrom reads one datagram without waiting, its source into rsa. It is
// recvfrom(2) without what unix.Recvfrom adds per call: a getsockopt
// SO_PROTOCOL system call (to tell L2TP from UDP) and an allocation. It is
// a raw system call (it never blocks: MSG_DONTWAIT): a syscall.Syscall
// wakes the runtime's monitor thread (sysmon) once per window, which then
// sleeps and wakes in 20 µs steps (internal/mmsg).
func recvfrom(fd int, p []byte, rsa *unix.RawSockaddrAny) (int, error) {
	l := uint32(unix.SizeofSockaddrAny)
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(&l)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawToAddrPort is the IPv4 or IPv6 address and port in rsa.
func rawToAddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	ap, scope := mmsg.AddrPort(rsa)
	ip := ap.Addr().Unmap()
	if scope != 0 && ip.Is6() {
		// A link-local peer (UEFI PXE over IPv6 before its address is
		// configured): its zone, named as net names it, so that it
		// equals the transfer's peer.
		name, _ := mmsg.ZoneName(scope)
		ip = ip.WithZone(name)
	}
	return netip.AddrPortFrom(ip, ap.Port())
}

// minRTO is the least retransmission timeout an adaptive transfer uses (as
// Linux TCP's 200 ms minimum).
const minRTO = 200 * time.Millisecond

// rttEstimator keeps a transfer's smoothed round trip (RFC 6298 §2).
type rttEstimator struct {
	max      time.Duration // configured or negotiated timeout: the ceiling
	adaptive bool          // false: always max
	srtt     time.Duration
	rttvar   time.Duration
}

func (e *rttEstimator) sample(r time.Duration) {
	if !e.adaptive {
		return
	}
	if e.srtt == 0 {
		e.srtt, e.rttvar = r, r/2
		return
	}
	d := e.srtt - r
	if d < 0 {
		d = -d
	}
	e.rttvar = (3*e.rttvar + d) / 4
	e.srtt = (7*e.srtt + r) / 8
}

func (e *rttEstimator) rto() time.Duration {
	if !e.adaptive || e.srtt == 0 {
		return e.max
	}
	return min(max(e.srtt+4*e.rttvar, min(minRTO, e.max)), e.max)
}
