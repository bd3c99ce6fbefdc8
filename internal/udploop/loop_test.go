package udploop

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"pxed/internal/lease"
)

// Both x/net packet connections fit: DHCPv6 serves its sockets with the
// same loop.
var (
	_ Conn = (*ipv4.PacketConn)(nil)
	_ Conn = (*ipv6.PacketConn)(nil)
)

// fakeConn reads the packets of in, one per read, until in is closed, and
// records what is written to it; fail, when set, refuses a message.
type fakeConn struct {
	in   chan string
	fail func(to netip.AddrPort) error
	// full is the number of writes that do not wait (MSG_DONTWAIT) to
	// refuse with EAGAIN, as a full send buffer does.
	full int

	mu        sync.Mutex
	written   []string    // "payload>address"
	deadlines []time.Time // every SetWriteDeadline, in order
	waited    int         // writes that would wait in the poller (no MSG_DONTWAIT)
}

func (c *fakeConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	p, ok := <-c.in
	if !ok {
		return 0, net.ErrClosed
	}
	ms[0].N, ms[0].NN, ms[0].Flags = copy(ms[0].Buffers[0], p), 0, 0
	ms[0].Addr = &net.UDPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 68}
	return 1, nil
}

func (c *fakeConn) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if flags&unix.MSG_DONTWAIT == 0 {
		c.waited++
	} else if c.full > 0 {
		c.full--
		return 0, os.NewSyscallError("sendmmsg", unix.EAGAIN)
	}
	for i, m := range ms {
		to := m.Addr.(*net.UDPAddr).AddrPort()
		if c.fail != nil {
			if err := c.fail(to); err != nil {
				return i, err
			}
		}
		c.written = append(c.written, string(m.Buffers[0])+">"+to.String())
	}
	return len(ms), nil
}

func (c *fakeConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, t)
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) writes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.written...)
}

// echo answers a packet "x" with "re x" to 192.0.2.50:68; a packet that
// starts with "q" is answered on the reader. answer, when set, replaces
// the answer.
type echo struct {
	answer func(ctx context.Context, p string, d *lease.Deferred) Outcome
	wait   chan struct{} // when set, a worker's Answer waits for it to close
	worker chan string   // when set, told of each request a worker answers

	mu   sync.Mutex
	sent []string
}

func (e *echo) Decode(pk Packet) (string, bool) { return string(pk.Data), len(pk.Data) > 0 }
func (e *echo) Quick(p string) bool             { return strings.HasPrefix(p, "q") }
func (e *echo) Answer(ctx context.Context, p string, d *lease.Deferred, buf []byte) (Reply[string], Outcome) {
	if d == nil && e.worker != nil {
		e.worker <- p
	}
	if d == nil && e.wait != nil {
		<-e.wait
	}
	how := Send
	if e.answer != nil {
		how = e.answer(ctx, p, d)
	}
	return Reply[string]{Wire: append(buf, "re "+p...), To: netip.MustParseAddrPort("192.0.2.50:68"), Meta: p}, how
}
func (e *echo) Retry(r *Reply[string], _ error) bool {
	r.To = netip.MustParseAddrPort("255.255.255.255:68")
	return true
}
func (e *echo) Sent(_ context.Context, r *Reply[string]) {
	e.mu.Lock()
	e.sent = append(e.sent, r.Meta)
	e.mu.Unlock()
}
func (e *echo) RequestAttrs(p string) []any       { return []any{"p", p} }
func (e *echo) ReplyAttrs(r *Reply[string]) []any { return []any{"p", r.Meta} }

// serve runs a Loop over conn and h until the test ends.
func serve(t *testing.T, conn *fakeConn, h *echo, workers int) *Counters {
	t.Helper()
	l := &Loop[string, string]{Conn: conn, Handler: h, Name: "test", Workers: workers, BatchWait: -1}
	l.Counters = new(Counters)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		close(conn.in)
		<-done
	})
	return l.Counters
}

// eventually waits up to 5 s for ok.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
	}
}

