// Package groupcommit is the committer a lease store backend puts in front
// of its database: Puts from concurrent callers queue up, and one goroutine
// hands them to the backend in batches, one transaction each, so many
// leases share one commit (and one fsync, one round trip). A Put returns,
// and a PutAsync's callback runs, only once the batch holding it is
// committed.
//
// Pacing: a Put after a quiet spell is committed at once; under load a
// commit starts Interval after the previous one began, or as soon as
// MaxBatch Puts wait, whichever comes first.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/lease"
)

// QueueLen is how many Puts may wait for the committer before Put (and the
// DHCP reader behind PutAsync) waits too: a commit interval's worth at
// tens of thousands of leases a second.
const QueueLen = 4096

// Defaults of a lease store's MaxBatch and CommitInterval options (see
// StoreOptions).
const (
	// DefaultMaxBatch caps a commit at 64 leases: a busy server's ACKs
	// then leave in bursts of at most 64 (one burst per commit), which a
	// relay agent or a load generator's socket absorbs where 500 overflow.
	DefaultMaxBatch = 64
	// DefaultInterval: under load a commit starts 10 ms after the
	// previous one began, or once MaxBatch leases wait, whichever comes
	// first; an acknowledgement waits at most this much longer. A commit
	// costs about the same CPU for one lease as for 64, so spacing them is
	// most of a busy server's savings (bench/README-dhcp.md).
	DefaultInterval = 10 * time.Millisecond
)

// Req is one Put waiting for the committer.
type Req struct {
	Ctx   context.Context // the caller's; a Req whose Ctx is done is not written
	Lease lease.Lease     // the write asked for
	// Out and Err are set by the Flush: Out is the stored lease (new
	// Version, times as stored) when the write succeeded, Err wraps
	// lease.ErrConflict when its compare-and-swap failed, or Ctx.Err().
	Out lease.Lease
	Err error

	done chan struct{}            // closed when finished (Put)
	cb   func(lease.Lease, error) // called when finished (PutAsync)
}

// finish reports the outcome to whoever queued r.
func (r *Req) finish() {
	if r.cb == nil {
		close(r.done)
		return
	}
	if r.Err != nil {
		r.cb(lease.Lease{}, fmt.Errorf("store: put %v version %d: %w", r.Lease.Addr, r.Lease.Version, r.Err))
		return
	}
	r.cb(r.Out, nil)
}

// Flush writes batch in one transaction, in order, and commits it. It
// skips the Reqs that already have an Err (their caller gave up) and sets
// each other Req's Out or Err; a returned error (the transaction failed)
// fails every Req that has no Err of its own.
type Flush func(batch []*Req) error

// Options tunes a Committer.
type Options struct {
	// MaxBatch caps the Puts in one transaction; values below 1 mean 1.
	MaxBatch int
	// Interval is the least time between the starts of two commits; 0
	// commits as soon as the previous commit is done.
	Interval time.Duration
	// Logger receives commit failures; nil discards.
	Logger *slog.Logger
}

// StoreOptions returns the Options for a lease store's options, where
// maxBatch 0 means DefaultMaxBatch (1 disables group commit) and interval
// 0 means DefaultInterval, a negative one none (commit as soon as the
// previous commit is done).
func StoreOptions(maxBatch int, interval time.Duration, log *slog.Logger) Options {
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	switch {
	case interval == 0:
		interval = DefaultInterval
	case interval < 0:
		interval = 0
	}
	return Options{MaxBatch: maxBatch, Interval: interval, Logger: log}
}

// Stats counts the work of the committer.
type Stats struct {
	Puts    uint64 // Puts committed or refused with ErrConflict
	Batches uint64 // transactions committed
}

