package lease

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestOffer(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*Config)
		run  func(t *testing.T, f *fixture)
	}{
		{"new client gets lowest never-used address", nil, func(t *testing.T, f *fixture) {
			l := f.mustOffer(1, "", "192.0.2.10")
			if l.State != Offered || !l.Expires.Equal(start.Add(time.Minute)) {
				t.Fatalf("offer = %v until %v, want offered for the 1m offer hold", l.State, l.Expires)
			}
		}},
		{"excluded router, server id, network and broadcast are skipped", func(c *Config) {
			c.Subnet.Ranges = []Range{{ip("192.0.2.0"), ip("192.0.2.1")}, {ip("192.0.2.11"), ip("192.0.2.12")}, {ip("192.0.2.255"), ip("192.0.2.255")}}
		}, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.12")
			if _, err := f.offer(2, ""); !errors.Is(err, ErrExhausted) {
				t.Fatalf("second offer: err = %v, want ErrExhausted", err)
			}
		}},
		{"same client asking twice gets the same offer", nil, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			f.clock.Advance(10 * time.Second)
			l := f.mustOffer(1, "", "192.0.2.10")
			if !l.Expires.Equal(f.clock.Now().Add(time.Minute)) {
				t.Fatalf("repeated offer hold ends %v, want renewed to %v", l.Expires, f.clock.Now().Add(time.Minute))
			}
		}},
		{"bound client rediscovering keeps its lease", nil, func(t *testing.T, f *fixture) {
			b := f.bind(1, "192.0.2.10")
			f.clock.Advance(time.Minute)
			l := f.mustOffer(1, "192.0.2.15", "192.0.2.10")
			if l.State != Bound || !l.Expires.Equal(b.Expires) {
				t.Fatalf("offer to bound client = %v until %v, want bound until %v", l.State, l.Expires, b.Expires)
			}
		}},
		{"previous address returned after expiry", nil, func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.clock.Advance(2 * time.Hour)
			f.bind(2, "192.0.2.12")
			f.mustOffer(1, "", "192.0.2.10")
		}},
		{"previous address returned after release", nil, func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			if err := f.m.Release(context.Background(), nil, key(1), ip("192.0.2.10")); err != nil {
				t.Fatal(err)
			}
			f.mustOffer(2, "", "192.0.2.12")
			f.mustOffer(1, "", "192.0.2.10")
		}},
		{"previous address taken by another: new address", nil, func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.clock.Advance(2 * time.Hour)
			f.mustOffer(2, "192.0.2.10", "192.0.2.10")
			f.mustOffer(1, "", "192.0.2.12")
		}},
		{"requested address honoured when free and in range", nil, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "192.0.2.15", "192.0.2.15")
		}},
		{"requested address held by another is not offered", nil, func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.mustOffer(2, "192.0.2.10", "192.0.2.12")
		}},
		{"requested address outside the ranges is not offered", nil, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "192.0.2.50", "192.0.2.10")
			f.mustOffer(2, "198.51.100.10", "192.0.2.12")
		}},
		{"requested excluded address is not offered", nil, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "192.0.2.11", "192.0.2.10")
		}},
		{"exhaustion", nil, func(t *testing.T, f *fixture) {
			if n := f.fill(); n != 9 {
				t.Fatalf("bound %d clients, want 9 (10 addresses minus the excluded router)", n)
			}
			if _, err := f.offer(1, ""); !errors.Is(err, ErrExhausted) {
				t.Fatalf("offer on a full pool: err = %v, want ErrExhausted", err)
			}
		}},
		{"offer hold timeout frees the address", func(c *Config) {
			c.Subnet.Ranges = []Range{{ip("192.0.2.10"), ip("192.0.2.10")}}
		}, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			if _, err := f.offer(2, ""); !errors.Is(err, ErrExhausted) {
				t.Fatalf("during the offer hold: err = %v, want ErrExhausted", err)
			}
			f.clock.Advance(59 * time.Second)
			if _, err := f.offer(2, ""); !errors.Is(err, ErrExhausted) {
				t.Fatalf("1s before the hold ends: err = %v, want ErrExhausted", err)
			}
			f.clock.Advance(time.Second)
			f.mustOffer(2, "", "192.0.2.10")
			if d, _ := f.selecting(1, "192.0.2.10"); d.Action != Nak {
				t.Fatalf("late REQUEST of the first client = %v, want nak", d)
			}
		}},
		{"released address is reused before one released later", func(c *Config) {
			c.Subnet.Ranges = []Range{{ip("192.0.2.10"), ip("192.0.2.13")}}
		}, func(t *testing.T, f *fixture) {
			for i, a := range []string{"192.0.2.10", "192.0.2.12", "192.0.2.13"} {
				f.bind(byte(i+1), a)
			}
			for _, c := range []struct {
				i byte
				a string
			}{{3, "192.0.2.13"}, {1, "192.0.2.10"}, {2, "192.0.2.12"}} {
				f.clock.Advance(time.Second)
				if err := f.m.Release(context.Background(), nil, key(c.i), ip(c.a)); err != nil {
					t.Fatal(err)
				}
			}
			f.mustOffer(9, "", "192.0.2.13")
			f.mustOffer(8, "", "192.0.2.10")
			f.mustOffer(7, "", "192.0.2.12")
		}},
		{"reservation by MAC offered outside the ranges", func(c *Config) {
			c.Subnet.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.200"), Hostname: "node1"}}
		}, func(t *testing.T, f *fixture) {
			l := f.mustOffer(1, "192.0.2.15", "192.0.2.200")
			if l.Hostname != "node1" {
				t.Fatalf("hostname = %q, want the reservation's node1", l.Hostname)
			}
			if len(f.asked) != 0 {
				t.Fatalf("reservation probed: %v", f.asked)
			}
		}},
		{"reservation by client id", func(c *Config) {
			c.Subnet.Reservations = []Reservation{{ClientID: []byte("\x00uuid-1"), Addr: ip("192.0.2.14")}}
		}, func(t *testing.T, f *fixture) {
			l, err := f.m.Offer(context.Background(), nil, OfferRequest{Key: NewClientKey([]byte("\x00uuid-1"), 1, hw(7)), MAC: hw(7)})
			if err != nil || l.Addr != ip("192.0.2.14") {
				t.Fatalf("Offer = %v, %v; want 192.0.2.14", l.Addr, err)
			}
			f.mustOffer(7, "", "192.0.2.10") // same MAC, no client id: not the reservation
		}},
		{"reserved address in the pool is never given to another client", func(c *Config) {
			c.Subnet.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.10")}}
		}, func(t *testing.T, f *fixture) {
			f.mustOffer(2, "192.0.2.10", "192.0.2.12")
			if n := f.fill(); n != 7 {
				t.Fatalf("filled %d, want 7 (pool of 9 minus the reservation minus client 2's offer)", n)
			}
			f.clock.Advance(2 * time.Hour) // everything expired: reuse must still skip .10
			for i := byte(200); i < 209; i++ {
				if l, err := f.offer(i, "192.0.2.10"); err == nil && l.Addr == ip("192.0.2.10") {
					t.Fatalf("reserved address offered to client %d", i)
				}
			}
			f.mustOffer(1, "", "192.0.2.10")
		}},
		{"reservation held by another client: owner gets a pool address", func(c *Config) {
			c.Subnet.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.10")}}
		}, func(t *testing.T, f *fixture) {
			// A lease granted before the reservation was configured.
			if _, err := f.store.Put(context.Background(), Lease{Addr: ip("192.0.2.10"), Key: key(2), State: Bound, Expires: start.Add(time.Hour), Updated: start}); err != nil {
				t.Fatal(err)
			}
			f.mustOffer(1, "", "192.0.2.12")
		}},
		{"probe in use: quarantine and offer the next address", nil, func(t *testing.T, f *fixture) {
			f.probe[ip("192.0.2.10")] = true
			f.mustOffer(1, "", "192.0.2.12")
			q := f.get("192.0.2.10")
			if q.State != Declined || !q.Expires.Equal(start.Add(10*time.Minute)) || q.Key != "" {
				t.Fatalf("probed address row = %+v, want declined for 10m with no client", q)
			}
			delete(f.probe, ip("192.0.2.10"))
			f.mustOffer(2, "192.0.2.10", "192.0.2.13")
			f.clock.Advance(10 * time.Minute)
			f.mustOffer(3, "192.0.2.10", "192.0.2.10")
		}},
		{"probe not asked for the client's current offer", nil, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			f.asked = nil
			f.mustOffer(1, "", "192.0.2.10")
			if len(f.asked) != 0 {
				t.Fatalf("probed %v for an address the client holds", f.asked)
			}
		}},
		{"every pool address in use: exhausted, all quarantined", nil, func(t *testing.T, f *fixture) {
			for i := 10; i <= 19; i++ {
				f.probe[netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})] = true
			}
			if _, err := f.offer(1, ""); !errors.Is(err, ErrExhausted) {
				t.Fatalf("err = %v, want ErrExhausted", err)
			}
			if ls, _ := f.m.Leases(context.Background()); len(ls) != 9 {
				t.Fatalf("%d rows, want 9 quarantined", len(ls))
			}
		}},
		{"declined address skipped during quarantine", nil, func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			if err := f.m.Decline(context.Background(), nil, key(1), ip("192.0.2.10")); err != nil {
				t.Fatal(err)
			}
			f.mustOffer(1, "192.0.2.10", "192.0.2.12") // not even to the decliner
			f.clock.Advance(10 * time.Minute)
			f.mustOffer(2, "192.0.2.10", "192.0.2.10")
		}},
		{"no ranges: only reservations", func(c *Config) {
			c.Subnet.Ranges = nil
			c.Subnet.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.5")}}
		}, func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.5")
			if _, err := f.offer(2, ""); !errors.Is(err, ErrExhausted) {
				t.Fatalf("err = %v, want ErrExhausted", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, c.cfg)) })
	}
}