// TestReaderAndWorkers: a Quick request is answered on the reader, the
// others by a worker; each reply leaves once and is counted.
func TestReaderAndWorkers(t *testing.T) {
	conn, h := &fakeConn{in: make(chan string, 8)}, &echo{}
	c := serve(t, conn, h, 2)
	conn.in <- "q1"
	conn.in <- "w1"
	eventually(t, "two replies", func() bool { return c.Stats().Replied == 2 })
	if st := c.Stats(); st.Received != 2 || st.SendErrs != 0 || st.Overload != 0 {
		t.Errorf("stats %+v", st)
	}
	if w := conn.writes(); len(w) != 2 {
		t.Errorf("written %q, want two replies", w)
	}
}

// TestOverload: with every worker busy and the queue full, a request is
// dropped and counted, not waited for.
func TestOverload(t *testing.T) {
	conn, h := &fakeConn{in: make(chan string, 16)}, &echo{wait: make(chan struct{}), worker: make(chan string, 16)}
	c := serve(t, conn, h, 1)
	conn.in <- "w0"
	<-h.worker // the only worker is busy
	for _, p := range []string{"w1", "w2", "w3", "w4", "w5", "w6", "w7"} {
		conn.in <- p // 4 queued, 3 dropped
	}
	eventually(t, "7 more read", func() bool { return c.Stats().Received == 8 })
	if st := c.Stats(); st.Overload != 3 {
		t.Errorf("overload %d, want 3 (one worker, a queue of 4)", st.Overload)
	}
	close(h.wait)
	eventually(t, "the 5 accepted answered", func() bool { return c.Stats().Replied == 5 })
}

// TestRetry: a reply the socket refuses is retried alone with what
// Handler.Retry changed; the next reply of the batch still leaves.
func TestRetry(t *testing.T) {
	conn := &fakeConn{in: make(chan string, 4), fail: func(to netip.AddrPort) error {
		if to.Addr() == netip.MustParseAddr("192.0.2.50") {
			return syscall.EHOSTUNREACH
		}
		return nil
	}}
	c := serve(t, conn, &echo{}, 1)
	conn.in <- "q1"
	eventually(t, "the retry sent", func() bool { return c.Stats().Replied == 1 })
	if w := conn.writes(); len(w) != 1 || w[0] != "re q1>255.255.255.255:68" {
		t.Errorf("written %q, want the reply broadcast", w)
	}
}

// TestSendBufferFull: replies the send buffer has no room for within
// SendWait are dropped and counted, not sent, not retried.
func TestSendBufferFull(t *testing.T) {
	conn := &fakeConn{in: make(chan string, 4), fail: func(netip.AddrPort) error { return os.ErrDeadlineExceeded }}
	h := &echo{}
	c := serve(t, conn, h, 1)
	conn.in <- "q1"
	eventually(t, "the reply dropped", func() bool { return c.Stats().SendErrs == 1 })
	if st := c.Stats(); st.Replied != 0 {
		t.Errorf("stats %+v: a reply counted as sent", st)
	}
}

// TestNoWriteDeadlineWithRoom: while the send buffer has room, replies
// leave without a write deadline (a runtime timer whose firing wakes the
// runtime's monitor thread) and without waiting in the poller.
func TestNoWriteDeadlineWithRoom(t *testing.T) {
	conn := &fakeConn{in: make(chan string, 4)}
	c := serve(t, conn, &echo{}, 1)
	conn.in <- "q1"
	conn.in <- "w2" // a worker's reply
	eventually(t, "both replies sent", func() bool { return c.Stats().Replied == 2 })
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if len(conn.deadlines) != 0 || conn.waited != 0 {
		t.Errorf("write deadlines %v, %d writes that could wait: want none", conn.deadlines, conn.waited)
	}
}

// TestFullBufferWaitsThenClearsDeadline: a send that finds the buffer
// full waits for room under a deadline SendWait away, sends, and clears
// the deadline again.
func TestFullBufferWaitsThenClearsDeadline(t *testing.T) {
	conn := &fakeConn{in: make(chan string, 4), full: 1}
	c := serve(t, conn, &echo{}, 1)
	start := time.Now()
	conn.in <- "q1"
	eventually(t, "the reply sent", func() bool { return c.Stats().Replied == 1 })
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.waited != 1 || len(conn.deadlines) != 2 {
		t.Fatalf("%d writes that waited, deadlines %v: want 1 wait under a deadline, then the deadline cleared", conn.waited, conn.deadlines)
	}
	if d := conn.deadlines[0]; d.Before(start.Add(SendWait)) || d.After(time.Now().Add(SendWait)) {
		t.Errorf("deadline %v: want SendWait (%v) after the send", d, SendWait)
	}
	if !conn.deadlines[1].IsZero() {
		t.Errorf("deadline after the wait %v: want cleared", conn.deadlines[1])
	}
	if st := c.Stats(); st.SendErrs != 0 {
		t.Errorf("stats %+v: a reply dropped", st)
	}
}

