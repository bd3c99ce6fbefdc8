package tftp

// Admission bounds what read requests can make the server hold: transfers
// running at once in total (MaxTransfers) and per client address
// (MaxPerClient), each with its socket; past a limit a request waits in a
// queue that holds no socket, only the parsed request (QueueLen, QueueWait).
// When a slot frees, the oldest queued request whose client is under its cap
// starts: FIFO within a client, and a greedy address cannot hold back
// another one's requests behind its own backlog.

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"
)

// Default limits of a Server whose field is 0.
const (
	DefaultMaxTransfers = 1000
	DefaultMaxPerClient = 64
	DefaultQueueLen     = 4096
	DefaultQueueWait    = 30 * time.Second
	DefaultMaxTimeout   = 10 * time.Second
)

// ErrBusy is wrapped by the Transfer.Err (given to OnDone) of a read request
// refused because the server was at a limit: the queue was full, the request
// waited longer than QueueWait, or no socket could be opened for its transfer.
// The client got ERROR 0 with a message that starts with "server busy"; the
// Client's error then matches ErrBusy too.
var ErrBusy = errors.New("server busy")

// Messages of the ERROR 0 packets sent for refusals by a limit: they start
// with "server busy" (PeerError.Is matches them to ErrBusy).
const (
	msgBusyQueue  = "server busy: too many transfers, try again"
	msgBusyWait   = "server busy: too many transfers, waited too long, try again"
	msgBusySocket = "server busy: out of sockets, try again"
	msgClosing    = "server shutting down"
)

// errNoAck marks transfers whose client never acknowledged anything.
var errNoAck = errors.New("client never acknowledged")

// firstAckWait bounds how long a transfer waits for the first ACK (of the
// OACK or of block 1) before it gives up and frees its slot: 4 timeouts, at
// least 5 s. By then the first packet was sent 3 times (at 0, 1 and 3
// timeouts; a client's resent RRQ is answered by these resends), so two
// losses in a row are survived, while a live client on a LAN answers in
// milliseconds. Without it a silent client holds its socket for the whole
// retransmission schedule: 63 timeouts with 5 retries (63 s at 1 s, over 4
// minutes at 10 s with the 60 s backoff cap). A client that acknowledged
// once is then bound by Retries alone. The 5 s floor keeps short configured
// timeouts (tests, tuned LANs) on their Retries schedule.
func firstAckWait(timeout time.Duration) time.Duration {
	return max(4*timeout, 5*time.Second)
}

// idleWait bounds how long a transfer that was acknowledged before waits
// for the next ACK: 8 timeouts, at least 5 s (a client that went silent
// mid-transfer, or one that ACKs once to hold a slot). The Retries schedule
// alone (backoff to 60 s) held such a slot for over 4 minutes at a 10 s
// timeout; 8 timeouts still survive several lost packets in a row.
func idleWait(timeout time.Duration) time.Duration {
	return max(8*timeout, 5*time.Second)
}

func (s *Server) maxTransfers() int {
	switch {
	case s.MaxTransfers == 0:
		return DefaultMaxTransfers
	case s.MaxTransfers < 0:
		return math.MaxInt
	}
	return s.MaxTransfers
}

func (s *Server) maxPerClient() int {
	switch {
	case s.MaxPerClient == 0:
		return DefaultMaxPerClient
	case s.MaxPerClient < 0:
		return math.MaxInt
	}
	return s.MaxPerClient
}

func (s *Server) queueLen() int {
	switch {
	case s.QueueLen == 0:
		return DefaultQueueLen
	case s.QueueLen < 0:
		return 0
	}
	return s.QueueLen
}

func (s *Server) queueWait() time.Duration {
	if s.QueueWait <= 0 {
		return DefaultQueueWait
	}
	return s.QueueWait
}

func (s *Server) maxTimeout() time.Duration {
	switch {
	case s.MaxTimeout == 0:
		return DefaultMaxTimeout
	case s.MaxTimeout < 0:
		return 0 // Negotiate: no cap but RFC 2349's 255 s
	}
	return s.MaxTimeout
}

// pending is a read request waiting for a transfer slot: the parsed request
// and the listener to answer a refusal from, no socket.
type pending struct {
	t          *transfer // not started
	since      time.Time // arrival; the queue wait runs from here
	seq        uint64    // arrival order
	prev, next *pending  // the queue, all clients, oldest first
}

// clientQueue is the queued requests of one client address, oldest first.
type clientQueue struct {
	addr netip.Addr
	reqs []*pending
	idx  int // index in admission.ready; -1 when not there
}

// readyQueues is a min-heap of the client queues whose client is under
// MaxPerClient, by the arrival of their oldest request.
type readyQueues []*clientQueue

