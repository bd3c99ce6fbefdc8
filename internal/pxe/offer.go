package pxe

import (
	"fmt"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// OfferType is EDK II's classification of a DHCPv4 offer (PXEBC_OFFER_TYPE in
// NetworkPkg/UefiPxeBcDxe).
type OfferType int

// The eight offer types, plus Invalid for packets EDK II drops.
const (
	OfferInvalid     OfferType = iota
	OfferDhcpPxe10             // address + PXEClient + discovery control
	OfferDhcpWfm11a            // address + PXEClient + MTFTP options
	OfferDhcpBinl              // address + PXEClient, no PXE vendor options
	OfferProxyPxe10            // no address + PXEClient + discovery control
	OfferProxyWfm11a           // no address + PXEClient + MTFTP options
	OfferProxyBinl             // no address + PXEClient, no PXE vendor options
	OfferDhcpOnly              // plain DHCP offer
	OfferBootp                 // BOOTP reply (no option 53) with a boot file
)

var offerNames = [...]string{"Invalid", "DhcpPxe10", "DhcpWfm11a", "DhcpBinl", "ProxyPxe10", "ProxyWfm11a", "ProxyBinl", "DhcpOnly", "Bootp"}

func (t OfferType) String() string {
	if t >= 0 && int(t) < len(offerNames) {
		return offerNames[t]
	}
	return "OfferType(?)"
}

// Proxy reports whether t carries boot information but no address.
func (t OfferType) Proxy() bool {
	return t == OfferProxyPxe10 || t == OfferProxyWfm11a || t == OfferProxyBinl
}

// Classify returns the offer type of p following EDK II's rules:
// no option 53 with a boot file → Bootp; option 60 starting "PXEClient" →
// a PXE offer, proxy when yiaddr is 0, PXE 1.0 with a discovery-control
// vendor option, WfM 1.1a with the MTFTP vendor options, else BINL;
// anything else → DhcpOnly.
func Classify(p *dhcpv4.DHCPv4) OfferType {
	if p == nil {
		return OfferInvalid
	}
	if !p.Options.Has(dhcpv4.OptionDHCPMessageType) {
		if bootFile(p) != "" {
			return OfferBootp
		}
		return OfferInvalid
	}
	if p.MessageType() != dhcpv4.MessageTypeOffer && p.MessageType() != dhcpv4.MessageTypeAck {
		return OfferInvalid
	}
	if !strings.HasPrefix(p.ClassIdentifier(), PXEClient) {
		return OfferDhcpOnly
	}
	proxy := p.YourIPAddr == nil || p.YourIPAddr.IsUnspecified()
	var vo VendorOptions
	if b := p.Options.Get(dhcpv4.OptionVendorSpecificInformation); b != nil {
		vo, _ = ParseVendorOptions(b)
	}
	switch {
	case vo.HasDiscovery && proxy:
		return OfferProxyPxe10
	case vo.HasDiscovery:
		return OfferDhcpPxe10
	case vo.HasMTFTP && proxy:
		return OfferProxyWfm11a
	case vo.HasMTFTP:
		return OfferDhcpWfm11a
	case proxy:
		return OfferProxyBinl
	default:
		return OfferDhcpBinl
	}
}

func bootFile(p *dhcpv4.DHCPv4) string {
	if f := p.BootFileNameOption(); f != "" {
		return f
	}
	return p.BootFileName
}

// Selection is the outcome of EDK II's offer selection: the offer that gives
// the address and, when boot information comes from a separate proxy offer,
// that one. Indexes are into the slice given to Select; -1 means none.
type Selection struct {
	Address int    // offer whose address is used
	Boot    int    // offer whose boot information is used (may equal Address)
	Rank    int    // 1 (best) … 8 in EDK II's priority list; 0 when nothing is bootable
	Reason  string // why, for people
}

// Select applies EDK II's default priority policy (PxeBcSelectDhcp4Offer) to
// offers received in order; within a type the first received wins.
//
//  1. DhcpPxe10  2. DhcpWfm11a  3. ProxyPxe10 + DhcpOnly  4. ProxyWfm11a + DhcpOnly
//  5. DhcpBinl   6. ProxyBinl + DhcpOnly  7. DhcpOnly with a boot file (option 67)
//  8. Bootp (+ DhcpOnly)
func Select(offers []*dhcpv4.DHCPv4) Selection {
	first := map[OfferType]int{}
	var dhcpOnlyWithFile = -1
	for i, o := range offers {
		t := Classify(o)
		if _, ok := first[t]; !ok {
			first[t] = i
		}
		if t == OfferDhcpOnly && dhcpOnlyWithFile < 0 && bootFile(o) != "" {
			dhcpOnlyWithFile = i
		}
	}
	idx := func(t OfferType) (int, bool) { i, ok := first[t]; return i, ok }
	if i, ok := idx(OfferDhcpPxe10); ok {
		return Selection{i, i, 1, "DHCP offer with PXE discovery options (DhcpPxe10)"}
	}
	if i, ok := idx(OfferDhcpWfm11a); ok {
		return Selection{i, i, 2, "DHCP offer with PXE MTFTP options (DhcpWfm11a)"}
	}
	d, haveDhcp := idx(OfferDhcpOnly)
	if p, ok := idx(OfferProxyPxe10); ok && haveDhcp {
		return Selection{d, p, 3, "address from a plain DHCP offer, boot info from ProxyDHCP with PXE discovery options (ProxyPxe10 + DhcpOnly)"}
	}
	if p, ok := idx(OfferProxyWfm11a); ok && haveDhcp {
		return Selection{d, p, 4, "address from a plain DHCP offer, boot info from ProxyDHCP with MTFTP options (ProxyWfm11a + DhcpOnly)"}
	}
	if i, ok := idx(OfferDhcpBinl); ok {
		return Selection{i, i, 5, "DHCP offer with PXEClient and no PXE vendor options (DhcpBinl)"}
	}
	if p, ok := idx(OfferProxyBinl); ok && haveDhcp {
		return Selection{d, p, 6, "address from a plain DHCP offer, boot info from ProxyDHCP (ProxyBinl + DhcpOnly)"}
	}
	if dhcpOnlyWithFile >= 0 {
		return Selection{dhcpOnlyWithFile, dhcpOnlyWithFile, 7, "plain DHCP offer carrying a boot file name (option 67)"}
	}
	if b, ok := idx(OfferBootp); ok {
		if haveDhcp {
			return Selection{d, b, 8, "address from a plain DHCP offer, boot file from a BOOTP reply (Bootp + DhcpOnly)"}
		}
		return Selection{b, b, 8, "BOOTP reply with a boot file"}
	}
	s := Selection{Address: -1, Boot: -1}
	_, haveInvalid := first[OfferInvalid]
	switch {
	case len(offers) == 0:
		s.Reason = "no offers received (PXE-E51: No DHCP or proxyDHCP offers were received)"
	case haveInvalid && len(first) == 1:
		s.Reason = fmt.Sprintf("no valid offers among %d replies (neither DHCPOFFER/DHCPACK nor BOOTP with a boot file)", len(offers))
	case !haveDhcp:
		s.Reason = "ProxyDHCP offers but no DHCP server gave an address"
	default:
		s.Reason = "DHCP offers without boot information and no ProxyDHCP (PXE-E53: No boot filename received)"
	}
	return s
}