func TestOfferReusesOldestExpired(t *testing.T) {
	f := newFixture(t, nil)
	pool := []string{"192.0.2.10", "192.0.2.12", "192.0.2.13", "192.0.2.14", "192.0.2.15", "192.0.2.16", "192.0.2.17", "192.0.2.18", "192.0.2.19"}
	// Client i+1 holds pool[i] and renews at base+perm[i] seconds, so the
	// leases expire in perm order, not in address order.
	perm := []int{5, 2, 8, 0, 7, 3, 1, 6, 4}
	for i := range pool {
		f.bind(byte(i+1), pool[i])
	}
	// Rebind (renew) each at its own time to give distinct expiries.
	base := f.clock.Now()
	for i, a := range pool {
		f.clock.Set(base.Add(time.Duration(perm[i]) * time.Second))
		d, _, err := f.m.Request(context.Background(), nil, RequestRequest{Key: key(byte(i + 1)), MAC: hw(byte(i + 1)), CIAddr: ip(a)})
		if err != nil || d.Action != Ack {
			t.Fatalf("renew %s: %v %v", a, d, err)
		}
	}
	f.clock.Set(base.Add(2 * time.Hour))
	var got []string
	for i := byte(50); i < 59; i++ {
		l, err := f.offer(i, "")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Addr.String())
	}
	want := make([]string, len(pool))
	for i, p := range perm {
		want[p] = pool[i]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reuse order = %v, want oldest expiry first %v", got, want)
	}
}

