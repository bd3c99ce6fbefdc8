package lease

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// MemStore is a Store in memory, for tests and for running without a data
// directory. Its zero value is not usable; call NewMemStore.
type MemStore struct {
	mu     sync.Mutex
	leases map[netip.Addr]Lease
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{leases: make(map[netip.Addr]Lease)}
}

// clone returns l with its own copy of the MAC bytes.
func clone(l Lease) Lease {
	l.MAC = slices.Clone(l.MAC)
	return l
}

// Get implements Store.
func (s *MemStore) Get(ctx context.Context, addr netip.Addr) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leases[addr]
	if !ok {
		return Lease{}, notFound{addr}
	}
	return clone(l), nil
}

// ByKey implements Store.
func (s *MemStore) ByKey(ctx context.Context, key ClientKey) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var out []Lease
	for _, l := range s.leases {
		if l.Key == key {
			out = append(out, clone(l))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}

// Find implements Store.
func (s *MemStore) Find(ctx context.Context, f Filter) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var out []Lease
	for _, l := range s.leases {
		if f.Match(l) {
			out = append(out, clone(l))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int {
		if !f.ExpiresBy.IsZero() {
			if c := a.Expires.Compare(b.Expires); c != 0 {
				return c
			}
		}
		return a.Addr.Compare(b.Addr)
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// Put implements Store.
func (s *MemStore) Put(ctx context.Context, l Lease) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	if !l.Addr.IsValid() {
		return Lease{}, fmt.Errorf("lease: put: invalid address")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.leases[l.Addr]
	if err := checkVersion(cur, ok, l); err != nil {
		return Lease{}, err
	}
	l = clone(l)
	l.Version++
	s.leases[l.Addr] = l
	return clone(l), nil
}

// checkVersion is Put's compare-and-swap for a store held in memory: l
// must carry the Version of cur, the lease stored on its address (found
// tells whether there is one), or 0 when there is none.
func checkVersion(cur Lease, found bool, l Lease) error {
	if (!found && l.Version != 0) || (found && cur.Version != l.Version) {
		return fmt.Errorf("lease: put %v version %d: %w", l.Addr, l.Version, ErrConflict)
	}
	return nil
}

// PutAsync implements AsyncStore: memory is as durable as MemStore gets,
// so done is called before PutAsync returns.
func (s *MemStore) PutAsync(ctx context.Context, l Lease, done func(Lease, error)) {
	done(s.Put(ctx, l))
}
