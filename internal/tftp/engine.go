package tftp

import (
	"container/heap"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine serves lockstep transfers (windowsize 1, RFC 1350) from an event
// loop instead of a goroutine each. A goroutine per transfer that waits for
// every ACK in Go's network poller pays, per packet, a park, an epoll wake and
// a reschedule; with hundreds of transfers at once (a boot storm of BIOS PXE
// ROMs) that was a third of the server's CPU. Here GOMAXPROCS workers each own
// an epoll set of transfer sockets: one epoll_wait returns every socket with
// an ACK waiting, and the worker answers each with the next DATA packet
// (recvfrom, sendto) on the spot. Retransmission and first-ACK deadlines are
// a heap per worker, its earliest the epoll_wait timeout.
//
// The transfer's goroutine still opens the socket, asks the Handler and
// negotiates; it then hands the socket to a worker and waits for the outcome,
// so admission, OnDone and Stats are as for any transfer. Windowed transfers
// (RFC 7440) stay on their goroutine: a window per ACK already amortises the
// wake, and they send with UDP GSO.
type engine struct {
	once    sync.Once
	err     error // the engine could not start: transfers use their goroutine
	workers []*worker
	next    atomic.Uint32
	wg      sync.WaitGroup
	stopped sync.Once
}

// start creates the workers on first use.
func (e *engine) start(s *Server) error {
	e.once.Do(func() {
		for range runtime.GOMAXPROCS(0) {
			w, err := newWorker(s)
			if err != nil {
				e.err = err
				break
			}
			e.workers = append(e.workers, w)
		}
		if e.err != nil {
			for _, w := range e.workers {
				w.close()
			}
			e.workers = nil
			return
		}
		for _, w := range e.workers {
			e.wg.Go(w.loop)
		}
	})
	return e.err
}

// pick is the worker a new transfer goes to (round robin).
func (e *engine) pick() *worker {
	return e.workers[int(e.next.Add(1))%len(e.workers)]
}

// stop ends the workers once their transfers are done (Close, Shutdown).
func (e *engine) stop() {
	e.once.Do(func() { e.err = ErrServerClosed }) // never start after stop
	e.stopped.Do(func() {
		for _, w := range e.workers {
			w.post(cmd{op: cmdStop})
		}
	})
	e.wg.Wait()
}

type cmdOp int

const (
	cmdAdd cmdOp = iota
	cmdCancel
	cmdStop
)

type cmd struct {
	op cmdOp
	ls *lockstep
}

// worker is one event loop: its epoll set, and an eventfd through which other
// goroutines post commands (new transfer, cancel, stop).
type worker struct {
	srv        *Server
	epfd, evfd int

	mu      sync.Mutex
	cmds    []cmd
	pending bool // evfd was written and not yet read

	// Owned by the loop goroutine.
	byFD     []*lockstep // transfers by socket
	timers   timerHeap
	events   []unix.EpollEvent
	rbuf     []byte
	rsa      unix.RawSockaddrAny
	stopping bool
	n        int // transfers in byFD
}

func newWorker(s *Server) (*worker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("tftp: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("tftp: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("tftp: epoll_ctl: %w", err)
	}
	return &worker{srv: s, epfd: epfd, evfd: evfd, events: make([]unix.EpollEvent, 256), rbuf: make([]byte, 1024)}, nil
}

func (w *worker) close() {
	unix.Close(w.epfd)
	unix.Close(w.evfd)
}

// post hands a command to the loop from another goroutine.
func (w *worker) post(c cmd) {
	w.mu.Lock()
	w.cmds = append(w.cmds, c)
	wake := !w.pending
	w.pending = true
	w.mu.Unlock()
	if wake {
		one := uint64(1)
		unix.Write(w.evfd, (*[8]byte)(unsafe.Pointer(&one))[:])
	}
}

func (w *worker) loop() {
	defer w.close()
	var cmds []cmd
	for {
		timeout := -1
		if len(w.timers) > 0 {
			d := time.Until(w.timers[0].at)
			timeout = max(0, int((d+time.Millisecond-1)/time.Millisecond))
		}
		// A blocking system call: the runtime hands this thread's P to
		// other goroutines while it waits. (Parking the goroutine in Go's
		// poller on the epoll fd instead cost as much CPU per packet and
		// was slower with 500 lockstep clients.)
		n, err := unix.EpollWait(w.epfd, w.events, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// Not expected with a valid epoll fd; end the transfers
			// rather than spin.
			w.srv.logger().Error("tftp: epoll_wait failed", "err", err)
			for _, ls := range w.byFD {
				if ls != nil {
					w.finish(ls, fmt.Errorf("tftp: %q: epoll_wait: %w", ls.t.req.Filename, err))
				}
			}
			return
		}
		now := time.Now()
		for _, ev := range w.events[:n] {
			fd := int(ev.Fd)
			if fd == w.evfd {
				var b [8]byte
				unix.Read(w.evfd, b[:])
				w.mu.Lock()
				cmds, w.cmds = w.cmds, cmds[:0]
				w.pending = false
				w.mu.Unlock()
				for _, c := range cmds {
					w.do(c, now)
				}
				clear(cmds)
				continue
			}
			if fd < len(w.byFD) && w.byFD[fd] != nil {
				w.readable(w.byFD[fd], now)
			}
		}
		for len(w.timers) > 0 && !w.timers[0].at.After(now) {
			w.expire(w.timers[0], now)
		}
		if w.stopping && w.n == 0 {
			return
		}
	}
}

func (w *worker) do(c cmd, now time.Time) {
	switch c.op {
	case cmdStop:
		w.stopping = true
	case cmdAdd:
		ls := c.ls
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, ls.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ls.fd)}); err != nil {
			ls.done <- fmt.Errorf("tftp: %q: epoll_ctl: %w", ls.t.req.Filename, err)
			return
		}
		if ls.fd >= len(w.byFD) {
			w.byFD = append(w.byFD, make([]*lockstep, ls.fd+1-len(w.byFD))...)
		}
		w.byFD[ls.fd] = ls
		w.n++
		if err := ls.start(now); err != nil {
			w.finish(ls, err)
			return
		}
		w.schedule(ls)
	case cmdCancel:
		if ls := c.ls; ls.fd < len(w.byFD) && w.byFD[ls.fd] == ls {
			w.finish(ls, fmt.Errorf("tftp: %q: %w", ls.t.req.Filename, net.ErrClosed))
		}
	}
}