func (h readyQueues) Len() int           { return len(h) }
func (h readyQueues) Less(i, j int) bool { return h[i].reqs[0].seq < h[j].reqs[0].seq }
func (h readyQueues) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *readyQueues) Push(x any) {
	q := x.(*clientQueue)
	q.idx = len(*h)
	*h = append(*h, q)
}
func (h *readyQueues) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h, q.idx = old[:len(old)-1], -1
	return q
}

// admission is the Server's bookkeeping of slots and queue; guarded by
// Server.mu. Running transfers are Server.active.
type admission struct {
	running    map[netip.Addr]int          // running transfers per client address
	waiting    map[netip.AddrPort]*pending // queued requests by source, to drop resent RRQs
	clients    map[netip.Addr]*clientQueue // clients with queued requests
	ready      readyQueues
	head, tail *pending
	n          int // queued requests
	seq        uint64
	timer      *time.Timer // expires the head once it waited QueueWait
}

// admitLocked starts t, queues it or, when the queue is full, reports false:
// the caller then refuses it with refuseBusy. t is not a duplicate.
func (s *Server) admitLocked(t *transfer, now time.Time) bool {
	a := &s.adm
	addr := t.peer.Addr()
	if len(s.active) < s.maxTransfers() && a.running[addr] < s.maxPerClient() {
		// Nothing queued can be waiting for this slot: a queued request
		// under its client's cap starts as soon as a slot frees (fillLocked).
		s.wg.Add(1)
		s.startLocked(t)
		return true
	}
	if a.n >= s.queueLen() {
		return false
	}
	s.wg.Add(1) // a queued request is waited for as a transfer is
	if a.waiting == nil {
		a.waiting = make(map[netip.AddrPort]*pending)
		a.clients = make(map[netip.Addr]*clientQueue)
	}
	p := &pending{t: t, since: now, seq: a.seq}
	a.seq++
	if a.tail == nil {
		a.head, a.tail = p, p
		wait := s.queueWait()
		if a.timer == nil {
			a.timer = time.AfterFunc(wait, s.expireQueued)
		} else {
			a.timer.Reset(wait)
		}
	} else {
		p.prev, a.tail.next, a.tail = a.tail, p, p
	}
	a.n++
	a.waiting[t.peer] = p
	q := a.clients[addr]
	if q == nil {
		q = &clientQueue{addr: addr, idx: -1}
		a.clients[addr] = q
	}
	q.reqs = append(q.reqs, p)
	if q.idx < 0 && a.running[addr] < s.maxPerClient() {
		heap.Push(&a.ready, q)
	}
	s.queuedN.Add(1)
	return true
}

// startLocked runs t in its own goroutine.
func (s *Server) startLocked(t *transfer) {
	if s.active == nil {
		s.active = make(map[netip.AddrPort]*transfer)
		s.adm.running = make(map[netip.Addr]int)
	}
	s.active[t.peer] = t
	s.adm.running[t.peer.Addr()]++
	if n := int64(len(s.active)); n > s.peak.Load() {
		s.peak.Store(n)
	}
	s.activeN.Add(1)
	go t.run()
}

// releaseLocked frees the slot of a transfer of addr that ended and gives
// the free slots to queued requests.
func (s *Server) releaseLocked(addr netip.Addr) {
	a := &s.adm
	n := a.running[addr] - 1
	if n > 0 {
		a.running[addr] = n
	} else {
		delete(a.running, addr)
	}
	if a.n == 0 {
		return
	}
	if q := a.clients[addr]; q != nil && q.idx < 0 && n < s.maxPerClient() {
		heap.Push(&a.ready, q)
	}
	s.fillLocked()
}

// fillLocked starts queued requests while there are free slots: each time
// the oldest request of a client under its cap.
func (s *Server) fillLocked() {
	a := &s.adm
	for !s.closed && len(a.ready) > 0 && len(s.active) < s.maxTransfers() {
		q := a.ready[0]
		p := q.reqs[0]
		s.unqueueLocked(p)
		if q.idx >= 0 && a.running[q.addr]+1 >= s.maxPerClient() {
			heap.Remove(&a.ready, q.idx)
		}
		s.startLocked(p.t)
	}
}

// unqueueLocked takes p out of the queue.
func (s *Server) unqueueLocked(p *pending) {
	a := &s.adm
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		a.head = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		a.tail = p.prev
	}
	p.prev, p.next = nil, nil
	a.n--
	s.queuedN.Add(-1)
	delete(a.waiting, p.t.peer)
	addr := p.t.peer.Addr()
	q := a.clients[addr]
	if q.reqs[0] == p { // always, but when a listener closes
		q.reqs[0] = nil
		q.reqs = q.reqs[1:]
	} else if i := slices.Index(q.reqs, p); i >= 0 {
		q.reqs = slices.Delete(q.reqs, i, i+1)
	}
	switch {
	case len(q.reqs) == 0:
		if q.idx >= 0 {
			heap.Remove(&a.ready, q.idx)
		}
		delete(a.clients, addr)
	case q.idx >= 0:
		heap.Fix(&a.ready, q.idx)
	}
}

