package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/mmsg"
)

// The lockstep engine serves every windowsize-1 transfer of one local
// address from ONE socket (one ephemeral port, the transfers told apart by
// the client's address and port) in ONE goroutine: a recvmmsg(2) reads the
// ACKs that came in for many transfers, a sendmmsg(2) sends each its next
// DATA block. RFC 1350 §4 asks only that a transfer's packets come from one
// port other than 69; clients (EDK II, iPXE, PXE ROMs, atftp, tftp-hpa)
// check exactly that. With a socket and a goroutine per transfer, 500
// lockstep clients cost a netpoller wake-up, a goroutine switch and a
// sendto per block, and the scheduler's spinning threads took CPU the
// clients (on the same machine in bench/tftp.sh) needed.
//
// Windowed transfers (RFC 7440) keep their own socket: they send whole
// windows with UDP GSO or sendmmsg already.

const (
	engineBatch = 64                    // ACKs per recvmmsg
	engineScan  = 10 * time.Millisecond // how often timeouts are checked while transfers run
	engineRbuf  = 516                   // an ACK is 4 bytes; an ERROR's message may be longer
	// engineAhead is how much of a file read from disk (too big for the
	// shared cache) a lockstep transfer reads with one preadv: its next
	// blocks, each in its DATA packet's slot, sent from there. A preadv
	// per block was a quarter of the system calls of a lone transfer.
	engineAhead = 32 << 10
)

// engine is one shard of the lockstep engine of a local address
// (lockstep_shard.go).
type engine struct {
	srv   *Server
	local netip.Addr
	group *engineGroup
	conn  *net.UDPConn
	mc    *mmsg.Conn
	dom   int // the socket's address family
	done  chan struct{}

	mu     sync.Mutex
	added  []*lsXfer   // handed in, not yet started by the loop
	fwd    []fwdPacket // datagrams another shard received for this one's transfers
	cancel bool        // a transfer was canceled: scan now
	dl     time.Time   // the read deadline set on conn
	dead   bool        // the loop ended: take no transfers

	// Owned by the loop.
	live     map[netip.AddrPort]*lsXfer
	xs       []*lsXfer // live, for the timeout scan
	out      []*lsXfer // transfers whose packet goes out with the next flush
	nextScan time.Time
	rbufs    [engineBatch][engineRbuf]byte
	rb       mmsg.Batch // reads into rbufs
	sb       mmsg.Batch // the packets of out
}

// lsXfer is one transfer in the engine. The loop owns its fields once added.
type lsXfer struct {
	t        *transfer
	f        File
	size     int64
	bs       int
	tr       *Transfer
	key      netip.AddrPort
	sa       unix.RawSockaddrAny
	salen    uint32
	pkt      []byte // the packet in flight: the OACK, or DATA block `block` in win
	win      []byte // DATA packets of blocks winFirst on, 4+bs bytes apart
	winN     int    // blocks in win
	winGot   int    // file bytes read into win
	winFirst uint64
	oack     bool // waiting for ACK 0 of the OACK
	block    uint64
	last     uint64 // last block, 0 while unknown
	lastLen  int

	est                   rttEstimator
	rto0, rto             time.Duration
	tries, retries        int
	resent, acked, queued bool
	start, sent, progress time.Time
	firstWait, idle       time.Duration
	idx                   int // in engine.xs

	canceled atomic.Bool
	done     chan error
}

// fwdPacket is a datagram handed from the shard that received it to the
// shard that owns its transfer.
type fwdPacket struct {
	b    []byte
	from netip.AddrPort
}

// engineFor returns the lockstep engine shard that serves peer on local,
// starting the engine if needed; nil if the shared port is off or its socket
// cannot be opened (the transfer then opens its own).
func (s *Server) engineFor(local netip.Addr, peer netip.AddrPort) *engine {
	if s.DisableSharedPort || local.Zone() != "" || local.IsLinkLocalUnicast() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if g := s.engines[local]; g != nil {
		return g.owner(peer)
	}
	conns, err := listenShards(local, s.engineShards())
	if len(conns) == 0 || conns[0] == nil {
		s.logger().Debug("tftp: no shared transfer socket, transfers use their own", "local", local, "err", err)
		return nil
	}
	if err != nil {
		s.logger().Debug("tftp: lockstep engine runs one shard", "local", local, "err", err)
	}
	g := &engineGroup{}
	for _, c := range conns {
		e, err := s.newEngine(local, c)
		if err != nil {
			s.logger().Debug("tftp: no shared transfer socket, transfers use their own", "local", local, "err", err)
			for _, e := range g.shards {
				e.conn.Close()
			}
			for _, c := range conns[len(g.shards):] {
				c.Close()
			}
			return nil
		}
		e.group = g
		g.shards = append(g.shards, e)
	}
	if s.engines == nil {
		s.engines = make(map[netip.Addr]*engineGroup)
	}
	s.engines[local] = g
	for _, e := range g.shards {
		go e.loop()
	}
	return g.owner(peer)
}

