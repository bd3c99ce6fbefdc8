package lease

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
)

// Two Managers (two servers) over one store, each owning the free
// addresses the other does not (Config.Owns): they never offer one free
// address at once, each runs out of its own share only, and after the
// other dies (Owns says yes to everything) and Rescan, the survivor offers
// the addresses the dead one never used.
func TestOwnsSplitsFreeAddresses(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	var aliveB atomic.Bool
	aliveB.Store(true)
	mk := func(mine func(last byte) bool) *Manager {
		m, err := New(st, Config{Subnet: testSubnet(), Authoritative: true, Owns: func(a netip.Addr) bool {
			if !aliveB.Load() {
				return true
			}
			return mine(a.As4()[3])
		}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a := mk(func(b byte) bool { return b%2 == 0 })
	b := mk(func(b byte) bool { return b%2 == 1 })
	offered := map[netip.Addr]string{}
	for i := byte(1); i <= 20; i++ {
		for name, m := range map[string]*Manager{"a": a, "b": b} {
			l, err := m.Offer(ctx, nil, OfferRequest{Key: key(i + map[string]byte{"a": 0, "b": 100}[name]), MAC: hw(i)})
			if err != nil {
				continue // its share ran out
			}
			if prev, dup := offered[l.Addr]; dup {
				t.Fatalf("%v offered by %s and by %s", l.Addr, prev, name)
			}
			offered[l.Addr] = name
			if odd := l.Addr.As4()[3]%2 == 1; odd != (name == "b") {
				t.Fatalf("%s offered %v, not in its share", name, l.Addr)
			}
		}
	}
	// .10-.19 without .11: a has .10 .12 .14 .16 .18, b has .13 .15 .17 .19.
	if len(offered) != 9 {
		t.Fatalf("offered %d addresses, want all 9 of the pool: %v", len(offered), offered)
	}

	// b dies before its clients' REQUESTs (its offers die with it): a now
	// owns every address, and once it rescans, offers b's never-used ones.
	aliveB.Store(false)
	if l, err := a.Offer(ctx, nil, OfferRequest{Key: key(200), MAC: hw(200)}); err == nil {
		t.Fatalf("before Rescan a offered %v: its scan was past the end of the range", l.Addr)
	}
	a.Rescan()
	l, err := a.Offer(ctx, nil, OfferRequest{Key: key(201), MAC: hw(201)})
	if err != nil || l.Addr.As4()[3]%2 != 1 {
		t.Fatalf("after Rescan a's offer = %v, %v; want one of b's odd addresses", l.Addr, err)
	}
}
