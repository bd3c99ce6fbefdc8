package client

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzAdvertise6 feeds arbitrary bytes to what the IPv6 client reads from
// the network: the codec, NewOffer6 and both firmware classifications.
// Round trip: a message that decodes, encoded again, decodes to the same
// summary and types.
func FuzzAdvertise6(f *testing.F) {
	url := dhcpv6.OptBootFileURL("tftp://[2001:db8::1]/snponly.efi")
	for _, m := range []*dhcpv6.Message{
		adv(1, iaNA("2001:db8::100")),
		adv(2, vendor(343, "PXEClient"), url),
		adv(3, iaNA("", iana.StatusNoAddrsAvail)),
		adv(4, vendor(343, "HTTPClient"), dhcpv6.OptBootFileURL("http://[2001:db8::1]:8080/a.efi"), dhcpv6.OptPreference(255)),
	} {
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv6.MessageFromBytes(b)
		if err != nil {
			return
		}
		from := netip.MustParseAddrPort("[fe80::1]:547")
		o := NewOffer6(m, from, 0, testIAID)
		typ := ClassifyPXE6(o)
		ht, herr := ClassifyHTTP(httpOffer6(o))
		_ = SelectPXE6([]Offer6{o})
		m2, err := dhcpv6.MessageFromBytes(m.ToBytes())
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		o2 := NewOffer6(m2, from, 0, testIAID)
		ht2, herr2 := ClassifyHTTP(httpOffer6(o2))
		if ClassifyPXE6(o2) != typ || o2.Kind != o.Kind || o2.Addr != o.Addr || o2.BootFileURL != o.BootFileURL ||
			o2.Dropped != o.Dropped || ht2 != ht || (herr == nil) != (herr2 == nil) {
			t.Fatalf("round trip changed the offer: %+v / %+v", o, o2)
		}
	})
}

// FuzzBootFileURL6: a URL that parses to an address and a file, written
// again as tftp://[addr]/file, parses to the same.
func FuzzBootFileURL6(f *testing.F) {
	for _, s := range []string{"tftp://[2001:db8::1]/snponly.efi", "tftp://[2001:db8::1]/a;mode=octet", "tftp://host/x", "tftp://[::1", "http://x/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBootFileURL6(s)
		if err != nil || !b.Server.IsValid() || strings.Contains(b.File, ";mode=") {
			return
		}
		again, err := ParseBootFileURL6("tftp://[" + b.Server.String() + "]/" + b.File)
		if err != nil || again != b {
			t.Fatalf("%q → %+v → %+v, %v", s, b, again, err)
		}
	})
}