// newEngine makes an engine shard of conn, a socket of local; the caller
// runs its loop. conn is closed if it fails.
func (s *Server) newEngine(local netip.Addr, conn *net.UDPConn) (*engine, error) {
	rc, err := conn.SyscallConn()
	var dom int
	var serr error
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			dom, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
			// Room for an ACK from each of many clients, and a DATA block
			// to each in one sendmmsg; best effort (net.core.*mem_max).
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		})
	}
	if err == nil {
		err = serr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tftp: shared transfer socket on %v: %w", local, err)
	}
	mc, err := mmsg.New(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tftp: shared transfer socket on %v: %w", local, err)
	}
	e := &engine{srv: s, local: local, conn: conn, mc: mc, dom: dom, done: make(chan struct{}),
		live: make(map[netip.AddrPort]*lsXfer)}
	e.group = &engineGroup{shards: []*engine{e}} // one shard until engineFor groups it
	for i := range e.rbufs {
		e.rb.Add(e.rbufs[i][:], nil, 0, nil)
	}
	return e, nil
}

// listenTransfer opens a transfer socket on an ephemeral port of local.
func listenTransfer(local netip.Addr) (*net.UDPConn, error) {
	network, la := "udp", &net.UDPAddr{}
	if local.Is4() {
		network = "udp4"
	}
	if !local.IsUnspecified() {
		la.IP = local.AsSlice()
	}
	return net.ListenUDP(network, la)
}

// closeEngines ends the engines once no transfer runs (Close, Shutdown).
func (s *Server) closeEngines() {
	s.mu.Lock()
	gs := s.engines
	s.engines = nil
	s.mu.Unlock()
	for _, g := range gs {
		for _, e := range g.shards {
			e.mu.Lock()
			e.dead = true
			e.mu.Unlock()
			e.conn.Close()
		}
		for _, e := range g.shards {
			<-e.done
		}
	}
}

// add hands x to the loop; false if the engine has ended.
func (e *engine) add(x *lsXfer) bool {
	if x.salen = mmsg.Sockaddr(e.dom, x.key, &x.sa); x.salen == 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead {
		return false
	}
	e.added = append(e.added, x)
	e.wakeLocked()
	return true
}

// wakeLocked makes the loop's read return now.
func (e *engine) wakeLocked() {
	e.dl = time.Unix(1, 0)
	e.conn.SetReadDeadline(e.dl)
}

// stop asks the loop to end x (Server.Close).
func (e *engine) stop(x *lsXfer) {
	x.canceled.Store(true)
	e.mu.Lock()
	e.cancel = true
	e.wakeLocked()
	e.mu.Unlock()
}

func (e *engine) loop() {
	defer close(e.done)
	for {
		e.tick(time.Now())

		e.mu.Lock()
		if len(e.added) > 0 || len(e.fwd) > 0 || e.cancel {
			e.mu.Unlock()
			continue
		}
		var dl time.Time
		if len(e.xs) > 0 {
			dl = e.nextScan
		}
		if !dl.Equal(e.dl) {
			e.dl = dl
			e.conn.SetReadDeadline(dl)
		}
		e.mu.Unlock()

		n, err := e.recv()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			e.mu.Lock()
			e.dead = true
			added := e.added
			e.added = nil
			e.mu.Unlock()
			for _, x := range added {
				x.done <- fmt.Errorf("tftp: %q: %w", x.t.req.Filename, err)
			}
			for len(e.xs) > 0 {
				x := e.xs[0]
				e.finish(x, fmt.Errorf("tftp: %q: %w", x.t.req.Filename, err))
			}
			e.srv.dropEngine(e)
			return
		}
		now := time.Now()
		for i := range n {
			e.handle(e.rbufs[i][:min(e.rb.N(i), engineRbuf)], rawToAddrPort(e.rb.From(i)), now)
		}
	}
}

