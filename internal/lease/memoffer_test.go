package lease

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Offers live in the Manager's memory (offers.go): these cases check what
// that changes and what it must not.
func TestOffersInMemory(t *testing.T) {
	ctx := context.Background()
	rows := func(f *fixture) []Lease {
		f.t.Helper()
		ls, err := f.store.Find(ctx, Filter{})
		if err != nil {
			f.t.Fatal(err)
		}
		return ls
	}
	cases := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"an offer writes nothing; the ACK is the first write", func(t *testing.T, f *fixture) {
			o := f.mustOffer(1, "", "192.0.2.10")
			if o.Version != 0 || len(rows(f)) != 0 {
				t.Fatalf("after OFFER: version %d, %d rows; want 0 and none", o.Version, len(rows(f)))
			}
			d, l := f.selecting(1, "192.0.2.10")
			if d.Action != Ack || l.Version != 1 {
				t.Fatalf("REQUEST = %v, version %d; want ack, version 1", d, l.Version)
			}
			if got := f.get("192.0.2.10"); got.State != Bound || got.Key != key(1) {
				t.Fatalf("stored %+v", got)
			}
		}},
		{"offer over a free row binds by compare-and-swap on its version", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.clock.Advance(2 * time.Hour)
			o := f.mustOffer(2, "192.0.2.10", "192.0.2.10")
			if o.Version != 1 || f.get("192.0.2.10").Key != key(1) {
				t.Fatalf("offer version %d, row %+v; want version 1 over client 1's row", o.Version, f.get("192.0.2.10"))
			}
			if d, l := f.selecting(2, "192.0.2.10"); d.Action != Ack || l.Version != 2 || l.Key != key(2) {
				t.Fatalf("REQUEST = %v, %+v", d, l)
			}
		}},
		{"two servers offer one address: the first REQUEST wins, the other is NAKed and re-offered", func(t *testing.T, f *fixture) {
			other, err := New(f.store, Config{Subnet: testSubnet(), Authoritative: true, Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			f.mustOffer(1, "", "192.0.2.10")
			o2, err := other.Offer(ctx, nil, OfferRequest{Key: key(2), MAC: hw(2)})
			if err != nil || o2.Addr != ip("192.0.2.10") {
				t.Fatalf("other server's offer = %v, %v; want 192.0.2.10 (it cannot see ours)", o2.Addr, err)
			}
			if d, _ := f.selecting(1, "192.0.2.10"); d.Action != Ack {
				t.Fatalf("first REQUEST = %v", d)
			}
			d, _, err := other.Request(ctx, nil, RequestRequest{Key: key(2), MAC: hw(2), ServerID: other.sn.ServerID, Requested: ip("192.0.2.10")})
			if err != nil || d.Action != Nak || !strings.Contains(d.Reason, "another client") {
				t.Fatalf("second REQUEST = %v, %v; want nak", d, err)
			}
			if o2, err = other.Offer(ctx, nil, OfferRequest{Key: key(2), MAC: hw(2)}); err != nil || o2.Addr != ip("192.0.2.12") {
				t.Fatalf("re-offer = %v, %v; want 192.0.2.12", o2.Addr, err)
			}
			if l := f.get("192.0.2.10"); l.Key != key(1) || l.State != Bound {
				t.Fatalf("stored %+v, want client 1's", l)
			}
		}},
		{"a restarted server has no offers: the REQUEST is NAKed and the client starts over", func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			restarted, err := New(f.store, Config{Subnet: testSubnet(), Authoritative: true, Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			d, _, err := restarted.Request(ctx, nil, RequestRequest{Key: key(1), MAC: hw(1), ServerID: restarted.sn.ServerID, Requested: ip("192.0.2.10")})
			if err != nil || d.Action != Nak {
				t.Fatalf("REQUEST after restart = %v, %v; want nak", d, err)
			}
		}},
		{"release of an offer stores it released; the client gets it back", func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			f.must(f.m.Release(ctx, nil, key(1), ip("192.0.2.10")))
			if l := f.get("192.0.2.10"); l.State != Released || l.Key != key(1) {
				t.Fatalf("stored %+v", l)
			}
			f.mustOffer(2, "", "192.0.2.12")
			f.mustOffer(1, "", "192.0.2.10")
		}},
		{"Leases lists outstanding offers", func(t *testing.T, f *fixture) {
			f.bind(1, "192.0.2.10")
			f.mustOffer(2, "", "192.0.2.12")
			ls, err := f.m.Leases(ctx)
			if err != nil || len(ls) != 2 || ls[1].Addr != ip("192.0.2.12") || ls[1].State != Offered || ls[1].Key != key(2) {
				t.Fatalf("Leases = %+v, %v", ls, err)
			}
			f.clock.Advance(time.Minute)
			if ls, _ := f.m.Leases(ctx); len(ls) != 1 {
				t.Fatalf("after the hold: %d leases, want 1", len(ls))
			}
		}},
		{"a client's new offer replaces its old one", func(t *testing.T, f *fixture) {
			f.mustOffer(1, "", "192.0.2.10")
			// The client asks for another address while its offer is out:
			// it is offered its current offer again.
			f.mustOffer(1, "192.0.2.15", "192.0.2.10")
			f.must(f.m.dropOffers(ctx, key(1), f.clock.Now()))
			f.mustOffer(1, "192.0.2.15", "192.0.2.15")
			f.mustOffer(2, "", "192.0.2.10") // the old offer's address is free again
		}},
		{"lapsed offers are forgotten one hold after they end", func(t *testing.T, f *fixture) {
			for i := byte(1); i <= 5; i++ {
				f.offer(i, "")
			}
			f.clock.Advance(90 * time.Second)
			if _, err := f.m.Expire(ctx, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if n := len(f.m.offers.byAddr); n != 5 {
				t.Fatalf("%d offers kept 30s after lapsing, want 5 (late REQUESTs still bind)", n)
			}
			if d, _ := f.selecting(3, "192.0.2.13"); d.Action != Ack {
				t.Fatalf("late REQUEST = %v, want ack: nobody took the address", d)
			}
			f.clock.Advance(time.Minute)
			if _, err := f.m.Expire(ctx, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if n, k := len(f.m.offers.byAddr), len(f.m.offers.byKey); n != 0 || k != 0 {
				t.Fatalf("%d offers, %d keys left, want none", n, k)
			}
			if _, err := f.offer(9, ""); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newFixture(t, nil)) })
	}
}
