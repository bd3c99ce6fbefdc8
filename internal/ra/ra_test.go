package ra

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
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
