package tftp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// lockstep is one windowsize-1 transfer's data phase as a state machine the
// engine drives: start, then receive for each datagram and timeout for each
// expired deadline. It follows transfer.send step for step (OACK and ACK 0,
// adaptive RTO with Karn's rule, retries counted only at the full timeout,
// duplicate ACKs never resent on, 16-bit block numbers rolling over).
type lockstep struct {
	t       *transfer
	tr      *Transfer
	fd      int
	peer    unix.Sockaddr
	f       File
	size    int64
	bs      int
	retries int
	wait    time.Duration // firstAckWait

	pkt     []byte // the packet in flight: the OACK, then one DATA block
	n       int    // its length
	oack    bool   // waiting for ACK 0 of the OACK
	block   uint64 // the DATA block in flight
	last    uint64 // last block number, 0 while unknown
	lastLen int
	est     rttEstimator
	rto     time.Duration
	tries   int
	resent  bool
	sent    time.Time

	rtoAt   time.Time // retransmission deadline
	firstBy time.Time // the first-ACK bound; zero once an ACK came
	at      time.Time // the earlier of the two: the timer heap's key
	hidx    int       // index in the worker's timer heap, -1 if none

	complete bool // the last block was acknowledged
	finished bool // the outcome was sent on done
	done     chan error
}

// sendEvented runs the data phase of a lockstep transfer on the engine and
// returns its outcome as send does. handled is false if the engine is not
// available (conn is then untouched); the caller then uses send.
func (t *transfer) sendEvented(conn *net.UDPConn, f File, size int64, neg Negotiated, tr *Transfer, wait time.Duration) (handled bool, err error) {
	s := t.srv
	if s.eng.start(s) != nil {
		return false, nil
	}
	family, err := socketFamily(conn)
	if err != nil {
		return false, nil
	}
	peer, err := sockaddrOf(t.peer, family)
	if err != nil {
		return false, nil
	}
	fd, err := detach(conn)
	if err != nil {
		return false, nil
	}
	defer unix.Close(fd)
	rto0 := neg.Timeout
	if rto0 == 0 {
		rto0 = s.timeout()
	}
	ls := &lockstep{
		t: t, tr: tr, fd: fd, peer: peer, f: f, size: size, bs: neg.Blksize, retries: s.retries(), wait: wait,
		pkt: make([]byte, 4+neg.Blksize), block: 1,
		est:  rttEstimator{max: rto0, adaptive: neg.Timeout == 0},
		rto:  rto0,
		hidx: -1, done: make(chan error, 1),
	}
	if size >= 0 {
		ls.last = uint64(size)/uint64(ls.bs) + 1
		ls.lastLen = int(size % int64(ls.bs))
	}
	if len(neg.Ack) > 0 {
		// RFC 2347: the OACK is acknowledged by ACK 0.
		oack := AppendPacket(nil, Packet{Op: OpOACK, Options: neg.Ack})
		if len(oack) > len(ls.pkt) {
			ls.pkt = make([]byte, len(oack))
		}
		ls.n = copy(ls.pkt, oack)
		ls.oack = true
	}
	t.mu.Lock()
	if t.canceled {
		t.mu.Unlock()
		return true, fmt.Errorf("tftp: %q: %w", t.req.Filename, net.ErrClosed)
	}
	// Posted under t.mu, so a cancel is posted after it.
	t.ls, ls.hidx = ls, -1
	t.w = s.eng.pick()
	t.w.post(cmd{op: cmdAdd, ls: ls})
	t.mu.Unlock()
	return true, <-ls.done
}

// start sends the first packet: the OACK, or DATA block 1.
func (ls *lockstep) start(now time.Time) error {
	ls.firstBy = now.Add(ls.wait)
	if ls.oack {
		ls.write(now)
		return nil
	}
	return ls.next(now)
}

// next reads block ls.block and sends it.
func (ls *lockstep) next(now time.Time) error {
	got, err := ls.t.readBatch(ls.f, ls.pkt, ls.block, 1, ls.bs, ls.size)
	if err != nil {
		ls.t.srv.sendTo(ls.fd, appendError(nil, ErrCodeUndefined, "read error"), ls.peer, ls.t.peer)
		return err
	}
	if got < ls.bs { // a short block ends the file (RFC 1350 §6)
		ls.last, ls.lastLen = ls.block, got
	}
	putDataHeader(ls.pkt, uint16(ls.block)) // RFC 1350 block numbers roll over to 0
	ls.n = 4 + got
	ls.write(now)
	return nil
}

// write sends the packet in flight and arms the retransmission deadline.
func (ls *lockstep) write(now time.Time) {
	ls.t.srv.sendTo(ls.fd, ls.pkt[:ls.n], ls.peer, ls.t.peer)
	ls.sent = now
	ls.rtoAt = now.Add(ls.rto)
}