// tick starts the transfers handed in, ends and resends timed-out ones
// when a scan is due, and sends what is queued.
func (e *engine) tick(now time.Time) {
	e.mu.Lock()
	added, fwd, scan := e.added, e.fwd, e.cancel
	e.added, e.fwd, e.cancel = nil, nil, false
	e.mu.Unlock()
	for _, x := range added {
		e.begin(x, now)
	}
	for _, p := range fwd {
		e.handle(p.b, p.from, now)
	}
	if scan || !now.Before(e.nextScan) {
		e.scan(now)
		e.nextScan = now.Add(engineScan)
	}
	e.flush()
}

// dropEngine forgets e's engine after e's loop ended on an error, and
// ends its other shards: the next transfer starts a new engine.
func (s *Server) dropEngine(e *engine) {
	s.mu.Lock()
	if s.engines[e.local] == e.group {
		delete(s.engines, e.local)
	}
	s.mu.Unlock()
	for _, o := range e.group.shards {
		o.conn.Close()
	}
}

// begin starts x: its first packet (the OACK, or DATA 1) goes out with the
// next flush.
func (e *engine) begin(x *lsXfer, now time.Time) {
	if old := e.live[x.key]; old != nil {
		// Server.active holds one transfer per client address and port,
		// so this is one ending as the next starts: the new one wins.
		e.srv.logger().Debug("tftp: engine: transfer superseded", "client", x.key, "file", old.t.req.Filename)
		e.finish(old, fmt.Errorf("tftp: %q: superseded by a new request from %v", old.t.req.Filename, x.key))
	}
	e.srv.logger().Debug("tftp: engine: transfer begins", "client", x.key, "file", x.t.req.Filename, "oack", x.oack,
		"live", len(e.live))
	x.idx = len(e.xs)
	e.xs = append(e.xs, x)
	e.live[x.key] = x
	x.start, x.progress = now, now
	if x.oack {
		e.queue(x, now)
		return
	}
	x.block = 1
	if err := e.load(x); err != nil {
		e.finish(x, err)
		return
	}
	e.queue(x, now)
}

// load makes x.pkt DATA block x.block, reading the file's next blocks
// into x.win when the block is not there (the blocks before x.block are
// acknowledged: no packet in flight points into x.win).
func (e *engine) load(x *lsXfer) error {
	bs, seg := x.bs, 4+x.bs
	if x.win == nil {
		x.winN = 1
		if _, ok := x.f.(*os.File); ok {
			x.winN = max(1, engineAhead/bs)
		}
		x.win = make([]byte, x.winN*seg)
	}
	if x.winFirst == 0 || x.block < x.winFirst || x.block >= x.winFirst+uint64(x.winN) {
		got, err := x.t.readBatch(x.f, x.win, x.block, x.winN, bs, x.size)
		if err != nil {
			x.t.srv.reply(e.conn, x.t.peer, ErrCodeUndefined, "read error")
			return err
		}
		x.winFirst, x.winGot = x.block, got
	}
	i := int(x.block - x.winFirst)
	got := min(bs, max(0, x.winGot-i*bs))
	if got < bs { // a short block ends the file (RFC 1350 §6)
		x.last, x.lastLen = x.block, got
	}
	x.pkt = x.win[i*seg : i*seg+4+got]
	putDataHeader(x.pkt, uint16(x.block)) // RFC 1350 block numbers roll over to 0
	return nil
}

// queue sends x's packet with the next flush and starts its timer.
func (e *engine) queue(x *lsXfer, now time.Time) {
	x.sent = now
	if !x.queued {
		x.queued = true
		e.out = append(e.out, x)
	}
}

// handle is one datagram b from a client.
func (e *engine) handle(b []byte, from netip.AddrPort, now time.Time) {
	s := e.srv
	key := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	x := e.live[key]
	if x == nil {
		if o := e.group.owner(key); o != e {
			o.forward(b, from) // steered to the wrong shard
			return
		}
		// RFC 1350 §4: a packet for no transfer of ours.
		s.reply(e.conn, from, ErrCodeUnknownTID, "unknown transfer ID")
		return
	}
	if len(b) < 4 {
		s.malformed.Add(1)
		s.logger().Debug("tftp: dropped malformed packet", "client", from, "len", len(b))
		return
	}
	switch Opcode(binary.BigEndian.Uint16(b)) {
	case OpACK:
		e.ack(x, binary.BigEndian.Uint16(b[2:]), now)
	case OpERROR:
		p, _ := ParsePacket(b)
		e.finish(x, &PeerError{Code: p.ErrCode, Message: p.ErrMsg})
	default:
		s.malformed.Add(1)
		s.logger().Debug("tftp: unexpected packet during transfer", "client", from, "len", len(b))
	}
}

