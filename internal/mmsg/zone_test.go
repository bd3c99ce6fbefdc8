package mmsg

import (
	"net"
	"testing"
)

// TestZones: a scope ID is named as the net package names zones (the
// interface's name, its number when no interface has it), a zone maps back
// to its index, and Zones gives the same answers as the lookups it caches.
func TestZones(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("no loopback interface: %v", err)
	}
	var z Zones
	for range 2 { // the second time from Zones' memory
		if name, ok := ZoneName(uint32(lo.Index)); name != "lo" || !ok {
			t.Fatalf("ZoneName(%d) = %q, %v; want lo, true", lo.Index, name, ok)
		}
		if got := z.Name(uint32(lo.Index)); got != "lo" {
			t.Fatalf("Zones.Name(%d) = %q, want lo", lo.Index, got)
		}
		for _, zone := range []string{"lo", "1234567"} {
			want := uint32(lo.Index)
			if zone != "lo" {
				want = 1234567
			}
			if got, err := ZoneIndex(zone); got != want || err != nil {
				t.Fatalf("ZoneIndex(%q) = %d, %v; want %d", zone, got, err, want)
			}
			if got, err := z.Index(zone); got != want || err != nil {
				t.Fatalf("Zones.Index(%q) = %d, %v; want %d", zone, got, err, want)
			}
		}
	}
	const gone = 1<<31 - 7 // no interface has this index
	if name, ok := ZoneName(gone); name != "2147483641" || ok {
		t.Fatalf("ZoneName(%d) = %q, %v; want its number, false", gone, name, ok)
	}
	if got := z.Name(gone); got != "2147483641" {
		t.Fatalf("Zones.Name(%d) = %q, want its number", gone, got)
	}
	if _, err := z.Index("no-such-interface0"); err == nil {
		t.Fatal("Zones.Index of a missing interface: no error")
	}
}
