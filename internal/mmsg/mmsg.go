// Package mmsg sends and receives batches of UDP datagrams with one
// sendmmsg(2) or recvmmsg(2) system call, on a non-blocking socket, waiting
// in Go's network poller when the socket is full or empty.
//
// The calls are raw (RawSyscall6): the socket never blocks, and a blocking
// style system call wakes the runtime's monitor thread (sysmon) after an
// idle spell, which then polls every 20 µs for a millisecond or more — for a
// server idle between packets, a fifth of its CPU (bench/README-dhcp.md).
//
// A Batch keeps its message headers between calls, so a loop that sends or
// reads many batches allocates nothing per batch. What to do about a
// datagram the kernel refuses is the caller's policy: Send stops at the
// first one and says which it was and why.
package mmsg

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBatch is the most datagrams one system call takes (UIO_MAXIOV).
const MaxBatch = 1024

// Batch is a list of datagrams for one Send or Recv. Its zero value is
// empty and ready; Reset empties it and keeps its memory. A Batch is used
// by one call at a time and must not be copied after first use.
type Batch struct {
	h     []unix.Mmsghdr
	iov   []unix.Iovec
	to    []*unix.RawSockaddrAny // Send: each datagram's destination
	tolen []uint32
	from  []unix.RawSockaddrAny // Recv: each datagram's source
	oob   [][]byte
	// recvOK: the headers are set for Recv; only what the kernel wrote
	// (lengths, flags) is reset before the next.
	recvOK bool

	// The call in flight: its arguments and results, and the functions
	// the poller runs (b.sendmmsg, b.recvmmsg, made once), so that a
	// Send or Recv allocates nothing (a closure per call cost three
	// allocations, for every DATA block of a lockstep transfer).
	flags, sent, n int
	errno          unix.Errno
	sendFn, recvFn func(fd uintptr) bool
}

// Len is the number of datagrams in b.
func (b *Batch) Len() int { return len(b.iov) }

// Reset empties b, keeping its memory.
func (b *Batch) Reset() {
	clear(b.to)
	clear(b.oob)
	b.h, b.iov, b.to, b.tolen, b.oob = b.h[:0], b.iov[:0], b.to[:0], b.tolen[:0], b.oob[:0]
	b.recvOK = false
}

// Add appends a datagram: buf, to the address in *to (tolen bytes of it;
// nil for a connected socket), with control messages oob (may be nil).
// For Recv, buf and oob are where the datagram goes and to is ignored.
// b refers to buf, to and oob until the next Reset.
func (b *Batch) Add(buf []byte, to *unix.RawSockaddrAny, tolen uint32, oob []byte) {
	v := unix.Iovec{}
	if len(buf) > 0 {
		v.Base = unsafe.SliceData(buf)
		v.SetLen(len(buf))
	}
	b.iov = append(b.iov, v)
	b.h = append(b.h, unix.Mmsghdr{})
	b.to = append(b.to, to)
	b.tolen = append(b.tolen, tolen)
	b.oob = append(b.oob, oob)
	b.recvOK = false
}

// N is the length of datagram i as the last Recv read it.
func (b *Batch) N(i int) int { return int(b.h[i].Len) }

// OOBN is the length of datagram i's control messages as the last Recv read them.
func (b *Batch) OOBN(i int) int { return int(b.h[i].Hdr.Controllen) }

// Flags are datagram i's flags (MSG_TRUNC, ...) as the last Recv read them.
func (b *Batch) Flags(i int) int { return int(b.h[i].Hdr.Flags) }

// From is datagram i's source as the last Recv read it; valid until the
// next Recv or Add.
func (b *Batch) From(i int) *unix.RawSockaddrAny { return &b.from[i] }

// headers points b's headers from datagram `start` on at their vectors,
// addresses and control buffers (the slices may have moved since Add).
func (b *Batch) headers(start int, recv bool) {
	if recv && b.recvOK {
		for i := range b.h {
			h := &b.h[i]
			h.Len, h.Hdr.Namelen, h.Hdr.Flags = 0, unix.SizeofSockaddrAny, 0
			h.Hdr.SetControllen(len(b.oob[i]))
		}
		return
	}
	b.recvOK = recv
	if recv && len(b.from) < len(b.iov) {
		b.from = make([]unix.RawSockaddrAny, cap(b.iov))
	}
	for i := start; i < len(b.h); i++ {
		h := &b.h[i]
		*h = unix.Mmsghdr{}
		h.Hdr.Iov = &b.iov[i]
		h.Hdr.SetIovlen(1)
		if recv {
			h.Hdr.Name, h.Hdr.Namelen = (*byte)(unsafe.Pointer(&b.from[i])), unix.SizeofSockaddrAny
		} else if b.to[i] != nil {
			h.Hdr.Name, h.Hdr.Namelen = (*byte)(unsafe.Pointer(b.to[i])), b.tolen[i]
		}
		if oob := b.oob[i]; len(oob) > 0 {
			h.Hdr.Control = unsafe.SliceData(oob)
			h.Hdr.SetControllen(len(oob))
		}
	}
}

