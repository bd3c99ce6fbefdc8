package lease

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Cached is a Store that keeps every lease of a durable Store in memory,
// so that the reads of a DHCPDISCOVER (the client's leases, the state of
// each candidate address) cost no database query. Writes go through to
// the durable Store, which still decides: a Put is durable and
// compare-and-swapped there before the cache changes, and a conflict
// reloads that address from it. Find, which needs the durable Store's
// indexes (oldest-expired first over a whole pool), is passed through.
//
// The cache sees only the writes made through it. With a single server per
// Store that is every write. Servers sharing a Store (a later PostgreSQL
// deployment) may read a stale lease from their cache; the durable Store's
// compare-and-swap still refuses the write, so an address is never
// acknowledged twice, and the stale entry is reloaded on that conflict.
type Cached struct {
	durable Store

	mu     sync.RWMutex
	byAddr map[netip.Addr]Lease
	byKey  map[ClientKey][]netip.Addr // in address order
}

// NewCached loads every lease of durable into memory.
func NewCached(ctx context.Context, durable Store) (*Cached, error) {
	all, err := durable.Find(ctx, Filter{})
	if err != nil {
		return nil, fmt.Errorf("lease: load cache: %w", err)
	}
	c := &Cached{durable: durable, byAddr: make(map[netip.Addr]Lease, len(all)), byKey: make(map[ClientKey][]netip.Addr, len(all))}
	for _, l := range all {
		c.setLocked(l)
	}
	return c, nil
}

// Len returns the number of leases held.
func (c *Cached) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.byAddr)
}

// setLocked stores l unless the cache already has a newer version of its
// address (c.mu held for writing).
func (c *Cached) setLocked(l Lease) {
	old, ok := c.byAddr[l.Addr]
	if ok && old.Version > l.Version {
		return
	}
	if ok && old.Key != l.Key {
		c.unindexLocked(old.Key, l.Addr)
	}
	if !ok || old.Key != l.Key {
		as := c.byKey[l.Key]
		i, _ := slices.BinarySearchFunc(as, l.Addr, netip.Addr.Compare)
		c.byKey[l.Key] = slices.Insert(as, i, l.Addr)
	}
	c.byAddr[l.Addr] = clone(l)
}

// unindexLocked drops addr from key's addresses (c.mu held for writing).
func (c *Cached) unindexLocked(key ClientKey, addr netip.Addr) {
	c.byKey[key] = slices.DeleteFunc(c.byKey[key], func(a netip.Addr) bool { return a == addr })
	if len(c.byKey[key]) == 0 {
		delete(c.byKey, key)
	}
}

// Get implements Store from memory.
func (c *Cached) Get(ctx context.Context, addr netip.Addr) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	c.mu.RLock()
	l, ok := c.byAddr[addr]
	c.mu.RUnlock()
	if !ok {
		return Lease{}, notFound{addr}
	}
	return clone(l), nil
}

// ByKey implements Store from memory.
func (c *Cached) ByKey(ctx context.Context, key ClientKey) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	as := c.byKey[key]
	if len(as) == 0 {
		return nil, nil
	}
	out := make([]Lease, 0, len(as))
	for _, a := range as {
		out = append(out, clone(c.byAddr[a]))
	}
	return out, nil
}

// Refresher is a cache that can re-read one address from its durable
// store (Cached).
type Refresher interface {
	Refresh(ctx context.Context, addr netip.Addr) error
}

// Refresh re-reads addr from the durable Store into the cache: another
// server sharing the durable Store may have written it.
func (c *Cached) Refresh(ctx context.Context, addr netip.Addr) error {
	l, err := c.durable.Get(ctx, addr)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lease: refresh %v: %w", addr, err)
	}
	c.mu.Lock()
	c.setLocked(l)
	c.mu.Unlock()
	return nil
}

// Find implements Store by asking the durable Store.
func (c *Cached) Find(ctx context.Context, f Filter) ([]Lease, error) {
	return c.durable.Find(ctx, f)
}

// PutDeferred implements DeferringStore. When the durable Store is an
// AsyncStore and d is not nil, it does not wait: it compare-and-swaps l
// against the cached lease, applies it to the cache, queues the durable
// write (in the order of the cache's changes) and returns; d learns when
// the write is durable. A durable write that fails reloads the address
// from the durable Store, which stays the authority: a write made over a
// cached lease that never became durable is refused there in turn.
// Otherwise it is Put.
func (c *Cached) PutDeferred(ctx context.Context, d *Deferred, l Lease) (Lease, error) {
	if async, ok := c.durable.(AsyncStore); ok && d != nil {
		return c.putDeferred(ctx, async, d, l)
	}
	return c.Put(ctx, l)
}

// Put implements Store: the durable Store first, then the cache.
func (c *Cached) Put(ctx context.Context, l Lease) (Lease, error) {
	out, err := c.durable.Put(ctx, l)
	switch {
	case err == nil:
		c.mu.Lock()
		c.setLocked(out)
		c.mu.Unlock()
		return out, nil
	case errors.Is(err, ErrConflict):
		c.reload(ctx, l.Addr)
	}
	return out, err
}

// reload replaces the cached lease on addr with the durable Store's.
func (c *Cached) reload(ctx context.Context, addr netip.Addr) {
	cur, err := c.durable.Get(ctx, addr)
	if err != nil {
		return // not found: another writer cannot delete rows; I/O: keep what we have
	}
	c.mu.Lock()
	c.setLocked(cur)
	c.mu.Unlock()
}

func (c *Cached) putDeferred(ctx context.Context, async AsyncStore, d *Deferred, l Lease) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	if !l.Addr.IsValid() {
		return Lease{}, errors.New("lease: put: invalid address")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.byAddr[l.Addr]
	if err := checkVersion(cur, ok, l); err != nil {
		return Lease{}, err
	}
	// What the durable Store will return: times at its precision, in UTC.
	out := clone(l)
	out.Version++
	out.Expires, out.Updated = time.Unix(0, l.Expires.UnixNano()).UTC(), time.Unix(0, l.Updated.UnixNano()).UTC()
	c.setLocked(out)
	d.add()
	addr := l.Addr
	// Queued under c.mu, so the durable Store sees the writes in the
	// order the cache took them. done must not take c.mu: the queue may
	// be full and this goroutine waiting on it.
	done := func(_ Lease, err error) {
		if err == nil {
			d.finish(nil)
			return
		}
		// The waiter learns of the failure once the cache holds the
		// durable Store's lease again.
		go func() {
			c.forceReload(context.WithoutCancel(ctx), addr)
			d.finish(err)
		}()
	}
	if hs, ok := async.(HoldingStore); ok && d.Hold {
		if commit := hs.PutHeld(ctx, l, done); commit != nil {
			d.hold(commit)
		}
	} else {
		async.PutAsync(ctx, l, done)
	}
	return clone(out), nil
}

// forceReload replaces the cached lease on addr with the durable Store's
// after a deferred write failed, even when the cache holds a higher
// version (the write that never became durable), and drops it when the
// durable Store has none.
func (c *Cached) forceReload(ctx context.Context, addr netip.Addr) {
	cur, err := c.durable.Get(ctx, addr)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return // I/O: keep what we have; the durable Store still refuses stale writes
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.byAddr[addr]; ok {
		delete(c.byAddr, addr)
		c.unindexLocked(old.Key, addr)
	}
	if err == nil {
		c.setLocked(cur)
	}
}
