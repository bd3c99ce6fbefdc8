package tftp

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"pxed/internal/mmsg"
)

// sendmmsg(2) sends a batch of DATA packets in one system call where UDP GSO
// is unavailable (kernel, route or DisableGSO): one sendto per block through
// Go's net package cost 5.8 CPU-s/GiB at windowsize 64 and blksize 1468 on
// loopback, half as fast as the same window with GSO.

// mmsgState is a transfer's reusable sendmmsg batch and the peer's address.
type mmsgState struct {
	off   bool // sendmmsg failed or cannot address this peer: one by one
	ready bool // mc and sa are set
	mc    *mmsg.Conn
	sa    unix.RawSockaddrAny
	salen uint32
	b     mmsg.Batch
}

// errNoMMsg: send this batch one packet at a time.
var errNoMMsg = errors.New("sendmmsg unavailable")

// peerSockaddr fills m.sa with the transfer's peer in the socket's family.
func (t *transfer) peerSockaddr(conn *net.UDPConn, m *mmsgState) bool {
	rc, err := conn.SyscallConn()
	if err != nil {
		return false
	}
	var dom int
	var serr error
	if err := rc.Control(func(fd uintptr) { dom, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN) }); err != nil || serr != nil {
		return false
	}
	m.salen = mmsg.Sockaddr(dom, t.peer, &m.sa)
	return m.salen != 0 // a zoned peer goes one by one
}

// mmsgReady makes m ready for mmsg sends to the peer; false if it cannot
// (no raw socket, a zoned peer).
func (t *transfer) mmsgReady(conn *net.UDPConn, m *mmsgState) bool {
	if m.ready {
		return true
	}
	mc, err := mmsg.New(conn)
	if err != nil || !t.peerSockaddr(conn, m) {
		return false
	}
	m.mc, m.ready = mc, true
	return true
}

// sendGSO sends b as one UDP GSO datagram (g.oob gives the segment size)
// with a raw sendmmsg(2) of one message on the non-blocking socket
// (internal/mmsg), waiting in the poller only when the send buffer is full.
// Through the net package (syscall.Syscall) every window woke the Go
// runtime's monitor thread (sysmon), whose wake-ups and 20 µs sleeps were a
// fifth of the server's CPU at windowsize 4 on a busy machine. A peer with
// no plain socket address (a zoned one) is sent to through the net package.
func (t *transfer) sendGSO(conn *net.UDPConn, g *gsoState, b []byte) error {
	m := &t.mm
	if !t.mmsgReady(conn, m) {
		_, _, err := conn.WriteMsgUDPAddrPort(b, g.oob, t.peer)
		return err
	}
	m.b.Reset()
	m.b.Add(b, &m.sa, m.salen, g.oob)
	sent, errno, err := m.mc.Send(&m.b, 0)
	switch {
	case err != nil:
		return err
	case errno != 0:
		return errno
	case sent == 0:
		return unix.ENOBUFS // nothing taken, nothing said: lost, as on a wire
	}
	return nil
}

// sendmmsg sends the datagrams in b, seg bytes each but the last, to the
// peer in as few sendmmsg(2) calls as the socket buffer allows. Transient
// errors (ENOBUFS) are packet loss, as for one send; errNoMMsg says to send
// the rest of the batch, from packet sent on, one by one.
func (t *transfer) sendmmsg(conn *net.UDPConn, m *mmsgState, b []byte, seg int) (sent int, _ error) {
	if m.off || !t.mmsgReady(conn, m) {
		m.off = true
		return 0, errNoMMsg
	}
	nb := (len(b) + seg - 1) / seg
	m.b.Reset()
	for i := range nb {
		m.b.Add(b[i*seg:min(len(b), (i+1)*seg)], &m.sa, m.salen, nil)
	}
	sent, errno, err := m.mc.Send(&m.b, 0)
	switch {
	case err != nil:
		return sent, fmt.Errorf("tftp: %q: %w", t.req.Filename, err)
	case errno == unix.ENOBUFS || errno == unix.ECONNREFUSED:
		t.srv.logger().Debug("tftp: send failed", "client", t.peer, "err", errno)
		return nb, nil // packet loss; retransmission deals with it
	case errno != 0 || sent < nb:
		m.off = true
		t.srv.logger().Debug("tftp: sendmmsg unavailable, sending packets one by one", "client", t.peer, "err", errno)
		return sent, errNoMMsg
	}
	return nb, nil
}
