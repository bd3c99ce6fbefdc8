package pxe

import (
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// offer builds a DHCPv4 server reply as the tests need it.
type offer struct {
	mt     dhcpv4.MessageType // 0: no option 53 (BOOTP)
	yiaddr string             // "" for 0.0.0.0 (proxy)
	class  string             // option 60
	vendor []byte             // option 43
	file   string             // option 67
	bootp  string             // file header field
}

func (o offer) build(t *testing.T) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr{2, 0, 0, 0, 0, 1}))
	if err != nil {
		t.Fatal(err)
	}
	p.OpCode = dhcpv4.OpcodeBootReply
	p.Options = dhcpv4.Options{}
	if o.mt != 0 {
		p.UpdateOption(dhcpv4.OptMessageType(o.mt))
	}
	if o.yiaddr != "" {
		p.YourIPAddr = net.ParseIP(o.yiaddr).To4()
	}
	if o.class != "" {
		p.UpdateOption(dhcpv4.OptClassIdentifier(o.class))
	}
	if o.vendor != nil {
		p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, o.vendor))
	}
	if o.file != "" {
		p.UpdateOption(dhcpv4.OptBootFileName(o.file))
	}
	p.BootFileName = o.bootp
	return p
}

var (
	discovery = []byte{SubDiscoveryCtl, 1, DiscoveryUseBootFile, 255}
	mtftp     = []byte{1, 4, 224, 1, 2, 3, 2, 2, 0, 1, 3, 2, 0, 2, 4, 1, 1, 5, 1, 1, 255}
	// offers by type, each distinguishable
	dhcpPxe10   = offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.10", class: PXEClient, vendor: discovery}
	dhcpWfm11a  = offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.11", class: PXEClient, vendor: mtftp}
	dhcpBinl    = offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.12", class: PXEClient}
	proxyPxe10  = offer{mt: dhcpv4.MessageTypeOffer, class: PXEClient, vendor: discovery, file: "undionly.kpxe"}
	proxyWfm11a = offer{mt: dhcpv4.MessageTypeOffer, class: PXEClient, vendor: mtftp}
	proxyBinl   = offer{mt: dhcpv4.MessageTypeOffer, class: PXEClient}
	dhcpOnly    = offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.20"}
	dhcpOnlyNBP = offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.21", file: "pxelinux.0"}
	bootp       = offer{yiaddr: "192.0.2.30", bootp: "boot.img"}
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name  string
		o     offer
		want  OfferType
		proxy bool
	}{
		{"EDK II DhcpPxe10: address + PXEClient + discovery control", dhcpPxe10, OfferDhcpPxe10, false},
		{"EDK II DhcpWfm11a: address + PXEClient + MTFTP 1-5", dhcpWfm11a, OfferDhcpWfm11a, false},
		{"EDK II DhcpBinl: address + PXEClient, no option 43", dhcpBinl, OfferDhcpBinl, false},
		{"EDK II DhcpBinl: option 43 without PXE sub-options", offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.9", class: PXEClient, vendor: []byte{100, 1, 1, 255}}, OfferDhcpBinl, false},
		{"EDK II ProxyPxe10: yiaddr 0 + PXEClient + discovery control", proxyPxe10, OfferProxyPxe10, true},
		{"EDK II ProxyWfm11a: yiaddr 0 + PXEClient + MTFTP", proxyWfm11a, OfferProxyWfm11a, true},
		{"EDK II ProxyBinl: yiaddr 0 + PXEClient", proxyBinl, OfferProxyBinl, true},
		{"PXEClient with arch suffix is PXE", offer{mt: dhcpv4.MessageTypeOffer, class: "PXEClient:Arch:00007"}, OfferProxyBinl, true},
		{"partial MTFTP set is BINL", offer{mt: dhcpv4.MessageTypeOffer, class: PXEClient, vendor: []byte{1, 4, 224, 1, 2, 3, 255}}, OfferProxyBinl, true},
		{"malformed option 43 is BINL", offer{mt: dhcpv4.MessageTypeOffer, class: PXEClient, vendor: []byte{6, 5}}, OfferProxyBinl, true},
		{"ACK counts as an offer (boot server reply)", offer{mt: dhcpv4.MessageTypeAck, class: PXEClient, vendor: discovery}, OfferProxyPxe10, true},
		{"EDK II DhcpOnly: no option 60", dhcpOnly, OfferDhcpOnly, false},
		{"DhcpOnly with option 67", dhcpOnlyNBP, OfferDhcpOnly, false},
		{"DhcpOnly: option 60 of another vendor", offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.22", class: "MSFT 5.0"}, OfferDhcpOnly, false},
		{"EDK II Bootp: no option 53, file field", bootp, OfferBootp, false},
		{"Bootp: no option 53, option 67", offer{yiaddr: "192.0.2.31", file: "boot.img"}, OfferBootp, false},
		{"Invalid: no option 53 and no boot file", offer{yiaddr: "192.0.2.32"}, OfferInvalid, false},
		{"Invalid: NAK", offer{mt: dhcpv4.MessageTypeNak, class: PXEClient}, OfferInvalid, false},
		{"Invalid: DISCOVER", offer{mt: dhcpv4.MessageTypeDiscover, class: PXEClient}, OfferInvalid, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.o.build(t))
			if got != tc.want {
				t.Fatalf("Classify = %v, want %v", got, tc.want)
			}
			if got.Proxy() != tc.proxy {
				t.Fatalf("%v.Proxy() = %v, want %v", got, got.Proxy(), tc.proxy)
			}
		})
	}
	t.Run("nil packet is Invalid", func(t *testing.T) {
		if got := Classify(nil); got != OfferInvalid {
			t.Fatalf("Classify(nil) = %v", got)
		}
	})
}