// forward hands b, received by another shard, to e's loop.
func (e *engine) forward(b []byte, from netip.AddrPort) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead || len(e.fwd) >= engineBatch*4 {
		return // lost, as on a wire
	}
	e.fwd = append(e.fwd, fwdPacket{b: append([]byte(nil), b...), from: from})
	e.wakeLocked()
}

// ack advances x on ACK a; duplicate and stray ACKs are ignored: only a
// timeout resends (Sorcerer's Apprentice, RFC 1123 §4.2.3.1).
func (e *engine) ack(x *lsXfer, a uint16, now time.Time) {
	e.srv.acks.Add(1)
	if !x.acked {
		x.acked = true
		x.t.acked.Store(true)
	}
	if x.oack { // RFC 2347: the OACK is acknowledged by ACK 0
		if a != 0 {
			return
		}
		x.oack, x.block, x.tries, x.rto, x.progress = false, 1, 0, x.est.rto(), now
		if err := e.load(x); err != nil {
			e.finish(x, err)
			return
		}
		e.queue(x, now)
		return
	}
	if a != uint16(x.block) {
		return
	}
	if !x.resent { // Karn: no round-trip sample from a resent block
		x.est.sample(now.Sub(x.sent))
	}
	if x.block == x.last {
		x.tr.Bytes = int64(x.last-1)*int64(x.bs) + int64(x.lastLen)
		e.finish(x, nil)
		return
	}
	x.tr.Bytes = int64(x.block) * int64(x.bs)
	x.block++
	x.tries, x.resent, x.rto, x.progress = 0, false, x.est.rto(), now
	if err := e.load(x); err != nil {
		e.finish(x, err)
		return
	}
	e.queue(x, now)
}

// scan ends canceled and silent transfers and resends after a timeout, with
// the same schedule as a transfer on its own socket (transfer.send).
func (e *engine) scan(now time.Time) {
	for i := 0; i < len(e.xs); {
		x := e.xs[i]
		if err := e.due(x, now); err != nil {
			e.finish(x, err) // moves the last transfer to i
			continue
		}
		i++
	}
}

func (e *engine) due(x *lsXfer, now time.Time) error {
	name := x.t.req.Filename
	if x.canceled.Load() {
		return fmt.Errorf("tftp: %q: %w", name, net.ErrClosed)
	}
	if !x.acked && now.Sub(x.start) >= x.firstWait {
		return fmt.Errorf("tftp: %q: %w within %v: %w", name, errNoAck, x.firstWait, os.ErrDeadlineExceeded)
	}
	if x.queued || now.Sub(x.sent) < x.rto && (x.oack || now.Sub(x.progress) < x.idle) {
		return nil
	}
	noAck := func(err error) error {
		if !x.acked {
			return fmt.Errorf("%w: %w", errNoAck, err)
		}
		return err
	}
	if x.oack {
		if x.tries++; x.tries > x.retries {
			return noAck(fmt.Errorf("tftp: %q: no ACK of OACK after %d tries: %w", name, x.tries, os.ErrDeadlineExceeded))
		}
		x.rto = min(x.rto*2, maxRTO)
		e.srv.logger().Debug("tftp: engine: OACK resent", "client", x.key, "tries", x.tries)
		e.queue(x, now)
		return nil
	}
	// Timeouts shorter than the configured one (adaptive RTO) do not count
	// against Retries.
	if x.rto >= x.est.max {
		if x.tries++; x.tries > x.retries {
			return noAck(fmt.Errorf("tftp: %q: no ACK for block %d after %d tries: %w", name, x.block, x.tries, os.ErrDeadlineExceeded))
		}
	}
	if since := now.Sub(x.progress); since >= x.idle {
		return noAck(fmt.Errorf("tftp: %q: no ACK for block %d for %v: %w", name, x.block, since.Round(time.Millisecond), os.ErrDeadlineExceeded))
	}
	x.rto, x.resent = min(x.rto*2, maxRTO), true
	x.tr.Resent++
	if !x.acked {
		e.srv.logger().Debug("tftp: engine: first block resent", "client", x.key, "block", x.block, "tries", x.tries)
	}
	e.queue(x, now)
	return nil
}

