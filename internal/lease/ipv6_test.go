package lease

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// v6Subnet: 2001:db8:0:1::/64, pool ::100-::103, a DUID reservation ::50.
func v6Subnet() Subnet {
	return Subnet{
		Prefix:       mustPrefix("2001:db8:0:1::/64"),
		Ranges:       []Range{{ip("2001:db8:0:1::100"), ip("2001:db8:0:1::103")}},
		Reservations: []Reservation{{DUID: []byte{0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 9}, Addr: ip("2001:db8:0:1::50"), Hostname: "nine"}},
		LeaseTime:    time.Hour,
		OfferHold:    time.Minute,
	}
}

func duid(i byte) []byte { return []byte{0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, i} }

// DHCPv6 IA_NA leases run through the same state machine: Solicit (Offer),
// Request (Selected), Renew (CIAddr), Release; one address per DUID+IAID.
func TestIPv6Lifecycle(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Subnet = v6Subnet(); c.Probe = nil })
	ctx := context.Background()
	k1 := DUIDKey(1, duid(1))
	l, err := f.m.Offer(ctx, nil, OfferRequest{Key: k1})
	if err != nil || l.Addr != ip("2001:db8:0:1::100") {
		t.Fatalf("Offer = %v, %v; want ::100", l.Addr, err)
	}
	d, l, err := f.m.Request(ctx, nil, RequestRequest{Key: k1, Requested: l.Addr, Selected: true})
	if err != nil || d.Action != Ack || l.State != Bound {
		t.Fatalf("Request = %v %v %v", d, l, err)
	}
	// A second IA of the same DUID is another client key: another address.
	k2 := DUIDKey(2, duid(1))
	if l2, err := f.m.Offer(ctx, nil, OfferRequest{Key: k2}); err != nil || l2.Addr != ip("2001:db8:0:1::101") {
		t.Fatalf("second IA: %v %v", l2.Addr, err)
	}
	// Renew extends.
	f.clock.Advance(30 * time.Minute)
	d, l, err = f.m.Request(ctx, nil, RequestRequest{Key: k1, CIAddr: ip("2001:db8:0:1::100")})
	if err != nil || d.Action != Ack || !l.Expires.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("Renew = %v %v %v", d, l, err)
	}
	// Another DUID renewing that address is refused.
	if d, _, _ := f.m.Request(ctx, nil, RequestRequest{Key: DUIDKey(1, duid(7)), CIAddr: ip("2001:db8:0:1::100")}); d.Action != Nak {
		t.Fatalf("foreign renew: %v", d)
	}
	// Selecting an address offered to nobody is refused.
	if d, _, _ := f.m.Request(ctx, nil, RequestRequest{Key: DUIDKey(1, duid(7)), Requested: ip("2001:db8:0:1::102"), Selected: true}); d.Action != Nak {
		t.Fatalf("unoffered request: %v", d)
	}
	if err := f.m.Release(ctx, nil, k1, ip("2001:db8:0:1::100")); err != nil {
		t.Fatal(err)
	}
	if got := f.get("2001:db8:0:1::100"); got.State != Released || got.Key != k1 {
		t.Fatalf("after release: %+v", got)
	}
	// The same client gets its address back.
	if l, err := f.m.Offer(ctx, nil, OfferRequest{Key: k1}); err != nil || l.Addr != ip("2001:db8:0:1::100") {
		t.Fatalf("offer after release = %v %v", l.Addr, err)
	}
}

// A reservation by DUID matches every IAID of that DUID; the prefix's
// Subnet-Router anycast address is never offered; the pool runs out.
func TestIPv6ReservationAndExhaustion(t *testing.T) {
	sn := v6Subnet()
	sn.Ranges = []Range{{ip("2001:db8:0:1::"), ip("2001:db8:0:1::2")}}
	f := newFixture(t, func(c *Config) { c.Subnet = sn; c.Probe = nil })
	ctx := context.Background()
	if l, err := f.m.Offer(ctx, nil, OfferRequest{Key: DUIDKey(77, duid(9))}); err != nil || l.Addr != ip("2001:db8:0:1::50") || l.Hostname != "nine" {
		t.Fatalf("reserved offer = %+v %v", l, err)
	}
	var got []netip.Addr
	for i := byte(1); i <= 3; i++ {
		l, err := f.m.Offer(ctx, nil, OfferRequest{Key: DUIDKey(1, duid(i))})
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Addr)
	}
	if len(got) != 2 || got[0] != ip("2001:db8:0:1::1") || got[1] != ip("2001:db8:0:1::2") {
		t.Fatalf("offers = %v, want ::1 and ::2 (:: is the Subnet-Router anycast address)", got)
	}
}

func TestDUIDKey(t *testing.T) {
	k := DUIDKey(0x01020304, []byte{0, 3, 0, 1, 1, 2, 3, 4, 5, 6})
	if k.String() != "ff:01:02:03:04:00:03:00:01:01:02:03:04:05:06" {
		t.Fatalf("key = %s", k)
	}
	if d, ok := k.DUID(); !ok || len(d) != 10 {
		t.Fatalf("DUID() = %x %v", d, ok)
	}
	if _, ok := MACKey(hw(1)).DUID(); ok {
		t.Fatal("a MAC key has no DUID")
	}
}

func TestPrefixBounds(t *testing.T) {
	for _, c := range []struct{ p, first, last string }{
		{"192.0.2.0/24", "192.0.2.0", "192.0.2.255"},
		{"0.0.0.0/0", "0.0.0.0", "255.255.255.255"},
		{"2001:db8:0:1::/64", "2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff"},
		{"2001:db8::/125", "2001:db8::", "2001:db8::7"},
	} {
		f, l := prefixBounds(mustPrefix(c.p))
		if f != ip(c.first) || l != ip(c.last) {
			t.Errorf("prefixBounds(%s) = %v, %v", c.p, f, l)
		}
	}
}