// finish ends a transfer: off the epoll set and the timers, its outcome to
// the goroutine waiting in sendEvented (which closes the socket).
func (w *worker) finish(ls *lockstep, err error) {
	if ls.finished {
		return
	}
	ls.finished = true
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, ls.fd, nil)
	w.byFD[ls.fd] = nil
	w.n--
	if ls.hidx >= 0 {
		heap.Remove(&w.timers, ls.hidx)
	}
	ls.done <- err
}

// schedule (re)arms ls's timer at the earlier of its retransmission deadline
// and, until the first ACK, the first-ACK bound.
func (w *worker) schedule(ls *lockstep) {
	at := ls.rtoAt
	if !ls.firstBy.IsZero() && ls.firstBy.Before(at) {
		at = ls.firstBy
	}
	ls.at = at
	if ls.hidx < 0 {
		heap.Push(&w.timers, ls)
	} else {
		heap.Fix(&w.timers, ls.hidx)
	}
}

func (w *worker) expire(ls *lockstep, now time.Time) {
	if !ls.firstBy.IsZero() && !ls.firstBy.After(now) {
		// No ACK within firstAckWait: serve reports errNoAck.
		ls.t.silent.Store(true)
		w.finish(ls, fmt.Errorf("tftp: %q: %w", ls.t.req.Filename, net.ErrClosed))
		return
	}
	if err := ls.timeout(now); err != nil {
		w.finish(ls, err)
		return
	}
	w.schedule(ls)
}

// readable reads one datagram from ls's socket (epoll is level-triggered:
// another one waiting is reported again) and acts on it.
func (w *worker) readable(ls *lockstep, now time.Time) {
	n, err := recvfrom(ls.fd, w.rbuf, &w.rsa)
	if err != nil {
		if err != unix.EAGAIN && err != unix.EINTR {
			// ICMP port unreachable (ECONNREFUSED) and the like: the
			// retransmission timer decides, as on the goroutine path.
			w.srv.logger().Debug("tftp: receive failed", "client", ls.t.peer, "err", err)
		}
		return
	}
	from := rawToAddrPort(&w.rsa)
	if err := ls.receive(w.rbuf[:n], from, now); err != nil {
		w.finish(ls, err)
		return
	}
	if ls.complete {
		w.finish(ls, nil)
		return
	}
	w.schedule(ls)
}

// timerHeap orders transfers by their next deadline.
type timerHeap []*lockstep

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *timerHeap) Push(x any) {
	ls := x.(*lockstep)
	ls.hidx = len(*h)
	*h = append(*h, ls)
}
func (h *timerHeap) Pop() any {
	old := *h
	ls := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	ls.hidx = -1
	return ls
}

// detach takes conn's socket out of Go's network poller: it returns a
// duplicate descriptor and closes conn, so the poller is no longer woken by
// the datagrams the engine reads.
func detach(conn *net.UDPConn) (int, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	conn.Close()
	return fd, nil
}
