package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ClientEngine runs many client downloads from one goroutine: every
// transfer keeps its own UDP socket, source address and port, options,
// timeouts and retries (the same state machine as Client.Get), but one
// epoll loop reads and answers them all. A load generator simulating
// hundreds of machines on a few cores (pxed storm) spends its CPU on
// packets rather than on waking a goroutine per block. Linux only.
type ClientEngine struct {
	epfd, evfd int
	mu         sync.Mutex
	adds       []*engXfer
	cancels    []*engXfer
	closed     bool
	done       chan struct{}
}

// engXfer is one transfer of the engine; after start only the loop
// touches it.
type engXfer struct {
	x         *xfer
	fd        int
	connected bool
	due       time.Time // the retransmit timeout
	dally     int       // > 0: complete, ACKing a resent final block (packets left)
	finished  bool
	ctx       context.Context
	result    chan error // one error (nil: complete)
}

// engineTick is how often the loop looks for expired timeouts.
const engineTick = 10 * time.Millisecond

// NewClientEngine starts an engine; Close stops it.
func NewClientEngine() (*ClientEngine, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("tftp: client engine: epoll: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("tftp: client engine: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("tftp: client engine: epoll add: %w", err)
	}
	e := &ClientEngine{epfd: epfd, evfd: evfd, done: make(chan struct{})}
	go e.loop()
	return e, nil
}

// Close ends every transfer still running (net.ErrClosed) and stops the
// loop.
func (e *ClientEngine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.wake()
	<-e.done
	unix.Close(e.evfd)
	return unix.Close(e.epfd)
}

func (e *ClientEngine) wake() {
	var one = [8]byte{1}
	unix.Write(e.evfd, one[:])
}

// Get downloads filename from server into w as c.Get does, from a socket
// bound to local (port 0: any; an invalid address: any address) and, when
// device is not "", to that interface (SO_BINDTODEVICE). c.Dial is not
// used; the socket is always connected to the server's port once it
// answers (Client.Connect). w is written from the engine's goroutine.
func (e *ClientEngine) Get(ctx context.Context, c *Client, local netip.Addr, device string, server netip.AddrPort, filename string, w io.Writer) (Transfer, error) {
	tr := Transfer{Filename: filename, Client: server, Blksize: DefaultBlksize, Windowsize: 1, Size: -1, Start: time.Now()}
	err := e.get(ctx, c, local, device, server, filename, w, &tr)
	tr.Dur = time.Since(tr.Start)
	tr.Err = err
	var pe *PeerError
	tr.Aborted = errors.As(err, &pe)
	return tr, err
}

func (e *ClientEngine) get(ctx context.Context, c *Client, local netip.Addr, device string, server netip.AddrPort, filename string, w io.Writer, tr *Transfer) error {
	fd, err := clientSocket(c, local, device, server)
	if err != nil {
		return fmt.Errorf("tftp: get %q: socket: %w", filename, err)
	}
	x := newXfer(c, server, filename, w, tr)
	t := &engXfer{x: x, fd: fd, ctx: ctx, result: make(chan error, 1)}
	if err := t.send(x.request()); err != nil {
		unix.Close(fd)
		return err
	}
	t.due = time.Now().Add(x.curRTO)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		unix.Close(fd)
		return fmt.Errorf("tftp: get %q: %w", filename, net.ErrClosed)
	}
	e.adds = append(e.adds, t)
	e.mu.Unlock()
	e.wake()
	stop := context.AfterFunc(ctx, func() {
		e.mu.Lock()
		e.cancels = append(e.cancels, t)
		e.mu.Unlock()
		e.wake()
	})
	defer stop()
	return <-t.result
}

// clientSocket opens the non-blocking UDP socket of one engine transfer.
func clientSocket(c *Client, local netip.Addr, device string, server netip.AddrPort) (int, error) {
	v6 := server.Addr().Is6() && !server.Addr().Is4In6()
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, err
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	if device != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, device); err != nil {
			return fail("SO_BINDTODEVICE "+device, err)
		}
	}
	if c.Windowsize > 1 {
		// A whole window must fit the receive buffer (as Client.get).
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, min(2*c.Windowsize*(max(c.Blksize, DefaultBlksize)+64), 8<<20))
	}
	var sa unix.Sockaddr = &unix.SockaddrInet4{}
	if v6 {
		sa = &unix.SockaddrInet6{}
	}
	if local.IsValid() {
		if v6 {
			sa = &unix.SockaddrInet6{Addr: local.As16()}
		} else if local.Unmap().Is4() {
			sa = &unix.SockaddrInet4{Addr: local.Unmap().As4()}
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(fmt.Sprintf("bind %v", local), err)
	}
	return fd, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr().Unmap(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	}
	sa := &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	if zone := ap.Addr().Zone(); zone != "" { // a link-local server: its interface
		if ifi, err := net.InterfaceByName(zone); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		} else if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			sa.ZoneId = uint32(n)
		}
	}
	return sa
}

// send sends o from t's socket (send(2) once connected to the TID).
func (t *engXfer) send(o out) error {
	if o.b == nil {
		return nil
	}
	var err error
	for {
		if t.connected && o.to == t.x.tid {
			_, err = unix.Write(t.fd, o.b)
		} else {
			err = unix.Sendto(t.fd, o.b, 0, sockaddr(o.to))
		}
		if err != unix.EINTR {
			break
		}
	}
	if err != nil && !o.quiet {
		return fmt.Errorf("tftp: send to %v: %w", o.to, err)
	}
	return nil
}

