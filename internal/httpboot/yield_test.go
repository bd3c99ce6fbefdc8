package httpboot

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// gateUnderTest is a Yield whose Busy the test switches, whose rests run
// when the test says, and whose waiters never time out on their own.
type gateUnderTest struct {
	*Yield
	busy   atomic.Bool
	rests  []func() // slot releases waiting out their rest
	delays []time.Duration
	queued chan struct{} // a chunk joined the waiters
	clock  time.Time     // the gate's time once fakeTime was called
	acks   atomic.Int64  // the ACK count Progress reads once countAcks was called
}

// fakeTime makes the gate read g.clock (which advance moves) for now.
func (g *gateUnderTest) fakeTime() {
	g.clock = time.Unix(1000, 0)
	g.now = func() time.Time { return g.clock }
}

func (g *gateUnderTest) advance(d time.Duration) { g.clock = g.clock.Add(d) }

// countAcks makes g.acks the TFTP transfers' progress.
func (g *gateUnderTest) countAcks() { g.Progress = g.acks.Load }

func newGate(max int, rest float64) *gateUnderTest {
	g := &gateUnderTest{queued: make(chan struct{}, 16)}
	g.Yield = &Yield{Busy: g.busy.Load, Max: max, MaxWait: time.Hour, Rest: rest}
	g.onQueue = func() { g.queued <- struct{}{} }
	g.afterFunc = func(d time.Duration, f func()) {
		g.delays = append(g.delays, d)
		g.rests = append(g.rests, f)
	}
	return g
}

// chunk takes one chunk at once (it must not wait), checks that its size
// is want and gives the slot back.
func (g *gateUnderTest) chunk(t *testing.T, want int64, why string) {
	t.Helper()
	size, done, err := g.acquire(context.Background())
	if err != nil || size != want {
		t.Fatalf("%s: size %d, err %v; want %d", why, size, err, want)
	}
	done()
}

// waiter is one chunk waiting at the gate in its own goroutine.
type waiter struct {
	got    chan struct{}
	size   int64
	done   func()
	err    error
	cancel context.CancelFunc
}

func (g *gateUnderTest) wait(t *testing.T) *waiter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &waiter{got: make(chan struct{}), cancel: cancel}
	go func() {
		w.size, w.done, w.err = g.acquire(ctx)
		close(w.got)
	}()
	select {
	case <-g.queued: // waiting at the gate
	case <-w.got: // granted at once
	}
	return w
}

func (g *gateUnderTest) inFlightNow() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

func (g *gateUnderTest) queue() []chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]chan struct{}(nil), g.waiters...)
}

func granted(w *waiter) bool {
	select {
	case <-w.got:
		return true
	default:
		return false
	}
}

func TestYieldLetsEverythingGoWhenTFTPIsIdle(t *testing.T) {
	g := newGate(1, 3)
	for i := range 5 {
		size, done, err := g.acquire(context.Background())
		if err != nil || size != sendChunk {
			t.Fatalf("chunk %d with no TFTP transfer: size %d, err %v; want %d at once", i, size, err, sendChunk)
		}
		defer done()
	}
	if st := g.Stats(); st.Held != 0 {
		t.Errorf("held %d chunks with no TFTP transfer running", st.Held)
	}
}

func TestYieldOneSlotWhileTFTPRuns(t *testing.T) {
	g := newGate(1, -1) // no rest: the slot frees when the chunk is sent
	g.busy.Store(true)
	first, done1, err := g.acquire(context.Background())
	if err != nil || first != yieldChunk {
		t.Fatalf("first chunk during TFTP: size %d, err %v; want %d at once", first, err, yieldChunk)
	}
	a := g.wait(t)
	b := g.wait(t)
	if granted(a) || granted(b) {
		t.Fatal("a second chunk went while the only slot was in use")
	}
	done1()
	<-a.got
	if a.err != nil || a.size != yieldChunk {
		t.Fatalf("oldest waiter: size %d, err %v", a.size, a.err)
	}
	if granted(b) {
		t.Fatal("both waiters went when one slot freed: not first come, first served")
	}
	a.done()
	<-b.got
	b.done()
	if st := g.Stats(); st.Held != 2 || st.TimedOut != 0 {
		t.Errorf("stats %+v, want 2 held, none timed out", st)
	}
}

