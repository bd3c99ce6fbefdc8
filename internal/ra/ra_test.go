package ra

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/ipv6"
)

// TestMessage checks each field of RFC 4861 §4.2 (and the options of §4.6)
// against what the configuration says.
func TestMessage(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	tests := []struct {
		name      string
		c         Config
		flags     byte
		lifetime  uint16
		prefixes  int
		autonomus bool
	}{
		{"RFC 4861 §4.2 O flag, no router", Config{Other: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}}, 0x40, 0, 1, true},
		{"M and O, a default router for 30 min", Config{Managed: true, Other: true, RouterLifetime: 30 * time.Minute,
			Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:0:1::/64")}}, 0xc0, 1800, 1, true},
		{"§6.2.1 router lifetime capped at 9000 s", Config{RouterLifetime: 10 * time.Hour}, 0, 9000, 0, false},
		{"a /48 is on-link, not for SLAAC", Config{Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/48")}}, 0, 0, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.c.Message(mac)
			if b[0] != 134 || b[1] != 0 || b[4] != 64 {
				t.Fatalf("header % x: want type 134, code 0, hop limit 64", b[:8])
			}
			if b[5] != tc.flags {
				t.Errorf("flags %#x, want %#x", b[5], tc.flags)
			}
			if l := binary.BigEndian.Uint16(b[6:]); l != tc.lifetime {
				t.Errorf("router lifetime %d, want %d", l, tc.lifetime)
			}
			opts := b[16:]
			if len(opts) != 8+32*tc.prefixes {
				t.Fatalf("%d bytes of options, want %d", len(opts), 8+32*tc.prefixes)
			}
			if opts[0] != 1 || opts[1] != 1 || net.HardwareAddr(opts[2:8]).String() != mac.String() {
				t.Errorf("source link-layer option % x", opts[:8])
			}
			if tc.prefixes == 0 {
				return
			}
			p := opts[8:]
			want := tc.c.Prefixes[0]
			if p[0] != 3 || p[1] != 4 || int(p[2]) != want.Bits() || p[3]&0x80 == 0 || (p[3]&0x40 != 0) != tc.autonomus {
				t.Errorf("prefix option header % x", p[:4])
			}
			if got := netip.AddrFrom16([16]byte(p[16:32])); got != want.Addr() {
				t.Errorf("prefix %v, want %v", got, want.Addr())
			}
			if v, pr := binary.BigEndian.Uint32(p[4:]), binary.BigEndian.Uint32(p[8:]); v == 0 || pr == 0 || pr > v {
				t.Errorf("lifetimes valid %d preferred %d", v, pr)
			}
		})
	}
}

// TestSolicited names the cases of RFC 4861 §6.2.6 the answer to a router
// solicitation follows.
func TestSolicited(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	fw := netip.MustParseAddr("fe80::5054:ff:fe00:4601")
	tests := []struct {
		name      string
		src       netip.Addr
		last      time.Time
		delay     time.Duration
		wantTo    netip.Addr
		wantAfter time.Duration // at - now
	}{
		{"§6.2.6 unicast to a source with an address, after the random delay", fw, now.Add(-time.Second), 200 * time.Millisecond, fw, 200 * time.Millisecond},
		{"RFC 7772 §5.1 unicast is not held back by the multicast limit (iPXE 1 s after the periodic advertisement)", fw, now.Add(-time.Second), 0, fw, 0},
		{"§6.2.6 from the unspecified address: to all nodes", netip.IPv6Unspecified(), now.Add(-time.Minute), 300 * time.Millisecond, netip.Addr{}, 300 * time.Millisecond},
		{"§6.2.6 to all nodes at most once a MIN_DELAY_BETWEEN_RAS: deferred, not dropped", netip.IPv6Unspecified(), now.Add(-time.Second), 100 * time.Millisecond, netip.Addr{}, 2 * time.Second},
		{"no advertisement sent yet", netip.IPv6Unspecified(), time.Time{}, 0, netip.Addr{}, 0},
		{"a delay beyond MAX_RA_DELAY_TIME is cut to it", fw, time.Time{}, time.Hour, fw, MaxRADelay},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			to, at := Solicited(tc.src, now, tc.last, tc.delay)
			if to != tc.wantTo || at.Sub(now) != tc.wantAfter {
				t.Errorf("Solicited = %v at +%v, want %v at +%v", to, at.Sub(now), tc.wantTo, tc.wantAfter)
			}
		})
	}
}

// TestQueue checks that solicitations share a pending answer, that an
// advertisement to all nodes answers those waiting for one, and that a
// flood of sources ends in one advertisement to all nodes.
func TestQueue(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	a, b := netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fe80::2")
	var q queue
	q.sentMulticast(now.Add(-time.Second))
	q.add(a, now, 100*time.Millisecond)
	q.add(a, now.Add(50*time.Millisecond), 0) // shares the first one's answer
	q.add(netip.IPv6Unspecified(), now, 0)
	q.add(b, now, 400*time.Millisecond)
	if at, ok := q.next(); !ok || at != now.Add(100*time.Millisecond) {
		t.Fatalf("next = %v %v, want +100ms", at, ok)
	}
	if got := q.due(now.Add(100 * time.Millisecond)); !slices.Equal(got, []netip.Addr{a}) {
		t.Errorf("due at +100ms = %v, want [%v]", got, a)
	}
	if got := q.due(now.Add(time.Second)); !slices.Equal(got, []netip.Addr{b}) {
		t.Errorf("due at +1s = %v, want [%v] (all nodes waits for +2s)", got, b)
	}
	q.sentMulticast(now.Add(1500 * time.Millisecond)) // the periodic one answers the waiting solicitation
	if at, ok := q.next(); ok {
		t.Errorf("pending after the periodic advertisement: %v", at)
	}

	var flood queue
	for i := range maxPending + 10 {
		src := netip.AddrFrom16([16]byte{0xfe, 0x80, 14: byte(i >> 8), 15: byte(i)})
		flood.add(src, now, 0)
	}
	got := flood.due(now)
	if len(got) != maxPending+1 || got[0].IsValid() {
		t.Errorf("%d answers to a flood, first %v: want %d unicast and one to all nodes, first", len(got), got[0], maxPending)
	}
}

