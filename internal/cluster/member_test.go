package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"pxed/internal/cluster"
	"pxed/internal/store"
)

// waitFor polls cond every 10 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openStore(t *testing.T, path string) *store.SQLite {
	t.Helper()
	s, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two servers on one database split the clients; when one stops
// heartbeating the other takes everything over within the timeout; a
// server that loses its database owns nothing.
func TestMembersSplitAndTakeOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	sa, sb := openStore(t, path), openStore(t, path)
	defer sa.Close()
	const iv, to = 50 * time.Millisecond, 250 * time.Millisecond
	a := &cluster.Member{Self: cluster.Peer{ID: "a", Config: "c1"}, Store: sa, Interval: iv, Timeout: to}
	b := &cluster.Member{Self: cluster.Peer{ID: "b", Config: "c1"}, Store: sb, Interval: iv, Timeout: to}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, m := range []*cluster.Member{a, b} {
		if err := m.Join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ctxB, stopB := context.WithCancel(ctx)
	go a.Run(ctx)
	go b.Run(ctxB)
	waitFor(t, 5*time.Second, "both servers live in both views", func() bool {
		return len(a.Share().Live()) == 2 && len(b.Share().Live()) == 2
	})
	if na, nb := a.Stats().Buckets, b.Stats().Buckets; na+nb != 256 || na == 0 || nb == 0 {
		t.Fatalf("buckets a %d + b %d, want a split of 256", na, nb)
	}
	for i := range 500 {
		mac := []byte{2, 0, 0, 0, byte(i >> 8), byte(i)}
		addr := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if a.OwnsClient(mac) == b.OwnsClient(mac) || a.Share().OwnsAddr(addr) == b.Share().OwnsAddr(addr) {
			t.Fatalf("client %x or address %v owned by both or neither", mac, addr)
		}
	}

	stopB() // b stops heartbeating (killed)
	waitFor(t, 5*time.Second, "a to take b's share over", func() bool { return a.Share().Alone() })
	if a.Stats().Buckets != 256 {
		t.Fatalf("a owns %d buckets after b died, want 256", a.Stats().Buckets)
	}

	// b's database goes away: b owns nothing, and never hands out an
	// address on its own.
	sb.Close()
	ctxB2, stopB2 := context.WithCancel(ctx)
	defer stopB2()
	go b.Run(ctxB2)
	waitFor(t, 5*time.Second, "b to own nothing without its database", func() bool {
		return b.Stats().HeartbeatErrs > 0 && len(b.Share().Live()) == 0
	})
	if b.OwnsClient([]byte{2, 0, 0, 0, 0, 1}) || b.Share().OwnsAddr(netip.MustParseAddr("198.18.0.9")) {
		t.Fatal("b owns work without a database")
	}
}

// A server whose lease configuration differs from a live peer's is refused
// at Join, naming the peer and the fix.
func TestJoinRefusesConfigMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	sa, sb := openStore(t, path), openStore(t, path)
	defer sa.Close()
	defer sb.Close()
	ctx := context.Background()
	a := &cluster.Member{Self: cluster.Peer{ID: "a", Addr: "192.0.2.1:8080", Config: "c1"}, Store: sa}
	if err := a.Join(ctx); err != nil {
		t.Fatal(err)
	}
	b := &cluster.Member{Self: cluster.Peer{ID: "b", Config: "c2"}, Store: sb}
	err := b.Join(ctx)
	if !errors.Is(err, cluster.ErrConfigMismatch) {
		t.Fatalf("Join with another configuration: %v, want ErrConfigMismatch", err)
	}
	t.Log(err)
}