func TestYieldReleasesEveryoneWhenTFTPEnds(t *testing.T) {
	g := newGate(1, -1)
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	ws := []*waiter{g.wait(t), g.wait(t), g.wait(t)}
	g.busy.Store(false)
	done()
	for i, w := range ws {
		<-w.got
		if w.err != nil {
			t.Fatalf("waiter %d: %v", i, w.err)
		}
		w.done()
	}
	if n := len(g.queue()); n != 0 {
		t.Errorf("%d waiters left", n)
	}
}

func TestYieldSlotRestsAfterItsChunk(t *testing.T) {
	g := newGate(1, 3)
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	w := g.wait(t)
	done() // the slot now rests: nobody goes until the rest is over
	if granted(w) {
		t.Fatal("a waiter went while the slot rested")
	}
	if len(g.rests) != 1 {
		t.Fatalf("%d rests scheduled, want 1", len(g.rests))
	}
	if d := g.delays[0]; d < 0 || d > maxRest {
		t.Errorf("rest %v, want within [0, %v]", d, maxRest)
	}
	g.rests[0]()
	<-w.got
	w.done()
}

func TestYieldNoRestOnceTFTPEnded(t *testing.T) {
	g := newGate(1, 3)
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	g.busy.Store(false)
	done()
	if len(g.rests) != 0 {
		t.Errorf("a slot rested after TFTP ended")
	}
	if g.inFlightNow() != 0 {
		t.Errorf("%d in flight after the only chunk", g.inFlightNow())
	}
}

func TestYieldWaiterLeavesWhenRequestEnds(t *testing.T) {
	g := newGate(1, -1)
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	a := g.wait(t)
	b := g.wait(t)
	a.cancel()
	<-a.got
	if !errors.Is(a.err, context.Canceled) {
		t.Fatalf("cancelled waiter: err %v, want context.Canceled", a.err)
	}
	done()
	<-b.got // the slot goes to the next waiter, not to the one that left
	b.done()
	if g.inFlightNow() != 0 || len(g.queue()) != 0 {
		t.Errorf("in flight %d, queued %d after all chunks; want 0, 0", g.inFlightNow(), len(g.queue()))
	}
}

func TestYieldWaitIsBounded(t *testing.T) {
	g := newGate(1, -1)
	g.MaxWait = time.Nanosecond // a slow reader holds the slot: others go anyway
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	size, done2, err := g.acquire(context.Background())
	if err != nil || size != yieldChunk {
		t.Fatalf("waiter past MaxWait: size %d, err %v", size, err)
	}
	if st := g.Stats(); st.TimedOut != 1 {
		t.Errorf("timed out %d, want 1", st.TimedOut)
	}
	done2()
	done()
	if g.inFlightNow() != 0 {
		t.Errorf("%d in flight after all chunks", g.inFlightNow())
	}
}

func TestYieldOff(t *testing.T) {
	for name, y := range map[string]*Yield{"nil": nil, "no Busy": {Max: 1}, "Max 0": {Max: 0, Busy: func() bool { return true }}} {
		size, done, err := y.acquire(context.Background())
		if err != nil || size != sendChunk || done == nil {
			t.Errorf("%s: size %d, err %v", name, size, err)
		}
		done()
	}
}

