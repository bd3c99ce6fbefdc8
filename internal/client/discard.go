package client

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// discard reads n bytes from conn and drops them. From a TCP connection
// the kernel drops them itself: recv(2) with MSG_TRUNC frees the queued
// data without copying it (tcp(7)), one system call per read where
// splice(2) to /dev/null takes two and a pipe. Other connections are read
// through a buffer. Fewer than n bytes is io.EOF.
func discard(conn net.Conn, n int64) (int64, error) {
	if tc, ok := conn.(*net.TCPConn); ok {
		if sink, err := truncSink(); err == nil {
			m, err := discardTCP(tc, n, sink)
			if err != nil && !errors.Is(err, io.EOF) {
				err = fmt.Errorf("read body: %w", err)
			}
			return m, err
		}
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	m, err := io.CopyBuffer(io.Discard, io.LimitReader(struct{ io.Reader }{conn}, n), *buf)
	if err == nil && m < n {
		err = io.EOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("read body: %w", err)
	}
	return m, err
}

// truncSink is the buffer address MSG_TRUNC reads name: 16 MiB of address
// space mapped PROT_NONE, never memory. The kernel does not write to it
// (MSG_TRUNC); if it ever tried, the read would fail with EFAULT rather
// than touch the process's memory.
var truncSink = sync.OnceValues(func() ([]byte, error) {
	return unix.Mmap(-1, 0, 16<<20, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
})

// discardLowat is the most a discarding reader waits for before it wakes.
const discardLowat = 256 << 10

// discardTCP drops n bytes of conn with recv(MSG_TRUNC) into sink, waiting
// for data in the runtime's poller (and so honouring conn's deadlines).
func discardTCP(conn *net.TCPConn, n int64, sink []byte) (int64, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var done int64
	var rerr error
	lowat := 0
	err = rc.Read(func(fd uintptr) bool {
		for done < n {
			// Wake only once a good part of the rest has come (SO_RCVLOWAT:
			// the kernel tells the poller when that many bytes wait, or
			// the stream ended), not for every segment.
			if w := int(min(n-done, discardLowat)); w != lowat {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT, w) == nil {
					lowat = w
				}
			}
			want := min(n-done, int64(len(sink)))
			r, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&sink[0])), uintptr(want),
				unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return false // wait until readable
			case e != 0:
				rerr = e
				return true
			case r == 0:
				rerr = io.EOF
				return true
			}
			done += int64(r)
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	return done, err
}
