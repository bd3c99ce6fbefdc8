package httpboot

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Yield makes bulk HTTP downloads give way to latency-bound transfers.
// Firmware fetches its NBP over TFTP one block (or one small window) per
// round trip and gives up after a few timeouts; a kernel over HTTP is TCP,
// congestion controlled, and loses nothing by waiting a little. While Busy
// reports such transfers running, at most Max file chunks (yieldChunk bytes
// each, one sendfile(2) call) are in flight at once across all downloads,
// and a slot rests after its chunk for Rest times as long as the chunk took
// before the next chunk may use it: sendfile over a fast link runs the whole
// network path in the sending syscall, so a slot in constant use is a CPU
// core, and the rest is what leaves the cores to TFTP. The others wait
// their turn in arrival order, each at most MaxWait so that a client that
// reads slowly (and so holds its chunk's slot) cannot stall every other
// download. When Busy reports nothing, chunks go at once (sendChunk each).
//
// A busy spell holds downloads back only while the transfers make
// progress: a few TFTP transfers that hang (a client that stopped
// acknowledging, one whose ACKs are lost) keep Busy true until pxed gives
// up on them, 5 s or more, and must not slow every download meanwhile.
// Progress counts what the transfers received (ACKs); when it has not
// moved for Stall, chunks go at once until it moves again. A spell holds
// downloads back for at most MaxBusy in all: a crowd of a thousand
// firmware NBPs on a busy machine takes 10-20 s, and a client that keeps
// one slow transfer going must not slow HTTP for longer. After MaxBusy
// chunks go at once until Busy has reported nothing.
//
// The zero value, a nil *Yield, Max <= 0 or a nil Busy never hold anything
// back.
type Yield struct {
	Busy    func() bool   // latency-bound transfers are running now
	Max     int           // chunks in flight at once while Busy
	MaxWait time.Duration // longest a chunk waits for a slot; 0: DefaultYieldWait
	// Rest is a slot's rest after a chunk, in times the chunk took, at
	// most maxRest; 0: DefaultYieldRest, < 0: none.
	Rest float64
	// MaxBusy is the longest a busy spell holds downloads back; 0:
	// DefaultYieldMaxBusy.
	MaxBusy time.Duration
	// Progress, when set, returns a count that moves while the
	// latency-bound transfers make progress (tftp.Server.Acks); nil: they
	// always do.
	Progress func() int64
	// Stall is how long Progress may stand still before downloads go at
	// once; 0: DefaultYieldStall.
	Stall time.Duration

	// afterFunc is time.AfterFunc; tests replace it to run rests by hand.
	afterFunc func(time.Duration, func())
	// onQueue, when set, is called once a chunk joins the waiters (tests).
	onQueue func()
	// now is time.Now; tests replace it.
	now func() time.Time

	spell time.Time // when the busy spell began; zero: not busy (under mu)
	seen  time.Time // when Busy was last asked (under mu)
	count int64     // Progress when last asked (under mu)
	moved time.Time // when Progress last moved (under mu)

	mu       sync.Mutex
	inFlight int
	waiters  []chan struct{} // oldest first; closed when granted a slot

	held, timedOut atomic.Uint64
}

// DefaultYieldWait is Yield.MaxWait when it is 0.
const DefaultYieldWait = time.Second

// DefaultYieldMaxBusy is Yield.MaxBusy when it is 0: a storm's NBPs
// (500 machines, 1 MiB each) take 3–4 s on a quiet machine with two
// cores, 10–18 s while other jobs take a core.
const DefaultYieldMaxBusy = 30 * time.Second

// DefaultYieldStall is Yield.Stall when it is 0: transfers that make
// progress receive ACKs every few milliseconds (a round trip), and one
// retransmission after a lost packet waits 0.2-1 s.
const DefaultYieldStall = time.Second

// spellGap: see busyLocked.
const spellGap = time.Second

// DefaultYieldRest is Yield.Rest when it is 0: a slot sends at most a
// quarter of the time while latency-bound transfers run.
const DefaultYieldRest = 3

// maxRest bounds a slot's rest: a chunk that took long because its client
// reads slowly (not because it kept a core busy) does not idle the slot
// for long.
const maxRest = 100 * time.Millisecond

// YieldStats are a Yield's counters.
type YieldStats struct {
	Held     uint64 // chunks that waited for a slot
	TimedOut uint64 // chunks that went after MaxWait without a slot
}

// Stats returns the counters.
func (y *Yield) Stats() YieldStats {
	if y == nil {
		return YieldStats{}
	}
	return YieldStats{Held: y.held.Load(), TimedOut: y.timedOut.Load()}
}