// expireQueued refuses the requests that waited QueueWait (the queue's
// timer calls it).
func (s *Server) expireQueued() {
	now := time.Now()
	wait := s.queueWait()
	var out []*pending
	s.mu.Lock()
	a := &s.adm
	for p := a.head; p != nil && now.Sub(p.since) >= wait; p = a.head {
		s.unqueueLocked(p)
		out = append(out, p)
	}
	if a.head != nil {
		a.timer.Reset(a.head.since.Add(wait).Sub(now))
	}
	s.mu.Unlock()
	for _, p := range out {
		s.refuseBusy(p.t, p.since, "waited too long in the queue", msgBusyWait)
		s.wg.Done()
	}
}

// dropQueued refuses the queued requests that came in on listener l (all of
// them if l is nil) with "server shutting down": the server or that
// listener is closing.
func (s *Server) dropQueued(l net.PacketConn) {
	var out []*pending
	s.mu.Lock()
	a := &s.adm
	for p := a.head; p != nil; {
		next := p.next
		if l == nil || p.t.lconn == l {
			s.unqueueLocked(p)
			out = append(out, p)
		}
		p = next
	}
	if a.head == nil && a.timer != nil {
		a.timer.Stop()
	}
	s.mu.Unlock()
	if len(out) > 0 {
		s.logger().Info("tftp: queued requests refused: shutting down", "n", len(out))
	}
	for _, p := range out {
		s.refused.Add(1)
		s.reply(p.t.lconn, p.t.peer, ErrCodeUndefined, msgClosing)
		s.reportRefused(p.t, p.since, fmt.Errorf("tftp: %q: %w", p.t.req.Filename, ErrServerClosed))
		s.wg.Done()
	}
}

// refuseBusy answers a read request with "server busy" from the listener it
// came in on, counts it, logs it (at most once per interval and reason) and
// reports it to OnDone.
func (s *Server) refuseBusy(t *transfer, since time.Time, why, msg string) {
	s.busy.Add(1)
	s.reply(t.lconn, t.peer, ErrCodeUndefined, msg)
	if ok, n := s.logLimit.Allow(why); ok {
		st := s.Stats()
		s.logger().Warn("tftp: request refused: server busy", "why", why, "client", t.peer, "file", t.req.Filename,
			"active", st.Active, "queued", st.Queued, "max_transfers", s.maxTransfers(),
			"max_per_client", s.maxPerClient(), "queue_len", s.queueLen(), "suppressed", n)
	}
	s.reportRefused(t, since, fmt.Errorf("tftp: %q: %w: %s", t.req.Filename, ErrBusy, why))
}

// reportRefused tells OnDone about a request that never became a transfer.
func (s *Server) reportRefused(t *transfer, since time.Time, err error) {
	if s.OnDone == nil {
		return
	}
	s.OnDone(Transfer{Filename: t.req.Filename, Client: t.peer, Blksize: DefaultBlksize, Windowsize: 1,
		Size: -1, Start: since, Dur: time.Since(since), Err: err})
}

// socketBusy is the outcome of a transfer whose socket could not be opened
// (EMFILE, ENFILE, ENOBUFS...): the client hears "server busy" from the
// listener, the log hears it at most once per interval, and the listener goes
// on serving.
func (t *transfer) socketBusy(err error) error {
	s := t.srv
	s.busy.Add(1)
	s.reply(t.lconn, t.peer, ErrCodeUndefined, msgBusySocket)
	if ok, n := s.logLimit.Allow("socket"); ok {
		s.logger().Warn("tftp: cannot open a transfer socket: request refused with server busy",
			"client", t.peer, "file", t.req.Filename, "err", err, "active", s.activeN.Load(),
			"fix", "raise the open file limit (ulimit -n) well above 2 x MaxTransfers, or lower MaxTransfers",
			"suppressed", n)
	}
	return fmt.Errorf("tftp: %q: %w: transfer socket: %w", t.req.Filename, ErrBusy, err)
}

// watchFirstAck closes conn, ending the transfer, if no ACK came within wait
// (see firstAckWait). The caller stops the returned timer when send returns.
func (t *transfer) watchFirstAck(conn *net.UDPConn, wait time.Duration) *time.Timer {
	return time.AfterFunc(wait, func() {
		if !t.acked.Load() {
			t.silent.Store(true)
			conn.Close()
		}
	})
}

// noAckErr is the error of a transfer whose client never acknowledged: err
// from send if the retries ran out first, or the firstAckWait bound.
func (t *transfer) noAckErr(err error, wait time.Duration) error {
	if t.silent.Load() {
		return fmt.Errorf("tftp: %q: %w within %v: %w", t.req.Filename, errNoAck, wait, os.ErrDeadlineExceeded)
	}
	return fmt.Errorf("%w: %w", errNoAck, err)
}