// loop is the engine's goroutine: it waits for packets on every transfer's
// socket, hands them to the transfers, and fires their timeouts.
func (e *ClientEngine) loop() {
	defer close(e.done)
	live := map[int32]*engXfer{}
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 4+MaxBlksize)
	lastScan := time.Now()
	for {
		wait := -1
		if len(live) > 0 {
			wait = int(engineTick / time.Millisecond)
		}
		n, err := unix.EpollWait(e.epfd, events, wait)
		if err != nil && err != unix.EINTR {
			n = 0
		}
		now := time.Now()
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == e.evfd {
				if e.control(live) {
					return
				}
				continue
			}
			if t := live[ev.Fd]; t != nil {
				e.drain(t, buf, now, live)
			}
		}
		if now.Sub(lastScan) >= engineTick {
			lastScan = now
			for _, t := range live {
				if now.After(t.due) {
					e.expire(t, now, live)
				}
			}
		}
	}
}

// control takes new transfers and cancellations; true: the engine closed.
func (e *ClientEngine) control(live map[int32]*engXfer) bool {
	var b [8]byte
	unix.Read(e.evfd, b[:])
	e.mu.Lock()
	adds, cancels, closed := e.adds, e.cancels, e.closed
	e.adds, e.cancels = nil, nil
	e.mu.Unlock()
	for _, t := range adds {
		if err := unix.EpollCtl(e.epfd, unix.EPOLL_CTL_ADD, t.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(t.fd)}); err != nil {
			unix.Close(t.fd)
			t.result <- fmt.Errorf("tftp: get %q: epoll: %w", t.x.filename, err)
			continue
		}
		live[int32(t.fd)] = t
	}
	for _, t := range cancels {
		if live[int32(t.fd)] == t {
			e.end(t, fmt.Errorf("tftp: get %q: %w", t.x.filename, t.ctx.Err()), live)
		}
	}
	if closed {
		for _, t := range live {
			e.end(t, fmt.Errorf("tftp: get %q: %w", t.x.filename, net.ErrClosed), live)
		}
		return true
	}
	return false
}

// end closes t's socket and, unless it completed before, reports err.
func (e *ClientEngine) end(t *engXfer, err error, live map[int32]*engXfer) {
	unix.EpollCtl(e.epfd, unix.EPOLL_CTL_DEL, t.fd, nil)
	delete(live, int32(t.fd))
	unix.Close(t.fd)
	if !t.finished {
		t.finished = true
		t.result <- err
	}
}

// drain reads one datagram waiting on t's socket. One per readiness
// event: a lockstep transfer has one packet in flight, so reading on to
// EAGAIN would cost a system call per block for nothing; the epoll set is
// level-triggered and reports a socket again while datagrams wait.
func (e *ClientEngine) drain(t *engXfer, buf []byte, now time.Time, live map[int32]*engXfer) {
	x := t.x
	for {
		var n int
		var from netip.AddrPort
		var err error
		if t.connected {
			n, err = unix.Read(t.fd, buf)
			from = x.tid
		} else {
			var sa unix.Sockaddr
			n, sa, err = unix.Recvfrom(t.fd, buf, 0)
			switch sa := sa.(type) {
			case *unix.SockaddrInet4:
				from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
			case *unix.SockaddrInet6:
				// The server's zone, as Client.Get's socket reports it.
				from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).WithZone(x.server.Addr().Zone()), uint16(sa.Port))
			}
		}
		switch {
		case err == unix.EAGAIN:
			return
		case err == unix.EINTR, t.connected && err == unix.ECONNREFUSED:
			continue // an ICMP error for the connected socket: firmware ignores those
		case err != nil:
			e.end(t, fmt.Errorf("tftp: get %q: %w", x.filename, err), live)
			return
		}
		if t.finished { // dallying
			if x.finalData(buf[:n], from) {
				t.send(out{b: appendAck(nil, x.last), to: x.tid})
			}
			if t.dally--; t.dally <= 0 {
				e.end(t, nil, live)
			}
			return
		}
		hadTID := x.tid.IsValid()
		o, done, err := x.packet(buf[:n], from)
		t.due = now.Add(x.curRTO)
		if !hadTID && x.tid.IsValid() {
			if cerr := unix.Connect(t.fd, sockaddr(x.tid)); cerr == nil {
				t.connected = true
			}
		}
		if serr := t.send(o); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			e.end(t, err, live)
			return
		}
		if done {
			// Complete: report it, and dally one timeout for a resent
			// final block (RFC 1350 §6).
			t.finished = true
			t.result <- nil
			t.dally, t.due = 16, now.Add(x.rto)
		}
		return
	}
}

// expire fires t's retransmit timeout (or ends its dally).
func (e *ClientEngine) expire(t *engXfer, now time.Time, live map[int32]*engXfer) {
	if t.finished {
		e.end(t, nil, live)
		return
	}
	o, err := t.x.timeout()
	if err == nil {
		err = t.send(o)
	}
	if err != nil {
		e.end(t, err, live)
		return
	}
	t.due = now.Add(t.x.curRTO)
}