func TestYieldBusySpellEnds(t *testing.T) {
	g := newGate(1, -1)
	g.fakeTime()
	g.MaxBusy = 2 * time.Second
	g.busy.Store(true) // TFTP transfers that hang: Busy stays true
	chunk := func(want int64, why string) { t.Helper(); g.chunk(t, want, why) }
	chunk(yieldChunk, "first chunk of the spell")
	for range 2 {
		g.advance(900 * time.Millisecond)
		chunk(yieldChunk, "chunk within MaxBusy")
	}
	g.advance(900 * time.Millisecond)
	chunk(sendChunk, "chunk past MaxBusy, Busy still true")
	g.advance(1500 * time.Millisecond)
	chunk(yieldChunk, "first chunk after 1.5 s without one: the spell may have ended unseen")

	g.busy.Store(false)
	chunk(sendChunk, "TFTP idle")
	g.busy.Store(true)
	chunk(yieldChunk, "first chunk of a new spell")
}

func TestYieldWaitersGoWhenTheSpellEnds(t *testing.T) {
	g := newGate(1, -1)
	g.fakeTime()
	g.MaxBusy = 500 * time.Millisecond
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	a, b := g.wait(t), g.wait(t)
	g.advance(900 * time.Millisecond)
	done() // past MaxBusy: every waiter goes
	<-a.got
	<-b.got
	a.done()
	b.done()
}

// TestYieldStalledTransfersDoNotHoldDownloads: TFTP transfers that stopped
// receiving ACKs (hung clients, lost packets) keep Busy true, but
// downloads go at once from Stall after the last ACK until ACKs come again.
func TestYieldStalledTransfersDoNotHoldDownloads(t *testing.T) {
	g := newGate(1, -1)
	g.fakeTime()
	g.countAcks()
	g.busy.Store(true)
	chunk := func(want int64, why string) { t.Helper(); g.chunk(t, want, why) }
	chunk(yieldChunk, "first chunk of the spell, no ACK yet")
	g.advance(900 * time.Millisecond)
	chunk(yieldChunk, "no ACK for 0.9 s: within Stall")
	g.acks.Add(3)
	g.advance(500 * time.Millisecond)
	chunk(yieldChunk, "ACKs came")
	g.advance(900 * time.Millisecond)
	chunk(yieldChunk, "0.9 s since the last ACK")
	g.advance(200 * time.Millisecond)
	chunk(sendChunk, "1.1 s since the last ACK: the transfers are stuck")
	g.advance(1500 * time.Millisecond)
	chunk(sendChunk, "no ACK across a gap between chunks: still stuck")
	g.acks.Add(1)
	g.advance(100 * time.Millisecond)
	chunk(yieldChunk, "ACKs again")

	g.busy.Store(false)
	chunk(sendChunk, "TFTP idle")
	g.advance(5 * time.Second)
	g.busy.Store(true)
	chunk(yieldChunk, "a new spell waits Stall for its first ACK")
}

// TestYieldProgressingSpellBounded: transfers that keep making progress
// hold downloads back for MaxBusy (default 30 s), no longer.
func TestYieldProgressingSpellBounded(t *testing.T) {
	g := newGate(1, -1)
	g.fakeTime()
	g.countAcks()
	g.busy.Store(true)
	for i := range 60 {
		g.chunk(t, yieldChunk, fmt.Sprintf("%.1f s into the spell (held back)", float64(i)/2))
		g.acks.Add(10)
		g.advance(500 * time.Millisecond)
	}
	g.chunk(t, sendChunk, "30 s into the spell (DefaultYieldMaxBusy over)")
}

// TestYieldWaitersGoWhenTransfersStall: downloads queued behind the slot
// go once the transfers stopped making progress.
func TestYieldWaitersGoWhenTransfersStall(t *testing.T) {
	g := newGate(1, -1)
	g.fakeTime()
	g.countAcks()
	g.busy.Store(true)
	_, done, _ := g.acquire(context.Background())
	a, b := g.wait(t), g.wait(t)
	if granted(a) || granted(b) {
		t.Fatal("waiters granted while the transfers run")
	}
	g.advance(1100 * time.Millisecond)
	done() // 1.1 s without an ACK: every waiter goes
	<-a.got
	<-b.got
	a.done()
	b.done()
}