// Committer queues Puts and flushes them in batches.
//
// The queue is a slice under a mutex rather than a channel so that a Put
// wakes the committer only when the committer waits for it: when it is
// idle, or when it gathers a batch and the Put fills it. Puts that come
// while it gathers or commits just join the queue; at a few hundred leases
// a second that is one goroutine wake-up per commit instead of one per
// lease (bench/README-dhcp.md).
type Committer struct {
	flush    Flush
	log      *slog.Logger
	maxBatch int
	interval time.Duration
	wake     chan struct{} // a token when the queue reached want
	quit     chan struct{}
	done     chan struct{}
	started  atomic.Bool
	close    sync.Once
	puts     atomic.Uint64
	batches  atomic.Uint64
	// reporting: outcomes of a commit reported by their own goroutine
	// while the next commit runs (when the committer is behind).
	reporting sync.WaitGroup

	// commitMu is held from taking a batch off the queue to the end of
	// its flush, so that batches are flushed in the queue's order whether
	// the committer or a caller of CommitHeld flushes them.
	commitMu sync.Mutex
	// lastStart is when the last commit began (Unix nanoseconds), by the
	// committer or CommitHeld.
	lastStart atomic.Int64

	mu     sync.Mutex
	queue  []*Req        // waiting, in order
	want   int           // wake the committer once the queue holds this many; 0: it is not waiting
	room   chan struct{} // made by a Put waiting for room, closed when there is
	closed bool
}