// TestDeadlinePassedWhileDescheduled: a write deadline that passes before
// the first write (the goroutine was not running) does not drop the
// replies: they get a fresh SendWait.
func TestDeadlinePassedWhileDescheduled(t *testing.T) {
	var mu sync.Mutex
	first := true
	conn := &fakeConn{in: make(chan string, 4), fail: func(netip.AddrPort) error {
		mu.Lock()
		defer mu.Unlock()
		if first {
			first = false
			return os.ErrDeadlineExceeded
		}
		return nil
	}}
	c := serve(t, conn, &echo{}, 1)
	conn.in <- "q1"
	eventually(t, "the reply sent", func() bool { return c.Stats().Replied == 1 })
	if st := c.Stats(); st.SendErrs != 0 {
		t.Errorf("stats %+v: a reply dropped for a deadline that passed once", st)
	}
}

// TestRepliesWaitForTheirWrites: a reply the reader made under a
// lease.Deferred leaves once its write is durable, and is withheld and
// counted when the durable store refused the write.
func TestRepliesWaitForTheirWrites(t *testing.T) {
	ctx := context.Background()
	durable := lease.NewMemStore()
	a, err := lease.NewCached(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := lease.NewCached(ctx, durable) // never sees a's writes
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.MustParseAddr("192.0.2.10")
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	h := &echo{answer: func(ctx context.Context, p string, d *lease.Deferred) Outcome {
		c := a
		if p == "q-stale" {
			c = stale
		}
		if _, err := c.PutDeferred(ctx, d, lease.Lease{Addr: addr, Key: lease.ClientKey(p), State: lease.Bound,
			Expires: t0.Add(time.Hour), Updated: t0}); err != nil {
			return Silent
		}
		return Send
	}}
	conn := &fakeConn{in: make(chan string, 4)}
	c := serve(t, conn, h, 1)
	conn.in <- "q-fresh"
	eventually(t, "the reply over a durable write sent", func() bool { return c.Stats().Replied == 1 })
	if l, err := durable.Get(ctx, addr); err != nil || l.Key != "q-fresh" {
		t.Fatalf("durable store %+v (%v) when the reply left", l, err)
	}
	conn.in <- "q-stale" // passes its own cache, refused by the durable store
	eventually(t, "the reply over a refused write withheld", func() bool { return c.Stats().Unsaved == 1 })
	if st := c.Stats(); st.Replied != 1 || len(conn.writes()) != 1 {
		t.Errorf("stats %+v, written %q: the withheld reply was sent", st, conn.writes())
	}
}

// holdStore is a lease.HoldingStore over a MemStore: PutHeld keeps the
// writes until its commit is called, which counts how it was called;
// pace, when set, is what an inline commit answers the first time
// (commit nothing, call again after pace).
type holdStore struct {
	*lease.MemStore
	pace time.Duration

	mu      sync.Mutex
	held    []func()
	inline  int // inline commits that committed
	paced   int // inline commits that said to wait
	handOff int // commits handed to the store's committer
}

func (s *holdStore) PutHeld(ctx context.Context, l lease.Lease, done func(lease.Lease, error)) func(bool) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, func() { s.PutAsync(ctx, l, done) })
	return s.commit
}

func (s *holdStore) commit(inline bool) time.Duration {
	s.mu.Lock()
	switch {
	case inline && s.pace > 0 && s.paced == 0:
		s.paced++
		s.mu.Unlock()
		return s.pace
	case inline:
		s.inline++
	default:
		s.handOff++
	}
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, put := range held {
		put()
	}
	return 0
}

func (s *holdStore) counts() (inline, paced, handOff int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inline, s.paced, s.handOff
}

