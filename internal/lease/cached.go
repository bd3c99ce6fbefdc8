package lease

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
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
		c.byKey[old.Key] = slices.DeleteFunc(c.byKey[old.Key], func(a netip.Addr) bool { return a == l.Addr })
		if len(c.byKey[old.Key]) == 0 {
			delete(c.byKey, old.Key)
		}
	}
	if !ok || old.Key != l.Key {
		as := c.byKey[l.Key]
		i, _ := slices.BinarySearchFunc(as, l.Addr, netip.Addr.Compare)
		c.byKey[l.Key] = slices.Insert(as, i, l.Addr)
	}
	c.byAddr[l.Addr] = clone(l)
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
		return Lease{}, fmt.Errorf("lease: get %v: %w", addr, ErrNotFound)
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

// Find implements Store by asking the durable Store.
func (c *Cached) Find(ctx context.Context, f Filter) ([]Lease, error) {
	return c.durable.Find(ctx, f)
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