// One Manager holds its offers in memory: concurrent DISCOVERs never get
// one address.
func TestConcurrentOffersNeverShareAnAddress(t *testing.T) {
	store := NewMemStore()
	sn := testSubnet()
	sn.Ranges = []Range{{ip("192.0.2.10"), ip("192.0.2.49")}} // 39 usable
	m, err := New(store, Config{Subnet: sn, Authoritative: true, Now: func() time.Time { return start }})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	holders := map[netip.Addr]ClientKey{}
	exhausted := 0
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			k := ClientKey(fmt.Sprintf("c%d", i))
			l, err := m.Offer(context.Background(), nil, OfferRequest{Key: k})
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, ErrExhausted) {
				exhausted++
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			if prev, dup := holders[l.Addr]; dup {
				t.Errorf("%v offered to %s and %s", l.Addr, prev, k)
			}
			holders[l.Addr] = k
		})
	}
	wg.Wait()
	if len(holders) != 39 || exhausted != 21 {
		t.Fatalf("%d offers, %d exhausted; want 39 and 21", len(holders), exhausted)
	}
	if ls, _ := store.Find(context.Background(), Filter{}); len(ls) != 0 {
		t.Fatalf("offers wrote %d rows to the store, want none", len(ls))
	}
}

// dora runs DISCOVER + REQUEST for a client as a client does: a DHCPNAK
// sends it back to DISCOVER, up to tries times.
func dora(m *Manager, k ClientKey, tries int) (Lease, error) {
	ctx := context.Background()
	for range tries {
		o, err := m.Offer(ctx, nil, OfferRequest{Key: k})
		if err != nil {
			return Lease{}, err
		}
		d, l, err := m.Request(ctx, nil, RequestRequest{Key: k, ServerID: m.sn.ServerID, Requested: o.Addr})
		if err != nil {
			return Lease{}, err
		}
		if d.Action == Ack {
			return l, nil
		}
		if d.Action != Nak {
			return Lease{}, fmt.Errorf("request %v: %v %s", o.Addr, d.Action, d.Reason)
		}
	}
	return Lease{}, fmt.Errorf("%s: %d NAKs in a row", k, tries)
}

