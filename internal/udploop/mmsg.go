package udploop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"pxed/internal/mmsg"
)

// BatchConn returns a Conn over c that reads with recvmmsg and writes with
// sendmmsg as raw system calls (internal/mmsg: c is non-blocking, so they
// never block; a read or write that would block waits in Go's network
// poller, as golang.org/x/net's do).
//
// Why not x/net's ReadBatch and WriteBatch: they enter the system call the
// way a blocking one does, and the first such call after the process was
// idle wakes the Go runtime's monitor thread (sysmon), which then polls
// every 20 µs for a millisecond or more. A DHCP server at a few hundred
// packets a second is idle between packets, so every packet paid for
// dozens of those wake-ups: a fifth of pxed's CPU at 250 DHCPv6 exchanges a
// second (bench/README-dhcp.md).
func BatchConn(c net.PacketConn) (Conn, error) {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil, fmt.Errorf("udploop: batch conn: %T is not a UDP socket", c)
	}
	mc, err := mmsg.New(uc)
	if err != nil {
		return nil, fmt.Errorf("udploop: batch conn: %w", err)
	}
	return &batchConn{c: uc, mc: mc}, nil
}

// PreferBatch is BatchConn(c), or fallback when c is no UDP socket (a
// test's fake).
func PreferBatch(c net.PacketConn, fallback Conn) Conn {
	if bc, err := BatchConn(c); err == nil {
		return bc
	}
	return fallback
}

// batchConn is BatchConn's Conn. ReadBatch is called by one goroutine at a
// time (the Loop's reader) and reuses its batch; WriteBatch by many.
type batchConn struct {
	c  *net.UDPConn
	mc *mmsg.Conn
	rb mmsg.Batch

	zones mmsg.Zones
}

func (b *batchConn) SetWriteDeadline(t time.Time) error { return b.c.SetWriteDeadline(t) }

// SetReadDeadline sets the deadline of ReadBatch.
func (b *batchConn) SetReadDeadline(t time.Time) error { return b.c.SetReadDeadline(t) }

// ReadBatch reads up to len(ms) packets into ms[i].Buffers[0] (one buffer
// each) and their control messages into ms[i].OOB, as ipv4.PacketConn's
// ReadBatch does.
func (b *batchConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	b.rb.Reset()
	for i := range ms {
		b.rb.Add(ms[i].Buffers[0], nil, 0, ms[i].OOB)
	}
	n, errno, err := b.mc.Recv(&b.rb, flags)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	for i := range ms[:n] {
		ms[i].N, ms[i].NN, ms[i].Flags = b.rb.N(i), b.rb.OOBN(i), b.rb.Flags(i)
		ms[i].Addr = b.udpAddr(b.rb.From(i))
	}
	return n, nil
}

// WriteBatch sends ms (one buffer each, Addr a *net.UDPAddr) with as few
// sendmmsg calls as the kernel takes, and returns how many left; it waits
// for room in the send buffer until the write deadline.
func (b *batchConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	var wb mmsg.Batch
	names := make([]unix.RawSockaddrAny, len(ms))
	for i := range ms {
		ua, ok := ms[i].Addr.(*net.UDPAddr)
		if !ok {
			return 0, fmt.Errorf("udploop: write to %v: not a UDP address", ms[i].Addr)
		}
		nl, err := b.sockaddr(ua.AddrPort(), &names[i])
		if err != nil {
			return 0, err
		}
		wb.Add(ms[i].Buffers[0], &names[i], nl, ms[i].OOB)
	}
	sent, errno, err := b.mc.Send(&wb, flags)
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendmmsg", errno)
	}
	return sent, err
}

// sockaddr writes ap as a sockaddr into sa and returns its length.
func (b *batchConn) sockaddr(ap netip.AddrPort, sa *unix.RawSockaddrAny) (uint32, error) {
	a := ap.Addr()
	if a.Is4() {
		return mmsg.Sockaddr(unix.AF_INET, ap, sa), nil
	}
	if !a.Is6() {
		return 0, errors.New("udploop: write: invalid address")
	}
	z := a.Zone()
	n := mmsg.Sockaddr(unix.AF_INET6, netip.AddrPortFrom(a.WithZone(""), ap.Port()), sa)
	if z != "" {
		idx, err := b.zones.Index(z)
		if err != nil {
			return 0, fmt.Errorf("udploop: write: %w", err)
		}
		(*unix.RawSockaddrInet6)(unsafe.Pointer(sa)).Scope_id = idx
	}
	return n, nil
}

// udpAddr is the sender a read filled in sa.
func (b *batchConn) udpAddr(sa *unix.RawSockaddrAny) *net.UDPAddr {
	ap, scope := mmsg.AddrPort(sa)
	port := int(ap.Port())
	if sa.Addr.Family == unix.AF_INET {
		return &net.UDPAddr{IP: net.IP(ap.Addr().AsSlice()).To16(), Port: port}
	}
	ua := &net.UDPAddr{IP: ap.Addr().AsSlice(), Port: port}
	if scope != 0 {
		ua.Zone = b.zones.Name(scope)
	}
	return ua
}
