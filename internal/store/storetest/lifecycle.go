package storetest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
)

// testClock is a settable clock for the Manager.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// RunLifecycle runs the lease state machine through a lease.Manager over
// the store open returns, as a DHCP server does: offer and bind, renew,
// pool exhaustion, release and the same address again, decline and its
// quarantine, expiry. The states and versions are read back from the
// store, so a backend that drops a write, a time or a state fails it.
func RunLifecycle(t *testing.T, open func(t *testing.T) lease.Store) {
	ctx := context.Background()
	s := open(t)
	clk := &testClock{t: t0}
	sn := lease.Subnet{
		Prefix:    netip.MustParsePrefix("192.0.2.0/24"),
		Ranges:    []lease.Range{{First: addr(10), Last: addr(12)}},
		ServerID:  addr(1),
		LeaseTime: time.Hour,
		OfferHold: time.Minute,
	}
	m, err := lease.New(s, lease.Config{Subnet: sn, Authoritative: true, DeclineHold: 10 * time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	client := func(i int) (lease.ClientKey, net.HardwareAddr) { return lease.MACKey(mac(i)), mac(i) }
	bind := func(i int) lease.Lease {
		t.Helper()
		k, hw := client(i)
		o, err := m.Offer(ctx, nil, lease.OfferRequest{Key: k, MAC: hw, Hostname: "host"})
		if err != nil {
			t.Fatalf("offer to client %d: %v", i, err)
		}
		d, l, err := m.Request(ctx, nil, lease.RequestRequest{Key: k, MAC: hw, Hostname: "host", ServerID: sn.ServerID, Requested: o.Addr})
		if err != nil || d.Action != lease.Ack {
			t.Fatalf("request of client %d for %v: %v %v %s", i, o.Addr, err, d.Action, d.Reason)
		}
		return l
	}
	stored := func(a netip.Addr, state lease.State, key lease.ClientKey) lease.Lease {
		t.Helper()
		l, err := s.Get(ctx, a)
		if err != nil {
			t.Fatalf("Get(%v): %v", a, err)
		}
		if l.State != state || l.Key != key {
			t.Fatalf("stored %v: %v for %v, want %v for %v", a, l.State, l.Key, state, key)
		}
		return l
	}

	// Offer and bind: the ACK is the first durable write.
	l1 := bind(1)
	k1, hw1 := client(1)
	got := stored(l1.Addr, lease.Bound, k1)
	if !got.Expires.Equal(t0.Add(time.Hour)) || got.Hostname != "host" || got.MAC.String() != hw1.String() {
		t.Fatalf("bound lease stored as %+v", got)
	}
	// Renew (RENEWING: ciaddr, no server id) half way: same address, later end.
	clk.advance(30 * time.Minute)
	d, renewed, err := m.Request(ctx, nil, lease.RequestRequest{Key: k1, MAC: hw1, CIAddr: l1.Addr})
	if err != nil || d.Action != lease.Ack || renewed.Addr != l1.Addr {
		t.Fatalf("renew: %v %v %v", err, d.Action, renewed.Addr)
	}
	if got := stored(l1.Addr, lease.Bound, k1); !got.Expires.Equal(t0.Add(90*time.Minute)) || got.Version <= l1.Version {
		t.Fatalf("renewed lease stored as %+v", got)
	}
	// Fill the pool; the next client finds it exhausted.
	l2, l3 := bind(2), bind(3)
	k4, hw4 := client(4)
	if _, err := m.Offer(ctx, nil, lease.OfferRequest{Key: k4, MAC: hw4}); !errors.Is(err, lease.ErrExhausted) {
		t.Fatalf("offer from a full pool: %v, want ErrExhausted", err)
	}
	// Release: the row keeps the client, who gets the address back.
	k2, _ := client(2)
	if err := m.Release(ctx, nil, k2, l2.Addr); err != nil {
		t.Fatal(err)
	}
	stored(l2.Addr, lease.Released, k2)
	if again := bind(2); again.Addr != l2.Addr {
		t.Fatalf("client 2 came back to %v, want its released %v", again.Addr, l2.Addr)
	}
	// Decline: the address is quarantined, kept from every client.
	k3, _ := client(3)
	if err := m.Decline(ctx, nil, k3, l3.Addr); err != nil {
		t.Fatal(err)
	}
	stored(l3.Addr, lease.Declined, k3)
	if o, err := m.Offer(ctx, nil, lease.OfferRequest{Key: k4, MAC: hw4}); !errors.Is(err, lease.ErrExhausted) {
		t.Fatalf("offer during the quarantine: %v %v, want ErrExhausted", o.Addr, err)
	}
	// Expiry: two hours on, every lease has run out; Expire marks them,
	// and the pool is free again.
	clk.advance(2 * time.Hour)
	n, err := m.Expire(ctx, clk.now())
	if err != nil || n != 2 {
		t.Fatalf("Expire = %d, %v; want the 2 bound leases", n, err)
	}
	stored(l1.Addr, lease.Expired, k1)
	stored(l2.Addr, lease.Expired, k2)
	if bound, err := s.Find(ctx, lease.Filter{States: []lease.State{lease.Bound, lease.Offered}}); err != nil || len(bound) != 0 {
		t.Fatalf("after Expire, %d leases still bound or offered (%v)", len(bound), err)
	}
	if l := bind(4); !sn.Prefix.Contains(l.Addr) {
		t.Fatalf("client 4 after expiry got %v", l.Addr)
	}
}