// Managers sharing a store (two servers) do not see each other's offers,
// so both may offer one address; the store lets only one REQUEST bind it
// and the other client is NAKed and starts over. No address is ever
// acknowledged to two clients, and every address ends up bound.
func TestManagersSharingAStoreNeverAckOneAddressTwice(t *testing.T) {
	for _, managers := range []int{1, 2} {
		t.Run(fmt.Sprintf("managers=%d", managers), func(t *testing.T) {
			store := NewMemStore()
			sn := testSubnet()
			sn.Ranges = []Range{{ip("192.0.2.10"), ip("192.0.2.49")}} // 39 usable
			var ms []*Manager
			for range managers {
				m, err := New(store, Config{Subnet: sn, Authoritative: true, Now: func() time.Time { return start }})
				if err != nil {
					t.Fatal(err)
				}
				ms = append(ms, m)
			}
			var mu sync.Mutex
			holders := map[netip.Addr]ClientKey{}
			exhausted := 0
			var wg sync.WaitGroup
			for i := range 60 {
				wg.Go(func() {
					m := ms[i%len(ms)]
					k := ClientKey(fmt.Sprintf("c%d", i))
					l, err := dora(m, k, 50)
					mu.Lock()
					defer mu.Unlock()
					if errors.Is(err, ErrExhausted) {
						exhausted++
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					if prev, dup := holders[l.Addr]; dup {
						t.Errorf("%v acknowledged to %s and %s", l.Addr, prev, k)
					}
					holders[l.Addr] = k
				})
			}
			wg.Wait()
			if len(holders) != 39 || exhausted != 21 {
				t.Fatalf("%d acknowledged, %d exhausted; want 39 and 21", len(holders), exhausted)
			}
			ls, err := store.Find(context.Background(), Filter{})
			if err != nil || len(ls) != 39 {
				t.Fatalf("store holds %d rows (%v), want 39", len(ls), err)
			}
			for _, l := range ls {
				if holders[l.Addr] != l.Key || l.State != Bound {
					t.Errorf("stored %v %s %v, acknowledged to %s", l.Addr, l.Key, l.State, holders[l.Addr])
				}
			}
		})
	}
}

// TestKnown: a client is known by its reservation, its outstanding offer
// or any lease row, history included; a new client is not.
func TestKnown(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(c *Config) {
		c.Subnet.Reservations = []Reservation{{MAC: hw(9), Addr: ip("192.0.2.50")}}
	})
	known := func(i byte) bool {
		t.Helper()
		ok, err := f.m.Known(ctx, key(i), hw(i))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if known(1) || known(2) {
		t.Fatal("new clients known")
	}
	if !known(9) {
		t.Error("a reserved client is not known")
	}
	f.mustOffer(1, "", "192.0.2.10")
	if !known(1) {
		t.Error("a client with an offer is not known")
	}
	f.bind(2, "192.0.2.12")
	if err := f.m.Release(ctx, nil, key(2), ip("192.0.2.12")); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(24 * time.Hour)
	if !known(2) {
		t.Error("a client with a released lease is not known")
	}
	if known(3) {
		t.Error("client 3 known")
	}
}

func TestDeclineReleaseExpire(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"decline by holder quarantines", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			if err := f.m.Decline(ctx, nil, key(1), ip("192.0.2.10")); err != nil {
				t.Fatal(err)
			}
			if l := f.get("192.0.2.10"); l.State != Declined || !l.Expires.Equal(start.Add(10*time.Minute)) {
				t.Fatalf("after decline: %+v", l)
			}
		}},
		{"decline by another client is refused as foreign", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			if err := f.m.Decline(ctx, nil, key(2), ip("192.0.2.10")); !errors.Is(err, ErrForeign) || !errors.Is(err, ErrNotHeld) {
				t.Fatalf("err = %v, want ErrForeign (an ErrNotHeld)", err)
			}
			if l := f.get("192.0.2.10"); l.State != Bound {
				t.Fatalf("state = %v, want bound", l.State)
			}
		}},
		{"decline of another client's offer is refused as foreign, the offer stays", func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			if err := f.m.Decline(ctx, nil, key(2), ip("192.0.2.10")); !errors.Is(err, ErrForeign) {
				t.Fatalf("err = %v, want ErrForeign", err)
			}
			f.mustOffer(1, "", "192.0.2.10")
		}},
		{"release of another client's ended lease is not foreign", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.clock.Advance(2 * time.Hour)
			err := f.m.Release(ctx, nil, key(2), ip("192.0.2.10"))
			if !errors.Is(err, ErrNotHeld) || errors.Is(err, ErrForeign) {
				t.Fatalf("err = %v, want ErrNotHeld, not ErrForeign", err)
			}
		}},
		{"decline of an unknown address is refused", func(t *testing.T, f *fixture) {
			if err := f.m.Decline(ctx, nil, key(1), ip("192.0.2.10")); !errors.Is(err, ErrNotHeld) {
				t.Fatalf("err = %v, want ErrNotHeld", err)
			}
		}},
		{"release by holder frees the address now", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.clock.Advance(time.Minute)
			if err := f.m.Release(ctx, nil, key(1), ip("192.0.2.10")); err != nil {
				t.Fatal(err)
			}
			l := f.get("192.0.2.10")
			if l.State != Released || !l.Expires.Equal(f.clock.Now()) || l.Key != key(1) {
				t.Fatalf("after release: %+v", l)
			}
		}},
		{"release by another client is refused as foreign", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			if err := f.m.Release(ctx, nil, key(2), ip("192.0.2.10")); !errors.Is(err, ErrForeign) {
				t.Fatalf("err = %v, want ErrForeign", err)
			}
			if l := f.get("192.0.2.10"); l.State != Bound || l.Key != key(1) {
				t.Fatalf("after a foreign release: %+v, want key(1)'s bound lease", l)
			}
		}},
		{"second release is refused", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			if err := f.m.Release(ctx, nil, key(1), ip("192.0.2.10")); err != nil {
				t.Fatal(err)
			}
			if err := f.m.Release(ctx, nil, key(1), ip("192.0.2.10")); !errors.Is(err, ErrNotHeld) {
				t.Fatalf("err = %v, want ErrNotHeld", err)
			}
		}},
		{"expire marks only ended leases; a lapsed offer leaves no row", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")                                                 // bound until +1h
			f.mustOffer(2, "", "192.0.2.12")                                        // offered (in memory) until +1m
			f.mustOffer(4, "", "192.0.2.13")                                        // offered until +1m
			f.clock.Advance(30 * time.Minute)                                       //
			f.mustOffer(3, "", "192.0.2.12")                                        // the lapsed offer's address, never used, comes back first
			if err := f.m.Decline(ctx, nil, key(3), ip("192.0.2.12")); err != nil { // declined until +40m
				t.Fatal(err)
			}
			n, err := f.m.Expire(ctx, f.clock.Now())
			if err != nil || n != 0 {
				t.Fatalf("Expire at +30m = %d, %v; want 0 (offers are not stored)", n, err)
			}
			if n, _ := f.m.Expire(ctx, start.Add(2*time.Hour)); n != 1 {
				t.Fatalf("Expire at +2h = %d, want 1 (the lease)", n)
			}
			want := map[string]State{"192.0.2.10": Expired, "192.0.2.12": Declined}
			ls, err := f.m.Leases(ctx)
			if err != nil || len(ls) != 2 {
				t.Fatalf("Leases = %v, %v", ls, err)
			}
			for _, l := range ls {
				if want[l.Addr.String()] != l.State {
					t.Errorf("%v: %v, want %v", l.Addr, l.State, want[l.Addr.String()])
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, nil)) })
	}
}