// finish ends x with err and hands err to its transfer's goroutine.
func (e *engine) finish(x *lsXfer, err error) {
	if e.live[x.key] == x {
		delete(e.live, x.key)
	}
	if i := x.idx; i < len(e.xs) && e.xs[i] == x {
		last := e.xs[len(e.xs)-1]
		e.xs[i], last.idx = last, i
		e.xs = e.xs[:len(e.xs)-1]
	}
	x.idx = -1
	if x.queued { // drop it from the pending sends
		for i, o := range e.out {
			if o == x {
				e.out = append(e.out[:i], e.out[i+1:]...)
				break
			}
		}
		x.queued = false
	}
	x.done <- err
}

// recv reads up to engineBatch datagrams with one recvmmsg(2), parking in
// the netpoller until at least one is there (or the read deadline).
func (e *engine) recv() (int, error) {
	for {
		n, errno, err := e.mc.Recv(&e.rb, unix.MSG_DONTWAIT)
		switch {
		case err != nil:
			return 0, err
		case errno == unix.ECONNREFUSED, errno == unix.EHOSTUNREACH, errno == unix.ENETUNREACH:
			continue // an ICMP error for an earlier send: read on
		case errno != 0:
			return 0, fmt.Errorf("tftp: read ACKs: %w", errno)
		}
		return n, nil
	}
}

// flush sends the queued packets with sendmmsg(2), each to its client. A
// datagram the kernel refuses (ENOBUFS, an unreachable client) is lost
// as on a wire: its timer resends it.
func (e *engine) flush() {
	if len(e.out) == 0 {
		return
	}
	e.sb.Reset()
	for _, x := range e.out {
		e.sb.Add(x.pkt, &x.sa, x.salen, nil)
		x.queued = false
	}
	for sent := 0; sent < e.sb.Len(); {
		n, errno, err := e.mc.SendFrom(&e.sb, sent, 0)
		if err != nil || errno == 0 && n == sent {
			break // the socket is closed: the loop's next read ends the engine
		}
		sent = n
		if errno != 0 {
			// The datagram at sent failed: lost, as on a wire.
			e.srv.logger().Debug("tftp: send failed", "client", e.out[sent].t.peer, "err", errno)
			sent++
		}
	}
	clear(e.out)
	e.out = e.out[:0]
}

// serveShared runs a lockstep transfer in the engine e and waits for its
// outcome; ok false if e took no transfer (the caller opens its own socket).
func (t *transfer) serveShared(e *engine, f File, size int64, neg Negotiated, tr *Transfer) (ok bool, err error) {
	x := t.newLsXfer(f, size, neg, tr)
	t.mu.Lock()
	if t.canceled {
		t.mu.Unlock()
		return true, ErrServerClosed
	}
	t.ls, t.eng = x, e
	t.mu.Unlock()
	if !e.add(x) {
		t.mu.Lock()
		t.ls, t.eng = nil, nil
		t.mu.Unlock()
		return false, nil
	}
	return true, <-x.done
}

// newLsXfer is the engine's state of t, about to send its first packet.
func (t *transfer) newLsXfer(f File, size int64, neg Negotiated, tr *Transfer) *lsXfer {
	s := t.srv
	rto0 := neg.Timeout
	if rto0 == 0 {
		rto0 = s.timeout()
	}
	bs := neg.Blksize
	x := &lsXfer{t: t, f: f, size: size, bs: bs, tr: tr, done: make(chan error, 1),
		key:  netip.AddrPortFrom(t.peer.Addr().Unmap(), t.peer.Port()),
		est:  rttEstimator{max: rto0, adaptive: neg.Timeout == 0},
		rto0: rto0, retries: s.retries(), firstWait: firstAckWait(rto0), idle: idleWait(rto0)}
	x.rto = x.est.rto()
	if size >= 0 {
		x.last = uint64(size)/uint64(bs) + 1
		x.lastLen = int(size % int64(bs))
	}
	if len(neg.Ack) > 0 {
		x.oack, x.rto = true, rto0
		x.pkt = AppendPacket(nil, Packet{Op: OpOACK, Options: neg.Ack})
	}
	return x
}
