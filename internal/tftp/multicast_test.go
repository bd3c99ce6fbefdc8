package tftp

import (
	"net/netip"
	"testing"
)

func TestParseMulticastOption(t *testing.T) {
	for _, tc := range []struct {
		in     string
		group  string
		master bool
		ok     bool
	}{
		{"239.255.70.1,1758,1", "239.255.70.1:1758", true, true},
		{"224.1.2.3,76,0", "224.1.2.3:76", false, true},
		{"192.0.2.1,1758,1", "", false, false}, // not multicast
		{"239.255.70.1,0,1", "", false, false}, // port 0
		{"239.255.70.1,1758,2", "", false, false},
		{"239.255.70.1,1758", "", false, false},
		{"", "", false, false},
	} {
		g, m, err := ParseMulticastOption(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (g.String() != tc.group || m != tc.master) {
			t.Errorf("%q: %v %v, want %s %v", tc.in, g, m, tc.group, tc.master)
		}
	}
}

// FuzzParseMulticastOption: never panics, and what parses formats back to
// the same value (round trip through multicastOption).
func FuzzParseMulticastOption(f *testing.F) {
	for _, s := range []string{"239.255.70.1,1758,1", "224.0.0.1,1,0", "239.1.1.1,65535,1", ",,", "1,2,3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, m, err := ParseMulticastOption(s)
		if err != nil {
			return
		}
		o := multicastOption(g, m)
		g2, m2, err := ParseMulticastOption(o.Value)
		if err != nil || g2 != g || m2 != m {
			t.Fatalf("%q → %v %v → %q → %v %v %v", s, g, m, o.Value, g2, m2, err)
		}
	})
}

func TestPXEGroupsFromTheTop(t *testing.T) {
	m := &Multicast{Groups: netip.MustParsePrefix("239.255.70.0/30"), PXEFiles: func(string) bool { return true }}
	a, _, _, ok := m.PXEParams("a")
	b, _, _, _ := m.PXEParams("/b")
	a2, cp, sp, _ := m.PXEParams("a")
	if !ok || a.String() != "239.255.70.3" || b.String() != "239.255.70.2" || a2 != a || cp != 1758 || sp != 1759 {
		t.Fatalf("PXE groups a=%v b=%v again %v ports %d %d", a, b, a2, cp, sp)
	}
	g1, ok1 := m.allocGroup()
	g2, ok2 := m.allocGroup()
	_, ok3 := m.allocGroup()
	if !ok1 || !ok2 || ok3 || g1.String() != "239.255.70.0" || g2.String() != "239.255.70.1" {
		t.Fatalf("RFC 2090 groups %v %v %v %v, third ok %v: want the two left, then none", g1, ok1, g2, ok2, ok3)
	}
	m.freeGroup(g1)
	if g, ok := m.allocGroup(); !ok || g != g1 {
		t.Fatalf("freed group not reused: %v %v", g, ok)
	}
}