// New returns a Committer over flush; Start it.
func New(flush Flush, opts Options) *Committer {
	c := &Committer{
		flush: flush, log: opts.Logger, maxBatch: max(opts.MaxBatch, 1), interval: max(opts.Interval, 0),
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Start starts the committer goroutine (once).
func (c *Committer) Start() {
	if c.started.CompareAndSwap(false, true) {
		go c.loop()
	}
}

// Queued is the number of Puts waiting for the committer.
func (c *Committer) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// Stats returns the committer's counters.
func (c *Committer) Stats() Stats {
	return Stats{Puts: c.puts.Load(), Batches: c.batches.Load()}
}

// Close stops the committer: Puts queued and not yet flushed fail with
// lease.ErrClosed, a flush under way finishes first.
func (c *Committer) Close() {
	c.close.Do(func() {
		close(c.quit)
		if c.started.CompareAndSwap(false, true) {
			close(c.done) // never started
			c.failPending()
			return
		}
		<-c.done
		// A CommitHeld under way finishes before the backend is closed;
		// any later one finds the queue closed and empty.
		c.commitMu.Lock()
		//lint:ignore SA2001 an empty critical section: waiting for a CommitHeld under way is the point
		c.commitMu.Unlock()
	})
}

// Put queues l and returns once the transaction holding it is committed.
func (c *Committer) Put(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	if err := Check(l); err != nil {
		return lease.Lease{}, err
	}
	r := &Req{Ctx: ctx, Lease: l, done: make(chan struct{})}
	if err := c.enqueue(ctx, r, false); err != nil {
		return lease.Lease{}, fmt.Errorf("store: put %v: %w", l.Addr, err)
	}
	select {
	case <-r.done:
	case <-c.done:
		select {
		case <-r.done:
		default:
			return lease.Lease{}, fmt.Errorf("store: put %v: %w", l.Addr, lease.ErrClosed)
		}
	case <-ctx.Done():
		return lease.Lease{}, fmt.Errorf("store: put %v: outcome unknown: %w", l.Addr, ctx.Err())
	}
	if r.Err != nil {
		return lease.Lease{}, fmt.Errorf("store: put %v version %d: %w", l.Addr, l.Version, r.Err)
	}
	return r.Out, nil
}

// PutAsync is Put without the wait (lease.AsyncStore): done runs on the
// committer's goroutine (or at once when the committer is closed or ctx
// has ended), after the transaction holding l is committed.
func (c *Committer) PutAsync(ctx context.Context, l lease.Lease, done func(lease.Lease, error)) {
	c.putAsync(ctx, l, done, false)
}

// PutHeld is PutAsync without waking the committer: l waits in the queue
// until the caller calls CommitHeld (or Kick), unless another Put wakes
// the committer first; done runs on the goroutine that commits it. It
// lets a DHCP socket's reader commit the leases of the packets it just
// answered itself, instead of handing them to the committer goroutine
// (one thread wake-up per commit saved). The queue being full wakes the
// committer still.
func (c *Committer) PutHeld(ctx context.Context, l lease.Lease, done func(lease.Lease, error)) {
	c.putAsync(ctx, l, done, true)
}

// putAsync queues l with done as its callback; held leaves the committer
// asleep (PutHeld).
func (c *Committer) putAsync(ctx context.Context, l lease.Lease, done func(lease.Lease, error), held bool) {
	if err := Check(l); err != nil {
		done(lease.Lease{}, err)
		return
	}
	r := &Req{Ctx: ctx, Lease: l, cb: done}
	if err := c.enqueue(ctx, r, held); err != nil {
		r.Err = err
		r.finish()
	}
}

// CommitHeld commits every Put queued when it is called, on the calling
// goroutine, in batches of up to MaxBatch, after any commit under way;
// their outcomes are reported (PutAsync's and PutHeld's callbacks run) on
// it too before it returns. A Put queued meanwhile waits for the next
// commit. It keeps the committer's pacing: when the last commit began
// less than Interval ago and fewer than MaxBatch Puts wait, it commits
// nothing and returns how long the caller should wait before it calls
// again (0: done, or nothing was queued).
func (c *Committer) CommitHeld() time.Duration {
	c.commitMu.Lock()
	c.mu.Lock()
	n := len(c.queue)
	c.mu.Unlock()
	if n > 0 && n < c.maxBatch {
		if wait := c.interval - time.Since(time.Unix(0, c.lastStart.Load())); wait > 0 {
			c.commitMu.Unlock()
			return wait
		}
	}
	for n > 0 {
		// A batch of its own: it is reported after commitMu is released,
		// when another CommitHeld may be taking the next one.
		batch := c.takeAtMost(make([]*Req, 0, min(n, c.maxBatch)), n)
		if len(batch) == 0 {
			break // closed, or the committer took them
		}
		n -= len(batch)
		c.lastStart.Store(time.Now().UnixNano())
		err := c.flushBatch(batch)
		c.commitMu.Unlock()
		c.report(batch, err)
		c.commitMu.Lock()
	}
	c.commitMu.Unlock()
	return 0
}

// Kick wakes the committer for the Puts held in the queue when it waits
// for as many (PutHeld's hand-off, for a caller that will not commit them
// itself).
func (c *Committer) Kick() {
	c.mu.Lock()
	c.wakeLocked()
	c.mu.Unlock()
}

// wakeLocked wakes the committer when it waits for as many Puts as the
// queue holds.
func (c *Committer) wakeLocked() {
	if c.want > 0 && len(c.queue) >= c.want {
		c.want = 0
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// enqueue adds r to the queue, waiting while it holds QueueLen Puts, and
// (unless held) wakes the committer when it waits for as many Puts as the
// queue now holds. It fails with lease.ErrClosed once the committer is
// closed, or with ctx's error.
func (c *Committer) enqueue(ctx context.Context, r *Req, held bool) error {
	c.mu.Lock()
	for !c.closed && len(c.queue) >= QueueLen {
		// Held Puts may have filled the queue: the committer makes room.
		if c.want > 0 {
			c.want = 1
			c.wakeLocked()
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.mu.Unlock()
		select {
		case <-room:
		case <-c.quit:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	if c.closed {
		c.mu.Unlock()
		return lease.ErrClosed
	}
	c.queue = append(c.queue, r)
	if !held {
		c.wakeLocked()
	}
	c.mu.Unlock()
	return nil
}

// await waits until the queue holds n Puts, timeout passes (0: no
// timeout) or Close is called (false).
func (c *Committer) await(n int, timer *time.Timer, timeout time.Duration) bool {
	c.mu.Lock()
	if len(c.queue) >= n {
		c.mu.Unlock()
		return true
	}
	c.want = n
	c.mu.Unlock()
	var expired <-chan time.Time
	if timeout > 0 {
		timer.Reset(timeout)
		expired = timer.C
		defer timer.Stop()
	}
	select {
	case <-c.wake:
	case <-expired:
	case <-c.quit:
		return false
	}
	return true
}

// take removes up to maxBatch Puts from the queue into batch (the
// committer's).
func (c *Committer) take(batch []*Req) []*Req {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = 0
	select {
	case <-c.wake: // a token left from a wait that ended otherwise
	default:
	}
	return c.takeLocked(batch, c.maxBatch)
}

// takeAtMost removes up to min(max, maxBatch) Puts from the queue into
// batch (CommitHeld's), leaving the committer's wait as it is.
func (c *Committer) takeAtMost(batch []*Req, max int) []*Req {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.takeLocked(batch, min(max, c.maxBatch))
}

// takeLocked removes up to most Puts from the queue into batch.
func (c *Committer) takeLocked(batch []*Req, most int) []*Req {
	n := min(len(c.queue), most)
	batch = append(batch[:0], c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	return batch
}

// Check refuses a lease no row can hold.
func Check(l lease.Lease) error {
	if !l.Addr.IsValid() {
		return errors.New("store: put: invalid address")
	}
	if l.State < lease.Offered || l.State > lease.Declined {
		return fmt.Errorf("store: put %v: invalid state %v", l.Addr, l.State)
	}
	return nil
}

// loop takes every Put waiting (up to maxBatch) and flushes them in one
// transaction, then wakes their callers. While one batch is being
// committed the next one queues up, so the batch size follows the load
// with no added latency when idle.
func (c *Committer) loop() {
	defer close(c.done)
	defer c.reporting.Wait()
	batch := make([]*Req, 0, c.maxBatch)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		if !c.await(1, timer, 0) {
			c.failPending()
			return
		}
		// Busy: let this commit gather the Puts of the rest of the
		// interval, or until maxBatch wait.
		if wait := c.interval - time.Since(time.Unix(0, c.lastStart.Load())); wait > 0 && !c.await(c.maxBatch, timer, wait) {
			c.failPending()
			return
		}
		c.commitMu.Lock()
		if batch = c.take(batch); len(batch) == 0 {
			c.commitMu.Unlock()
			continue
		}
		c.lastStart.Store(time.Now().UnixNano())
		c.commit(batch) // unlocks commitMu
	}
}

// failPending fails the Puts queued at Close, and every later one.
func (c *Committer) failPending() {
	c.mu.Lock()
	c.closed = true
	queue := c.queue
	c.queue = nil
	if c.room != nil {
		close(c.room)
		c.room = nil
	}
	c.mu.Unlock()
	for _, r := range queue {
		r.Err = lease.ErrClosed
		r.finish()
	}
}

// flushBatch flushes one batch; the caller holds commitMu.
func (c *Committer) flushBatch(batch []*Req) error {
	for _, r := range batch {
		if err := r.Ctx.Err(); err != nil {
			r.Err = err // the caller has given up; do not write
		}
	}
	err := c.flush(batch)
	if err != nil {
		c.log.Error("lease commit failed", "puts", len(batch), "err", err)
	} else {
		c.batches.Add(1)
	}
	return err
}

// commit flushes one batch of the committer's, releases commitMu and
// reports each Put's outcome.
func (c *Committer) commit(batch []*Req) {
	err := c.flushBatch(batch)
	c.commitMu.Unlock()
	if c.Queued() >= c.maxBatch {
		// Behind: the next batch is full already. Its commit starts now
		// while another goroutine reports this one's outcomes (the DHCP
		// loop's callbacks send the replies), so that sending does not
		// hold back committing; idle or lightly loaded, the committer
		// reports itself and no goroutine is woken.
		done := slices.Clone(batch)
		c.reporting.Go(func() { c.report(done, err) })
		return
	}
	c.report(batch, err)
}

// report tells each Put of a flushed batch its outcome; err is the
// flush's.
func (c *Committer) report(batch []*Req, err error) {
	for _, r := range batch {
		if err != nil && r.Err == nil {
			r.Err, r.Out = err, lease.Lease{}
		}
		if r.Err == nil || errors.Is(r.Err, lease.ErrConflict) {
			c.puts.Add(1)
		}
		r.finish()
	}
}
