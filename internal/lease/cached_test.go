package lease

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestCachedStaleReloadsOnConflict: two caches over one durable store
// (two servers). The second does not see the first's write, so its Put
// over the old version is refused by the durable store, and after that
// refusal it reads the winner's lease.
func TestCachedStaleReloadsOnConflict(t *testing.T) {
	ctx := context.Background()
	durable := NewMemStore()
	addr := netip.MustParseAddr("192.0.2.10")
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	if _, err := durable.Put(ctx, Lease{Addr: addr, Key: "old", State: Released, Expires: t0, Updated: t0}); err != nil {
		t.Fatal(err)
	}
	a, err := NewCached(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCached(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	if a.Len() != 1 {
		t.Fatalf("loaded %d leases, want 1", a.Len())
	}
	cur, _ := a.Get(ctx, addr)
	won, err := a.Put(ctx, Lease{Addr: addr, Key: "alice", State: Bound, Expires: t0.Add(time.Hour), Updated: t0, Version: cur.Version})
	if err != nil {
		t.Fatal(err)
	}
	// b still holds the released lease and tries to bind it for bob.
	stale, _ := b.Get(ctx, addr)
	if stale.Key != "old" {
		t.Fatalf("b's cache has %q, want the stale lease of %q", stale.Key, "old")
	}
	if _, err := b.Put(ctx, Lease{Addr: addr, Key: "bob", State: Bound, Expires: t0.Add(time.Hour), Updated: t0, Version: stale.Version}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale Put: err = %v, want ErrConflict", err)
	}
	got, _ := b.Get(ctx, addr)
	if got.Key != "alice" || got.Version != won.Version {
		t.Fatalf("after the conflict b has %q v%d, want alice v%d", got.Key, got.Version, won.Version)
	}
	if ls, _ := b.ByKey(ctx, "old"); len(ls) != 0 {
		t.Errorf("ByKey(old) = %v after reload, want none", ls)
	}
	if ls, _ := b.ByKey(ctx, "alice"); len(ls) != 1 || ls[0].Addr != addr {
		t.Errorf("ByKey(alice) = %v, want %v", ls, addr)
	}
	d, _ := durable.Get(ctx, addr)
	if d.Key != "alice" {
		t.Errorf("durable store has %q, want alice", d.Key)
	}
}

// TestCachedByKeyOrder: a client's leases come back in address order as
// they move between clients.
func TestCachedByKeyOrder(t *testing.T) {
	ctx := context.Background()
	c, err := NewCached(ctx, NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	for _, a := range []string{"192.0.2.30", "192.0.2.10", "192.0.2.20"} {
		if _, err := c.Put(ctx, Lease{Addr: netip.MustParseAddr(a), Key: "k", State: Bound, Expires: t0, Updated: t0}); err != nil {
			t.Fatal(err)
		}
	}
	l, _ := c.Get(ctx, netip.MustParseAddr("192.0.2.20"))
	l.Key = "other"
	if _, err := c.Put(ctx, l); err != nil {
		t.Fatal(err)
	}
	ls, _ := c.ByKey(ctx, "k")
	if len(ls) != 2 || ls[0].Addr.String() != "192.0.2.10" || ls[1].Addr.String() != "192.0.2.30" {
		t.Errorf("ByKey(k) = %v, want .10 and .30", ls)
	}
	if ls, _ := c.ByKey(ctx, "other"); len(ls) != 1 {
		t.Errorf("ByKey(other) = %v, want .20", ls)
	}
}

// TestCachedDeferred: PutDeferred applies the write to memory
// at once (the next reader sees it) and the Deferred reports when it is
// durable. A deferred write the durable store refuses (a second server's
// stale cache) is reported by Wait, and by then the cache holds the durable
// store's lease again.
func TestCachedDeferred(t *testing.T) {
	ctx := context.Background()
	durable := NewMemStore()
	addr := netip.MustParseAddr("192.0.2.10")
	t0 := time.Date(2026, 11, 25, 8, 0, 0, 0, time.UTC)
	a, err := NewCached(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewCached(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}

	var d Deferred
	won, err := a.PutDeferred(ctx, &d, Lease{Addr: addr, Key: "alice", State: Bound, Expires: t0.Add(time.Hour), Updated: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	// Nothing is left to wait for: even a canceled wait returns at once, without error.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Wait(canceled); err != nil {
		t.Errorf("second Wait (canceled context) after Wait: %v, want nil", err)
	}
	if got, _ := a.Get(ctx, addr); got.Key != "alice" || got.Version != 1 || won.Version != 1 {
		t.Fatalf("a holds %q v%d (Put returned v%d), want alice v1", got.Key, got.Version, won.Version)
	}
	if got, _ := durable.Get(ctx, addr); got.Key != "alice" || got.Version != 1 {
		t.Fatalf("durable holds %q v%d, want alice v1", got.Key, got.Version)
	}

	// A second write over the cached version is refused in memory at once.
	var d2 Deferred
	if _, err := a.PutDeferred(ctx, &d2, Lease{Addr: addr, Key: "carol", State: Bound, Expires: t0, Updated: t0}); !errors.Is(err, ErrConflict) {
		t.Fatalf("insert over a cached lease: err = %v, want ErrConflict", err)
	}

	// b never saw alice: its insert passes its own cache, the durable
	// store refuses it, Wait says so, and b then holds alice's lease.
	var d3 Deferred
	if _, err := b.PutDeferred(ctx, &d3, Lease{Addr: addr, Key: "bob", State: Bound, Expires: t0.Add(time.Hour), Updated: t0}); err != nil {
		t.Fatalf("stale cache refused the write itself: %v", err)
	}
	if err := d3.Wait(ctx); !errors.Is(err, ErrConflict) {
		t.Fatalf("Wait after a refused durable write: %v, want ErrConflict", err)
	}
	// The DHCP loop asks Queued whether a reply must wait:
	// a write that has already failed still holds its reply back.
	if !d3.Queued() {
		t.Error("after the failed write: Queued false, want true")
	}
	if err := d3.Wait(canceled); !errors.Is(err, ErrConflict) {
		t.Errorf("second Wait (canceled context) after the failed write: %v, want ErrConflict at once", err)
	}
	if d2.Queued() {
		t.Error("a Put refused in memory queued a write")
	}
	if got, _ := b.Get(ctx, addr); got.Key != "alice" || got.Version != 1 {
		t.Fatalf("after the refused write b holds %q v%d, want alice v1", got.Key, got.Version)
	}
	if ls, _ := b.ByKey(ctx, "bob"); len(ls) != 0 {
		t.Errorf("ByKey(bob) = %v after the refused write, want none", ls)
	}
	if got, _ := durable.Get(ctx, addr); got.Key != "alice" {
		t.Errorf("durable holds %q, want alice", got.Key)
	}
}
