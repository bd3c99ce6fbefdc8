package dhcp4

import (
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/pxe"
)

// everyFile offers every boot file by PXE MTFTP, as a site that turns
// multicast on for all NBPs would.
type everyFile struct{}

func (everyFile) MTFTP(string) (pxe.MTFTP, bool) {
	return pxe.MTFTP{Addr: netip.MustParseAddr("239.255.70.255"), ClientPort: 1758, ServerPort: 1759, Timeout: 2, Delay: 2}, true
}

// TestMTFTPOnlyForBIOSROMs: with MTFTP on for every file, the BIOS PXE ROM's
// offer and boot server ACK carry sub-options 1–5 (a ProxyWfm11a offer) and
// EDK II's never do (it would discard the offer), nor iPXE's.
func TestMTFTPOnlyForBIOSROMs(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  *dhcpv4.DHCPv4
		port Port
		want pxe.OfferType // classification of the reply, as EDK II does it
		mtft bool
	}{
		// With discovery control (sub-option 6) too, EDK II's rules would
		// call it PXE 1.0; the BIOS ROM reads both.
		{"BIOS PXE ROM offer", biosDiscover(t), PortDHCP, pxe.OfferProxyPxe10, true},
		{"BIOS PXE ROM boot server ACK", withType(dhcpv4.MessageTypeRequest, biosDiscover(t)), PortBootServer, pxe.OfferProxyWfm11a, true},
		{"EDK II offer", edk2Discover(t), PortDHCP, pxe.OfferProxyBinl, false},
		{"EDK II boot server ACK", withType(dhcpv4.MessageTypeRequest, edk2Discover(t)), PortBootServer, pxe.OfferProxyBinl, false},
		{"EDK II claiming arch 0 in option 93, UNDI 3", edk2Discover(t, dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0})), PortDHCP, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, mt := range []MTFTPTable{everyFile{}, nil} {
				px := &Proxy{Boot: proxyConfig(), MTFTP: mt}
				res := px.Respond(Request{Packet: tc.req, Port: tc.port, Server: server})
				if res.Reply == nil {
					t.Fatalf("no reply: %s", res.Reason)
				}
				var vo pxe.VendorOptions
				if b := res.Reply.Options.Get(dhcpv4.GenericOptionCode(optPXEVendor)); b != nil {
					var err error
					if vo, err = pxe.ParseVendorOptions(b); err != nil {
						t.Fatal(err)
					}
				}
				want := tc.mtft && mt != nil
				if vo.HasMTFTP != want {
					t.Fatalf("table %v: sub-options 1–5 present %v, want %v (%+v)", mt, vo.HasMTFTP, want, vo)
				}
				if want && (vo.MTFTPAddr != netip.MustParseAddr("239.255.70.255") || vo.MTFTPServerPort != 1759 ||
					(tc.port == PortDHCP && !vo.HasDiscovery)) {
					t.Errorf("option 43 %+v", vo)
				}
				if tc.want != 0 && mt != nil {
					if got := pxe.Classify(res.Reply); got != tc.want {
						t.Errorf("reply classifies as %v, want %v", got, tc.want)
					}
				}
			}
		})
	}
}