// deadlineConn is a fakeConn whose reads time out (SetReadDeadline).
type deadlineConn struct {
	*fakeConn
	mu       sync.Mutex
	deadline time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *deadlineConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	if !d.IsZero() {
		select {
		case p, ok := <-c.in:
			if !ok {
				return 0, net.ErrClosed
			}
			c.in <- p // put back; a closed channel is not, fine for these tests
			return c.fakeConn.ReadBatch(ms, flags)
		case <-time.After(time.Until(d)):
			return 0, os.ErrDeadlineExceeded
		}
	}
	return c.fakeConn.ReadBatch(ms, flags)
}

// heldAnswer is an echo whose quick answers make a deferred write into a
// Cached over hs.
func heldAnswer(t *testing.T, hs *holdStore) *echo {
	c, err := lease.NewCached(context.Background(), hs)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	return &echo{answer: func(ctx context.Context, p string, d *lease.Deferred) Outcome {
		addr := netip.MustParseAddr("192.0.2.10")
		if _, err := c.PutDeferred(ctx, d, lease.Lease{Addr: addr, Key: lease.ClientKey(p), State: lease.Bound,
			Expires: t0.Add(time.Hour), Updated: t0}); err != nil {
			t.Errorf("PutDeferred: %v", err)
			return Silent
		}
		return Send
	}}
}

// TestReaderCommitsHeldWrites: the writes a store holds for the reader
// are committed by the reader (inline), and the reply leaves after.
func TestReaderCommitsHeldWrites(t *testing.T) {
	hs := &holdStore{MemStore: lease.NewMemStore()}
	conn := &fakeConn{in: make(chan string, 4)}
	c := serve(t, conn, heldAnswer(t, hs), 1)
	conn.in <- "q1"
	eventually(t, "the reply sent", func() bool { return c.Stats().Replied == 1 })
	if l, err := hs.Get(context.Background(), netip.MustParseAddr("192.0.2.10")); err != nil || l.Key != "q1" {
		t.Fatalf("store %+v (%v) when the reply left", l, err)
	}
	if in, paced, off := hs.counts(); in != 1 || paced != 0 || off != 0 {
		t.Errorf("commits: %d inline, %d paced, %d handed off; want one inline", in, paced, off)
	}
}

// TestPacedCommitWaitsForTheDeadline: when the store's pacing says to
// wait, the reader commits once its read deadline passes, with no other
// packet and no hand-off.
func TestPacedCommitWaitsForTheDeadline(t *testing.T) {
	hs := &holdStore{MemStore: lease.NewMemStore(), pace: 5 * time.Millisecond}
	conn := &deadlineConn{fakeConn: &fakeConn{in: make(chan string, 4)}}
	h := heldAnswer(t, hs)
	l := &Loop[string, string]{Conn: conn, Handler: h, Name: "test", Workers: 1, BatchWait: -1, Counters: new(Counters)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Serve(ctx)
	}()
	defer func() {
		cancel()
		close(conn.in)
		<-done
	}()
	conn.in <- "q1"
	eventually(t, "the reply sent", func() bool { return l.Counters.Stats().Replied == 1 })
	if in, paced, off := hs.counts(); in != 1 || paced != 1 || off != 0 {
		t.Errorf("commits: %d inline, %d paced, %d handed off; want one paced, then one inline", in, paced, off)
	}
	conn.mu.Lock()
	d := conn.deadline
	conn.mu.Unlock()
	if !d.IsZero() {
		t.Errorf("read deadline %v left set after the commit", d)
	}
}

// TestPacedCommitWithoutDeadlines: a socket without read deadlines hands
// a paced commit to the store's committer.
func TestPacedCommitWithoutDeadlines(t *testing.T) {
	hs := &holdStore{MemStore: lease.NewMemStore(), pace: time.Hour}
	conn := &fakeConn{in: make(chan string, 4)}
	c := serve(t, conn, heldAnswer(t, hs), 1)
	conn.in <- "q1"
	eventually(t, "the reply sent", func() bool { return c.Stats().Replied == 1 })
	if in, paced, off := hs.counts(); in != 0 || paced != 1 || off != 1 {
		t.Errorf("commits: %d inline, %d paced, %d handed off; want one paced, then handed off", in, paced, off)
	}
}
