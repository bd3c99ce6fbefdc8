package lease

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var start = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// fixture is a Manager over a MemStore with a test clock.
type fixture struct {
	t     *testing.T
	m     *Manager
	store *MemStore
	clock *clock
	probe map[netip.Addr]bool // addresses the probe reports in use
	asked []netip.Addr        // addresses probed
	mu    sync.Mutex
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func hw(i byte) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 0, i} }

// client i: MAC 52:54:00:00:00:0i, key from the MAC.
func key(i byte) ClientKey { return MACKey(hw(i)) }

// testSubnet: 192.0.2.0/24, pool .10-.19, server .1, router .11 excluded.
func testSubnet() Subnet {
	return Subnet{
		Prefix:    netip.MustParsePrefix("192.0.2.0/24"),
		Ranges:    []Range{{ip("192.0.2.10"), ip("192.0.2.19")}},
		Exclude:   []netip.Addr{ip("192.0.2.11")},
		ServerID:  ip("192.0.2.1"),
		LeaseTime: time.Hour,
		OfferHold: time.Minute,
	}
}

func newFixture(t *testing.T, edit func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, store: NewMemStore(), clock: &clock{t: start}, probe: map[netip.Addr]bool{}}
	cfg := Config{
		Subnet:        testSubnet(),
		Authoritative: true,
		DeclineHold:   10 * time.Minute,
		Now:           f.clock.Now,
		Probe: func(_ context.Context, a netip.Addr) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.asked = append(f.asked, a)
			return f.probe[a]
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(f.store, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.m = m
	return f
}

func (f *fixture) offer(i byte, requested string) (Lease, error) {
	req := OfferRequest{Key: key(i), MAC: hw(i)}
	if requested != "" {
		req.Requested = ip(requested)
	}
	return f.m.Offer(context.Background(), nil, req)
}

// mustOffer offers to client i and checks the address.
func (f *fixture) mustOffer(i byte, requested, want string) Lease {
	f.t.Helper()
	l, err := f.offer(i, requested)
	if err != nil {
		f.t.Fatalf("Offer(client %d, requested %q): %v", i, requested, err)
	}
	if l.Addr != ip(want) {
		f.t.Fatalf("Offer(client %d, requested %q) = %v, want %v", i, requested, l.Addr, want)
	}
	if l.Key != key(i) {
		f.t.Fatalf("Offer(client %d) lease key = %v", i, l.Key)
	}
	return l
}

// selecting sends the DHCPREQUEST of client i accepting our offer of addr.
func (f *fixture) selecting(i byte, addr string) (Decision, Lease) {
	f.t.Helper()
	d, l, err := f.m.Request(context.Background(), nil, RequestRequest{Key: key(i), MAC: hw(i), ServerID: f.m.sn.ServerID, Requested: ip(addr)})
	if err != nil {
		f.t.Fatalf("Request: %v", err)
	}
	return d, l
}

// bind runs DISCOVER + REQUEST for client i and checks the address.
func (f *fixture) bind(i byte, want string) Lease {
	f.t.Helper()
	f.mustOffer(i, "", want)
	d, l := f.selecting(i, want)
	if d.Action != Ack {
		f.t.Fatalf("bind client %d to %s: %v %s", i, want, d.Action, d.Reason)
	}
	return l
}

func (f *fixture) get(addr string) Lease {
	f.t.Helper()
	l, err := f.store.Get(context.Background(), ip(addr))
	if err != nil {
		f.t.Fatalf("Get(%s): %v", addr, err)
	}
	return l
}

// fill binds clients 100.. to every free pool address and returns how many.
func (f *fixture) fill() int {
	f.t.Helper()
	n := 0
	for i := byte(100); ; i++ {
		l, err := f.offer(i, "")
		if errors.Is(err, ErrExhausted) {
			return n
		}
		if err != nil {
			f.t.Fatal(err)
		}
		if d, _ := f.selecting(i, l.Addr.String()); d.Action != Ack {
			f.t.Fatalf("fill: %v", d)
		}
		n++
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// put stores l directly, as a lease left by an earlier configuration.
func (f *fixture) put(l Lease) {
	f.t.Helper()
	if _, err := f.store.Put(context.Background(), l); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}