// TestValidSolicitation checks RFC 4861 §6.1.1.
func TestValidSolicitation(t *testing.T) {
	fw := &net.IPAddr{IP: net.ParseIP("fe80::5054:ff:fe00:4601"), Zone: "eth0"}
	rs := []byte{133, 0, 0, 0, 0, 0, 0, 0}
	withSLLA := append(slices.Clone(rs), 1, 1, 0x52, 0x54, 0, 0, 0x46, 1)
	tests := []struct {
		name string
		b    []byte
		cm   *ipv6.ControlMessage
		src  net.Addr
		want netip.Addr
		ok   bool
	}{
		{"from a link-local address", withSLLA, &ipv6.ControlMessage{IfIndex: 2, HopLimit: 255}, fw, netip.MustParseAddr("fe80::5054:ff:fe00:4601"), true},
		{"from :: without options (EDK II before DAD)", rs, &ipv6.ControlMessage{IfIndex: 2, HopLimit: 255}, &net.IPAddr{IP: net.IPv6unspecified}, netip.IPv6Unspecified(), true},
		{"§6.1.1 from :: with a source link-layer option", withSLLA, nil, &net.IPAddr{IP: net.IPv6unspecified}, netip.Addr{}, false},
		{"§6.1.1 hop limit not 255", rs, &ipv6.ControlMessage{IfIndex: 2, HopLimit: 64}, fw, netip.Addr{}, false},
		{"another interface", rs, &ipv6.ControlMessage{IfIndex: 3, HopLimit: 255}, fw, netip.Addr{}, false},
		{"§6.1.1 code not 0", []byte{133, 1, 0, 0, 0, 0, 0, 0}, nil, fw, netip.Addr{}, false},
		{"too short", rs[:7], nil, fw, netip.Addr{}, false},
		{"not a solicitation", []byte{134, 0, 0, 0, 0, 0, 0, 0}, nil, fw, netip.Addr{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := validSolicitation(tc.b, tc.cm, tc.src, 2)
			if got != tc.want || ok != tc.ok {
				t.Errorf("validSolicitation = %v %v, want %v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzValidSolicitation feeds arbitrary ICMPv6 messages from the
// unspecified address: never a panic, and an accepted one is a router
// solicitation whose options hold no source link-layer address.
func FuzzValidSolicitation(f *testing.F) {
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0x52, 0x54, 0, 0, 0x46, 1})
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 5, 0, 1, 1})
	f.Add([]byte{133, 0, 0, 0, 0, 0, 0, 0, 14, 2, 0, 0, 0, 0, 0, 0, 1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		from, ok := validSolicitation(b, nil, &net.IPAddr{IP: net.IPv6unspecified}, 1)
		if !ok {
			return
		}
		if b[0] != 133 || b[1] != 0 || !from.IsUnspecified() {
			t.Fatalf("accepted % x from %v", b, from)
		}
		for o := b[8:]; len(o) >= 8 && o[1] != 0 && len(o) >= 8*int(o[1]); o = o[8*int(o[1]):] {
			if o[0] == 1 {
				t.Fatalf("accepted a source link-layer option from ::: % x", b)
			}
		}
	})
}

// TestFirstLinkLocal: the advertisement's source is the interface's
// link-local address, never a global or IPv4 one listed before it.
func TestFirstLinkLocal(t *testing.T) {
	ipnet := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	addrs := []net.Addr{ipnet("192.0.2.1/24"), ipnet("2001:db8::1/64"), ipnet("fe80::1c:2ff:fe03:405/64"), ipnet("fe80::2/64")}
	if got, ok := firstLinkLocal(addrs); !ok || got != netip.MustParseAddr("fe80::1c:2ff:fe03:405") {
		t.Errorf("firstLinkLocal = %v %v, want fe80::1c:2ff:fe03:405", got, ok)
	}
	if got, ok := firstLinkLocal(addrs[:2]); ok {
		t.Errorf("firstLinkLocal without a link-local address = %v, want none", got)
	}
}

// TestRetryMulticast: an advertisement to all nodes that could not go is
// due again at the retry time, and an earlier pending one is kept.
func TestRetryMulticast(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	var q queue
	q.retryMulticast(now.Add(linkLocalRetry))
	if at, ok := q.next(); !ok || at != now.Add(linkLocalRetry) {
		t.Fatalf("next = %v %v, want +%v", at, ok, linkLocalRetry)
	}
	q.retryMulticast(now.Add(5 * time.Second))
	if got := q.due(now.Add(linkLocalRetry)); !slices.Equal(got, []netip.Addr{{}}) {
		t.Errorf("due at +1s = %v, want [all nodes]", got)
	}
	if _, ok := q.next(); ok {
		t.Error("a later retry replaced the earlier one instead of being dropped")
	}
}
