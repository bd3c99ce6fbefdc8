package lease

import (
	"context"
	"sync"
	"time"
)

// AsyncStore is a Store that can queue a write without waiting for it to
// be durable. The SQLite store commits queued writes in the order they
// were queued, many per transaction.
type AsyncStore interface {
	Store
	// PutAsync queues l's write under Put's contract and returns without
	// waiting. done is called exactly once with what Put would have
	// returned, once the write is durable or has failed; it may be called
	// before PutAsync returns, from any goroutine, and must not block.
	// Writes queued one after another are applied in that order.
	PutAsync(ctx context.Context, l Lease, done func(Lease, error))
}

// HoldingStore is an AsyncStore that can leave a queued write for the
// caller to commit, so that the goroutine that answered a packet commits
// its lease itself instead of waking the store's committer.
type HoldingStore interface {
	AsyncStore
	// PutHeld is PutAsync whose write stays queued (it joins any commit
	// the store makes meanwhile) until commit is called: commit(true)
	// commits every write queued so far on the calling goroutine (their
	// done callbacks run on it before it returns), or, when the store
	// paces its commits and the last one is too recent, commits nothing
	// and returns how long to wait before calling again; commit(false)
	// hands them to the store's committer. commit nil: the store holds
	// no writes, and PutHeld was PutAsync.
	PutHeld(ctx context.Context, l Lease, done func(Lease, error)) (commit func(inline bool) time.Duration)
}

// Deferred lets one DHCP exchange make its lease writes without waiting
// for each to reach the disk, and wait once for all of them before the
// reply leaves. Pass it to the Manager call (or to Cached.PutDeferred):
// the write is compare-and-swapped against the lease held in memory,
// applied there at once (so the next packet already sees it), and queued
// for the durable store; Wait returns when every such write is durable,
// or the first error. A reply whose writes failed must not be sent. A
// Manager call given a Deferred never waits for another call of the same
// client either: it returns ErrBusy. The zero value is ready.
//
// With Hold set, a store that can (a HoldingStore) leaves d's writes
// queued until Commit: the caller must call Commit once it has made them
// (after every Manager call, whatever its outcome) and before it waits.
type Deferred struct {
	// Hold asks the store to hold the writes for Commit. Set it before
	// the first write.
	Hold bool

	mu     sync.Mutex
	commit func(inline bool) time.Duration // the store's, for held writes not yet committed
	queued int                             // writes ever queued
	n      int                             // writes queued and not yet finished
	err    error                           // first failure
	wake   chan struct{}                   // made by a waiter, closed when n drops to 0
	then   []func(error)                   // called when n drops to 0
}

// Queued reports whether any write was queued under d, finished or not: a
// reply made under d must then wait for Wait, which also reports a write
// that has already failed.
func (d *Deferred) Queued() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.queued > 0
}

// Wait blocks until every write queued under d is durable or has failed,
// and returns the first failure; ctx ending stops the wait with its error.
func (d *Deferred) Wait(ctx context.Context) error {
	d.mu.Lock()
	if d.n == 0 {
		err := d.err
		d.mu.Unlock()
		return err
	}
	if d.wake == nil {
		d.wake = make(chan struct{})
	}
	wake := d.wake
	d.mu.Unlock()
	select {
	case <-wake:
	case <-ctx.Done():
		return ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Then calls fn with what Wait would return once every write queued under
// d is durable or has failed: at once, on the caller, when none is
// pending; otherwise on the goroutine that finishes the last one (the
// store's committer), so fn must not block. It lets the DHCP loop send a
// reply from the commit that makes it true, with no goroutine waiting.
func (d *Deferred) Then(fn func(error)) {
	d.mu.Lock()
	if d.n > 0 {
		d.then = append(d.then, fn)
		d.mu.Unlock()
		return
	}
	err := d.err
	d.mu.Unlock()
	fn(err)
}

// Held reports whether writes made under d wait for Commit.
func (d *Deferred) Held() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.commit != nil
}

// Commit makes the writes held under d durable: inline, on the calling
// goroutine (with every other write the store has queued; the Then
// callbacks of d run on it before Commit returns), or, with inline false,
// by the store's committer. Inline, a store that paces its commits may
// commit nothing yet and return how long the caller should wait before
// it calls Commit again (the writes stay held). Without writes held it
// does nothing.
func (d *Deferred) Commit(inline bool) (wait time.Duration) {
	d.mu.Lock()
	commit := d.commit
	d.mu.Unlock()
	if commit == nil {
		return 0
	}
	if wait = commit(inline); wait > 0 {
		return wait
	}
	d.mu.Lock()
	d.commit = nil
	d.mu.Unlock()
	return 0
}

// hold records the commit of a write the store holds for Commit.
func (d *Deferred) hold(commit func(bool) time.Duration) {
	d.mu.Lock()
	d.commit = commit
	d.mu.Unlock()
}

func (d *Deferred) add() {
	d.mu.Lock()
	d.queued++
	d.n++
	d.mu.Unlock()
}

func (d *Deferred) finish(err error) {
	d.mu.Lock()
	if err != nil && d.err == nil {
		d.err = err
	}
	d.n--
	var then []func(error)
	if d.n == 0 {
		if d.wake != nil {
			close(d.wake)
			d.wake = nil
		}
		then, d.then = d.then, nil
	}
	err = d.err
	d.mu.Unlock()
	for _, fn := range then {
		fn(err)
	}
}

// DeferringStore is a Store that can make a write without waiting for it
// to be durable: Cached over an AsyncStore.
type DeferringStore interface {
	Store
	// PutDeferred is Put that queues the durable write under d instead
	// of waiting for it; d nil is Put.
	PutDeferred(ctx context.Context, d *Deferred, l Lease) (Lease, error)
}