func TestOfferTypeString(t *testing.T) {
	for ty, want := range map[OfferType]string{OfferInvalid: "Invalid", OfferDhcpPxe10: "DhcpPxe10", OfferProxyBinl: "ProxyBinl", OfferBootp: "Bootp", OfferType(99): "OfferType(?)", OfferType(-1): "OfferType(?)"} {
		if got := ty.String(); got != want {
			t.Errorf("OfferType(%d).String() = %q, want %q", int(ty), got, want)
		}
	}
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name          string
		offers        []offer
		address, boot int
		rank          int
		reason        string // substring
	}{
		{"priority 1 DhcpPxe10 beats everything", []offer{proxyPxe10, dhcpOnly, dhcpBinl, dhcpWfm11a, dhcpPxe10}, 4, 4, 1, "DhcpPxe10"},
		{"priority 2 DhcpWfm11a beats proxy + DHCP", []offer{proxyPxe10, dhcpOnly, dhcpWfm11a}, 2, 2, 2, "DhcpWfm11a"},
		{"priority 3 ProxyPxe10 + DhcpOnly", []offer{dhcpOnly, proxyPxe10}, 0, 1, 3, "ProxyPxe10 + DhcpOnly"},
		{"priority 3 beats DhcpBinl", []offer{dhcpBinl, proxyPxe10, dhcpOnly}, 2, 1, 3, "ProxyPxe10"},
		{"priority 4 ProxyWfm11a + DhcpOnly", []offer{proxyWfm11a, dhcpOnly, proxyBinl}, 1, 0, 4, "ProxyWfm11a"},
		{"priority 5 DhcpBinl beats ProxyBinl + DhcpOnly", []offer{proxyBinl, dhcpOnly, dhcpBinl}, 2, 2, 5, "DhcpBinl"},
		{"priority 6 ProxyBinl + DhcpOnly (pxed with UEFI)", []offer{dhcpOnly, proxyBinl}, 0, 1, 6, "ProxyBinl + DhcpOnly"},
		{"priority 6 beats DhcpOnly with a file", []offer{dhcpOnlyNBP, proxyBinl}, 0, 1, 6, "ProxyBinl"},
		{"priority 7 DhcpOnly with option 67", []offer{dhcpOnly, dhcpOnlyNBP}, 1, 1, 7, "option 67"},
		{"priority 8 Bootp + DhcpOnly", []offer{bootp, dhcpOnly}, 1, 0, 8, "Bootp + DhcpOnly"},
		{"priority 8 Bootp alone", []offer{bootp}, 0, 0, 8, "BOOTP reply"},
		{"first received wins within a type", []offer{dhcpOnly, proxyBinl, offer{mt: dhcpv4.MessageTypeOffer, yiaddr: "192.0.2.40"}, proxyBinl}, 0, 1, 6, "ProxyBinl"},
		{"invalid offers are skipped", []offer{{mt: dhcpv4.MessageTypeNak}, dhcpOnly, proxyBinl}, 1, 2, 6, "ProxyBinl"},
		{"PXE-E51 no offers", nil, -1, -1, 0, "PXE-E51"},
		{"proxy only: no address", []offer{proxyPxe10, proxyBinl}, -1, -1, 0, "no DHCP server gave an address"},
		{"PXE-E53 DHCP only without boot info", []offer{dhcpOnly, dhcpOnly}, -1, -1, 0, "PXE-E53"},
		{"only invalid offers", []offer{{mt: dhcpv4.MessageTypeNak}, {mt: dhcpv4.MessageTypeDiscover}}, -1, -1, 0, "no valid offers among 2 replies"},
		{"proxy and invalid offers: no address", []offer{{mt: dhcpv4.MessageTypeNak}, proxyBinl}, -1, -1, 0, "no DHCP server gave an address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ps []*dhcpv4.DHCPv4
			for _, o := range tc.offers {
				ps = append(ps, o.build(t))
			}
			got := Select(ps)
			if got.Address != tc.address || got.Boot != tc.boot || got.Rank != tc.rank {
				t.Fatalf("Select = %+v, want address %d boot %d rank %d", got, tc.address, tc.boot, tc.rank)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Fatalf("Reason %q does not contain %q", got.Reason, tc.reason)
			}
		})
	}
}