// Conn is a socket for Send and Recv.
type Conn struct {
	rc syscall.RawConn
}

// New returns a Conn over c, a socket from the net package (non-blocking,
// registered with the poller).
func New(c syscall.Conn) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("mmsg: %w", err)
	}
	return &Conn{rc: rc}, nil
}

// Send sends the datagrams of b from the first, with as few sendmmsg(2)
// calls as the kernel takes (MaxBatch at most each), waiting in the poller
// while the send buffer is full, unless flags has MSG_DONTWAIT: then a full
// send buffer ends the call with errno EAGAIN. It returns how many went;
// when that is fewer than b.Len(), errno is why datagram `sent` did not (0
// if the kernel took none and said nothing), and err is set only when the
// socket failed (closed, a write deadline).
func (c *Conn) Send(b *Batch, flags int) (sent int, errno unix.Errno, err error) {
	return c.SendFrom(b, 0, flags)
}

// SendFrom is Send from datagram `start` of b: a caller that counts
// datagram i as lost goes on with SendFrom(b, i+1, flags). sent counts
// from 0, not from start.
func (c *Conn) SendFrom(b *Batch, start, flags int) (sent int, errno unix.Errno, err error) {
	nb := b.Len()
	if start >= nb {
		return start, 0, nil
	}
	b.headers(start, false)
	b.sent, b.flags, b.errno = start, flags, 0
	if b.sendFn == nil {
		b.sendFn = b.sendmmsg
	}
	err = c.rc.Write(b.sendFn)
	return b.sent, b.errno, err
}

// sendmmsg sends b's datagrams from b.sent on; false while the send
// buffer is full (the poller waits for room).
func (b *Batch) sendmmsg(fd uintptr) bool {
	nb := b.Len()
	for b.sent < nb {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.h[b.sent])),
			uintptr(min(nb-b.sent, MaxBatch)), uintptr(b.flags), 0, 0)
		switch e {
		case 0:
			if r == 0 {
				return true // nothing taken and no error: the caller decides
			}
			b.sent += int(r)
		case unix.EINTR:
		case unix.EAGAIN:
			if b.flags&unix.MSG_DONTWAIT != 0 {
				b.errno = e // the caller decides whether to wait
				return true
			}
			return false // wait for room in the send buffer
		default:
			b.errno = e
			return true
		}
	}
	return true
}

// Recv reads up to b.Len() datagrams into b's buffers with one recvmmsg(2),
// waiting in the poller (until the read deadline) while none is there. It
// returns how many it read, or the errno recvmmsg gave, or err when the
// socket failed (closed, the read deadline).
func (c *Conn) Recv(b *Batch, flags int) (n int, errno unix.Errno, err error) {
	if b.Len() == 0 {
		return 0, 0, nil
	}
	b.headers(0, true)
	b.n, b.flags, b.errno = 0, flags, 0
	if b.recvFn == nil {
		b.recvFn = b.recvmmsg
	}
	err = c.rc.Read(b.recvFn)
	if err != nil || b.errno != 0 {
		return 0, b.errno, err
	}
	return b.n, 0, nil
}

// recvmmsg reads into b; false while no datagram is there (the poller
// waits until the socket is readable).
func (b *Batch) recvmmsg(fd uintptr) bool {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.h[0])), uintptr(min(b.Len(), MaxBatch)),
			uintptr(b.flags), 0, 0)
		switch e {
		case 0:
			b.n = int(r)
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait until readable
		default:
			b.errno = e
		}
		return true
	}
}

// Sockaddr writes ap into sa as an address of the socket family dom
// (AF_INET or AF_INET6: an IPv4 address as ::ffff:a.b.c.d) and returns its
// length; 0 if it cannot (a family mismatch, a zoned IPv6 address).
func Sockaddr(dom int, ap netip.AddrPort, sa *unix.RawSockaddrAny) uint32 {
	ip, port := ap.Addr(), ap.Port()
	switch {
	case dom == unix.AF_INET && ip.Unmap().Is4():
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*a = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.Unmap().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.Port))[:], port)
		return unix.SizeofSockaddrInet4
	case dom == unix.AF_INET6 && ip.IsValid() && ip.Zone() == "":
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		*a = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a.Port))[:], port)
		return unix.SizeofSockaddrInet6
	}
	return 0
}

// AddrPort is the address and port in sa, and the IPv6 scope ID (0 when
// none); the zero AddrPort for a family other than IPv4 or IPv6. An
// IPv4-mapped IPv6 address stays mapped.
func AddrPort(sa *unix.RawSockaddrAny) (netip.AddrPort, uint32) {
	switch sa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])), 0
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])), a.Scope_id
	}
	return netip.AddrPort{}, 0
}