func (y *Yield) off() bool { return y == nil || y.Max <= 0 || y.Busy == nil }

// yieldChunk is the chunk size while Busy: small enough that TFTP waits
// little behind one.
const yieldChunk = 1 << 20

// acquire takes a slot for one chunk, waiting while latency-bound transfers
// run and Max chunks are in flight. It returns the chunk's size and a done
// func (call it once the chunk is sent), or ctx's error if the request
// ended while waiting.
func (y *Yield) acquire(ctx context.Context) (int64, func(), error) {
	if y.off() {
		return sendChunk, func() {}, nil
	}
	y.mu.Lock()
	if !y.busyLocked() {
		y.inFlight++
		y.mu.Unlock()
		return sendChunk, y.release, nil
	}
	if y.inFlight < y.Max {
		y.inFlight++
		y.mu.Unlock()
		return yieldChunk, y.rest(time.Now()), nil
	}
	ch := make(chan struct{})
	y.waiters = append(y.waiters, ch)
	y.mu.Unlock()
	y.held.Add(1)
	if y.onQueue != nil {
		y.onQueue()
	}

	wait := y.MaxWait
	if wait <= 0 {
		wait = DefaultYieldWait
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ch:
		return yieldChunk, y.rest(time.Now()), nil
	case <-timer.C:
		if y.leave(ch) {
			y.timedOut.Add(1)
			// Go without a slot: counted in flight all the same, so the
			// others still wait for the gate's Max to free up.
			y.mu.Lock()
			y.inFlight++
			y.mu.Unlock()
		}
		return yieldChunk, y.rest(time.Now()), nil
	case <-ctx.Done():
		if !y.leave(ch) {
			y.release() // granted meanwhile: hand the slot on
		}
		return 0, nil, ctx.Err()
	}
}

// rest returns the done func of a chunk that started at start: it frees
// the slot after Rest times the chunk's duration (at once when Rest < 0
// or latency-bound transfers ended meanwhile).
func (y *Yield) rest(start time.Time) func() {
	return func() {
		r := y.Rest
		if r == 0 {
			r = DefaultYieldRest
		}
		d := min(time.Duration(float64(time.Since(start))*r), maxRest)
		y.mu.Lock()
		busy := y.busyLocked()
		y.mu.Unlock()
		if d <= 0 || !busy {
			y.release()
			return
		}
		after := y.afterFunc
		if after == nil {
			after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
		}
		after(d, y.release)
	}
}

// busyLocked reports whether downloads are held back now: Busy, with
// Progress moving within Stall, for at most MaxBusy since Busy turned true. Busy is asked only when a chunk
// goes, so a spell that saw no chunk for spellGap may have ended unseen:
// the next busy answer starts a new one.
func (y *Yield) busyLocked() bool {
	now := time.Now
	if y.now != nil {
		now = y.now
	}
	t := now()
	last := y.seen
	y.seen = t
	if !y.Busy() {
		y.spell = time.Time{}
		return false
	}
	fresh := y.spell.IsZero()
	if fresh || t.Sub(last) > spellGap {
		y.spell = t
	}
	if y.Progress != nil {
		// A new spell gives its transfers Stall to show progress; a count
		// that stood still across a gap between chunks stalled meanwhile.
		if c := y.Progress(); fresh || c != y.count {
			y.count, y.moved = c, t
		}
		stall := y.Stall
		if stall <= 0 {
			stall = DefaultYieldStall
		}
		if t.Sub(y.moved) >= stall {
			return false // the transfers running are stuck: do not wait for them
		}
	}
	limit := y.MaxBusy
	if limit <= 0 {
		limit = DefaultYieldMaxBusy
	}
	return t.Sub(y.spell) < limit
}

// leave takes ch off the waiters; false if it was granted a slot already.
func (y *Yield) leave(ch chan struct{}) bool {
	y.mu.Lock()
	defer y.mu.Unlock()
	for i, w := range y.waiters {
		if w == ch {
			y.waiters = append(y.waiters[:i], y.waiters[i+1:]...)
			return true
		}
	}
	return false
}

// release frees a chunk's slot and grants waiters: the oldest while
// latency-bound transfers run, all of them once none do.
func (y *Yield) release() {
	y.mu.Lock()
	defer y.mu.Unlock()
	y.inFlight--
	busy := y.busyLocked()
	for len(y.waiters) > 0 && (!busy || y.inFlight < y.Max) {
		close(y.waiters[0])
		y.waiters[0] = nil
		y.waiters = y.waiters[1:]
		y.inFlight++
	}
}