// timeout handles an expired retransmission deadline: the packet in flight
// goes again with the timeout doubled, or the transfer fails after Retries.
func (ls *lockstep) timeout(now time.Time) error {
	name := ls.t.req.Filename
	errTimeout := fmt.Errorf("tftp: %q: wait for ACK: %w", name, os.ErrDeadlineExceeded)
	if ls.oack {
		if ls.tries++; ls.tries > ls.retries {
			return fmt.Errorf("tftp: %q: no ACK of OACK after %d tries: %w", name, ls.tries, errTimeout)
		}
	} else if ls.rto >= ls.est.max {
		// Adaptive timeouts shorter than the configured one do not
		// count against Retries (as in send).
		if ls.tries++; ls.tries > ls.retries {
			return fmt.Errorf("tftp: %q: no ACK for block %d after %d tries: %w", name, ls.block, ls.tries, errTimeout)
		}
	}
	ls.rto = min(ls.rto*2, maxRTO)
	if !ls.oack {
		ls.resent = true
		ls.tr.Resent++
	}
	ls.write(now)
	return nil
}

// receive handles one datagram on the transfer's socket. Datagrams from
// another address get ERROR 5 (RFC 1350 §4); an ERROR from the peer ends the
// transfer with *PeerError; ls.complete is set when the last block is
// acknowledged.
func (ls *lockstep) receive(b []byte, from netip.AddrPort, now time.Time) error {
	t := ls.t
	if from != t.peer {
		if sa, err := sockaddrOf(from, sockaddrFamily(ls.peer)); err == nil {
			t.srv.sendTo(ls.fd, appendError(nil, ErrCodeUnknownTID, "unknown transfer ID"), sa, from)
		}
		return nil
	}
	if len(b) < 4 {
		t.srv.malformed.Add(1)
		t.srv.logger().Debug("tftp: dropped malformed packet", "client", from, "len", len(b))
		return nil
	}
	switch Opcode(binary.BigEndian.Uint16(b)) {
	case OpACK:
	case OpERROR:
		p, _ := ParsePacket(b)
		return &PeerError{Code: p.ErrCode, Message: p.ErrMsg}
	default:
		t.srv.malformed.Add(1)
		t.srv.logger().Debug("tftp: unexpected packet during transfer", "client", from, "len", len(b))
		return nil
	}
	t.acked.Store(true)
	ls.firstBy = time.Time{}
	a := binary.BigEndian.Uint16(b[2:])
	if ls.oack {
		if a != 0 {
			ls.write(now) // as send: anything but ACK 0 gets the OACK again
			return nil
		}
		ls.oack, ls.tries, ls.rto = false, 0, ls.est.rto()
		return ls.next(now)
	}
	if a != uint16(ls.block) {
		// A duplicate ACK of an acknowledged block: never resend on it
		// (Sorcerer's Apprentice, RFC 1123 §4.2.3.1); only a timeout
		// resends.
		return nil
	}
	if !ls.resent { // Karn: no round-trip sample from a resent block
		ls.est.sample(now.Sub(ls.sent))
	}
	ls.tries, ls.resent, ls.rto = 0, false, ls.est.rto()
	if ls.block == ls.last {
		ls.tr.Bytes = int64(ls.last-1)*int64(ls.bs) + int64(ls.lastLen)
		ls.complete = true
		return nil
	}
	ls.tr.Bytes = int64(ls.block) * int64(ls.bs)
	ls.block++
	return ls.next(now)
}

// sendTo sends b on the socket fd without waiting. Failures (ENOBUFS, a full
// send buffer) are packet loss, which retransmission deals with.
func (s *Server) sendTo(fd int, b []byte, sa unix.Sockaddr, to netip.AddrPort) {
	if err := unix.Sendto(fd, b, unix.MSG_DONTWAIT, sa); err != nil {
		s.logger().Debug("tftp: send failed", "client", to, "err", err)
	}
}

// socketFamily is AF_INET or AF_INET6, the family of conn's socket.
func socketFamily(conn *net.UDPConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		fam  int
		ferr error
	)
	if err := rc.Control(func(fd uintptr) {
		fam, ferr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return 0, err
	}
	return fam, ferr
}

func sockaddrFamily(sa unix.Sockaddr) int {
	if _, ok := sa.(*unix.SockaddrInet4); ok {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// sockaddrOf is ap as a socket address of family (IPv4 peers of an IPv6
// socket as IPv4-mapped addresses, as net does).
func sockaddrOf(ap netip.AddrPort, family int) (unix.Sockaddr, error) {
	a := ap.Addr()
	switch family {
	case unix.AF_INET:
		a = a.Unmap()
		if !a.Is4() {
			return nil, fmt.Errorf("tftp: %v: not an IPv4 address", a)
		}
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, nil
	case unix.AF_INET6:
		sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
		if z := a.Zone(); z != "" {
			if n, err := strconv.Atoi(z); err == nil {
				sa.ZoneId = uint32(n)
			} else if ifi, err := net.InterfaceByName(z); err == nil {
				sa.ZoneId = uint32(ifi.Index)
			} else {
				return nil, fmt.Errorf("tftp: zone %q: %w", z, err)
			}
		}
		return sa, nil
	}
	return nil, fmt.Errorf("tftp: address family %d", family)
}
