package store

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

// Two servers share one lease database, each reading it through its own
// cache (lease.Cached): a client bound by server A that rebinds (A died)
// at server B keeps its address when B is told the store is shared: B
// re-reads the address before refusing. Without Shared, B's cache has no
// such lease and B (authoritative) NAKs a client that holds a valid lease.
func TestSharedStoreRebindAtPeer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	subnet := lease.Subnet{
		Prefix:    netip.MustParsePrefix("198.51.100.0/24"),
		Ranges:    []lease.Range{{First: netip.MustParseAddr("198.51.100.10"), Last: netip.MustParseAddr("198.51.100.99")}},
		ServerID:  netip.MustParseAddr("198.51.100.1"),
		LeaseTime: time.Hour,
	}
	server := func(shared bool) *lease.Manager {
		st, err := Open(ctx, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m, err := lease.New(storetest.Cached(t, st), lease.Config{Subnet: subnet, Authoritative: true, Shared: shared})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, shared := range []bool{true, false} {
		a, b := server(shared), server(shared)
		mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
		if !shared {
			mac[5] = 2
		}
		k := lease.MACKey(mac)
		o, err := a.Offer(ctx, nil, lease.OfferRequest{Key: k, MAC: mac})
		if err != nil {
			t.Fatal(err)
		}
		d, l, err := a.Request(ctx, nil, lease.RequestRequest{Key: k, MAC: mac, ServerID: subnet.ServerID, Requested: o.Addr})
		if err != nil || d.Action != lease.Ack {
			t.Fatalf("bind at A: %v %v", d, err)
		}
		d, l2, err := b.Request(ctx, nil, lease.RequestRequest{Key: k, MAC: mac, CIAddr: l.Addr, Broadcast: true})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case shared && (d.Action != lease.Ack || l2.Addr != l.Addr):
			t.Errorf("shared store: rebinding %v at B = %v (%s), want Ack", l.Addr, d.Action, d.Reason)
		case !shared && d.Action != lease.Nak:
			t.Errorf("unshared: rebinding at B = %v (%s); the test expects B's stale cache to refuse", d.Action, d.Reason)
		}
	}
}
