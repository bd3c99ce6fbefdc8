package udploop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// BatchConn returns a Conn over c that reads with recvmmsg and writes with
// sendmmsg as raw system calls (c is non-blocking, so they never block; a
// read or write that would block waits in Go's network poller, as
// golang.org/x/net's do).
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
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udploop: batch conn: %w", err)
	}
	return &batchConn{c: uc, rc: rc}, nil
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
// time (the Loop's reader) and reuses its headers; WriteBatch by many.
type batchConn struct {
	c  *net.UDPConn
	rc syscall.RawConn

	rh    []unix.Mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet6 // room for either family

	zones sync.Map // interface index (int) ↔ name (string), both ways
}

func (b *batchConn) SetWriteDeadline(t time.Time) error { return b.c.SetWriteDeadline(t) }

// ReadBatch reads up to len(ms) packets into ms[i].Buffers[0] (one buffer
// each) and their control messages into ms[i].OOB, as ipv4.PacketConn's
// ReadBatch does.
func (b *batchConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	if len(b.rh) < len(ms) {
		b.rh, b.riov, b.rname = make([]unix.Mmsghdr, len(ms)), make([]unix.Iovec, len(ms)), make([]unix.RawSockaddrInet6, len(ms))
	}
	for i := range ms {
		buf := ms[i].Buffers[0]
		b.riov[i].Base = unsafe.SliceData(buf)
		b.riov[i].SetLen(len(buf))
		h := &b.rh[i].Hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&b.rname[i])), Namelen: unix.SizeofSockaddrInet6, Iov: &b.riov[i]}
		h.SetIovlen(1)
		if len(ms[i].OOB) > 0 {
			h.Control = unsafe.SliceData(ms[i].OOB)
			h.SetControllen(len(ms[i].OOB))
		}
	}
	var n int
	var errno syscall.Errno
	err := b.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rh[0])), uintptr(len(ms)), uintptr(flags), 0, 0)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait for the socket to be readable
			}
			n, errno = int(r), e
			return true
		}
	})
	runtime.KeepAlive(ms)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	for i := range ms[:n] {
		h := &b.rh[i]
		ms[i].N, ms[i].NN, ms[i].Flags = int(h.Len), int(h.Hdr.Controllen), int(h.Hdr.Flags)
		ms[i].Addr = b.udpAddr(&b.rname[i])
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
	hs := make([]unix.Mmsghdr, len(ms))
	iov := make([]unix.Iovec, len(ms))
	names := make([]unix.RawSockaddrInet6, len(ms))
	for i := range ms {
		buf := ms[i].Buffers[0]
		if len(buf) > 0 {
			iov[i].Base = unsafe.SliceData(buf)
			iov[i].SetLen(len(buf))
		}
		h := &hs[i].Hdr
		h.Iov = &iov[i]
		h.SetIovlen(1)
		if len(ms[i].OOB) > 0 {
			h.Control = unsafe.SliceData(ms[i].OOB)
			h.SetControllen(len(ms[i].OOB))
		}
		ua, ok := ms[i].Addr.(*net.UDPAddr)
		if !ok {
			return 0, fmt.Errorf("udploop: write to %v: not a UDP address", ms[i].Addr)
		}
		nl, err := b.sockaddr(ua.AddrPort(), &names[i])
		if err != nil {
			return 0, err
		}
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(&names[i])), nl
	}
	sent := 0
	var errno syscall.Errno
	err := b.rc.Write(func(fd uintptr) bool {
		for sent < len(hs) {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&hs[sent])), uintptr(len(hs)-sent), uintptr(flags), 0, 0)
			switch e {
			case 0:
				if r == 0 {
					return true // nothing taken and no error: let the caller decide
				}
				sent += int(r)
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait for room in the send buffer
			}
			errno = e
			return true
		}
		return true
	})
	runtime.KeepAlive(ms)
	runtime.KeepAlive(iov)
	runtime.KeepAlive(names)
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendmmsg", errno)
	}
	return sent, err
}

// sockaddr writes ap as a sockaddr into sa and returns its length.
func (b *batchConn) sockaddr(ap netip.AddrPort, sa *unix.RawSockaddrInet6) (uint32, error) {
	a, port := ap.Addr(), ap.Port()
	if a.Is4() {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet4, nil
	}
	if !a.Is6() {
		return 0, errors.New("udploop: write: invalid address")
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	if z := a.Zone(); z != "" {
		idx, err := b.zoneIndex(z)
		if err != nil {
			return 0, err
		}
		sa.Scope_id = uint32(idx)
	}
	return unix.SizeofSockaddrInet6, nil
}

// udpAddr is the sender a read filled in sa.
func (b *batchConn) udpAddr(sa *unix.RawSockaddrInet6) *net.UDPAddr {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port := int(p[0])<<8 | int(p[1])
	if sa.Family == unix.AF_INET {
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return &net.UDPAddr{IP: net.IP(s4.Addr[:]).To16(), Port: port}
	}
	ua := &net.UDPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: port}
	if sa.Scope_id != 0 {
		ua.Zone = b.zoneName(int(sa.Scope_id))
	}
	return ua
}

// zoneName is the name of the interface with index idx (its number when
// it has none), as net names a zone.
func (b *batchConn) zoneName(idx int) string {
	if v, ok := b.zones.Load(idx); ok {
		return v.(string)
	}
	name := strconv.Itoa(idx)
	if ifi, err := net.InterfaceByIndex(idx); err == nil {
		name = ifi.Name
		b.zones.Store(name, idx)
	}
	b.zones.Store(idx, name)
	return name
}

// zoneIndex is the index of the interface a zone names (a name or a number).
func (b *batchConn) zoneIndex(zone string) (int, error) {
	if v, ok := b.zones.Load(zone); ok {
		return v.(int), nil
	}
	if n, err := strconv.Atoi(zone); err == nil {
		return n, nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("udploop: write: zone %q: %w", zone, err)
	}
	b.zones.Store(zone, ifi.Index)
	b.zones.Store(ifi.Index, zone)
	return ifi.Index, nil
}
