package client

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/pxe"
)

// Offer is one answer the client received, as a person wants to read it.
type Offer struct {
	From        netip.AddrPort     `json:"from"`      // source address of the packet
	ServerID    netip.Addr         `json:"server_id"` // option 54
	Kind        string             `json:"kind"`      // "dhcp" (gives an address), "proxy" or "bootp"
	Type        string             `json:"type"`      // EDK II offer type, e.g. "ProxyPxe10"
	YourIP      netip.Addr         `json:"your_ip,omitzero"`
	NextServer  netip.Addr         `json:"next_server,omitzero"` // siaddr
	ServerName  string             `json:"server_name,omitempty"`
	BootFile    string             `json:"boot_file,omitempty"` // option 67, else the file field
	VendorClass string             `json:"vendor_class,omitempty"`
	PXE         *pxe.VendorOptions `json:"pxe_options,omitempty"` // option 43 decoded
	PXEError    string             `json:"pxe_options_error,omitempty"`
	After       time.Duration      `json:"after_ns"` // since the first DISCOVER

	OfferType pxe.OfferType  `json:"-"`
	Packet    *dhcpv4.DHCPv4 `json:"-"`
}

// NewOffer summarises packet p received from from.
func NewOffer(p *dhcpv4.DHCPv4, from netip.AddrPort, after time.Duration) Offer {
	o := Offer{
		From:        from,
		ServerID:    addr(p.ServerIdentifier()),
		YourIP:      addr(p.YourIPAddr),
		NextServer:  addr(p.ServerIPAddr),
		ServerName:  p.ServerHostName,
		BootFile:    BootFile(p),
		VendorClass: p.ClassIdentifier(),
		After:       after,
		OfferType:   pxe.Classify(p),
		Packet:      p,
	}
	o.Type = o.OfferType.String()
	switch {
	case o.OfferType == pxe.OfferBootp:
		o.Kind = "bootp"
	case o.YourIP.IsValid():
		o.Kind = "dhcp"
	default:
		o.Kind = "proxy"
	}
	if b := p.Options.Get(dhcpv4.GenericOptionCode(optVendorSpecific)); b != nil && strings.HasPrefix(o.VendorClass, pxe.PXEClient) {
		vo, err := pxe.ParseVendorOptions(b)
		o.PXE = &vo
		if err != nil {
			o.PXEError = err.Error()
		}
	}
	return o
}

// addr converts a net.IP to netip.Addr; the zero Addr for nil or 0.0.0.0.
func addr(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok || a.Unmap().IsUnspecified() {
		return netip.Addr{}
	}
	return a.Unmap()
}

// BootFile returns the boot file name of p: option 67 when present, else
// the file header field (which EDK II also falls back to).
func BootFile(p *dhcpv4.DHCPv4) string {
	if f := p.BootFileNameOption(); f != "" {
		return f
	}
	return strings.TrimRight(p.BootFileName, "\x00")
}

// Server returns the address identifying the server of o: option 54, else
// the packet's source.
func (o Offer) Server() netip.Addr {
	if o.ServerID.IsValid() {
		return o.ServerID
	}
	return o.From.Addr()
}

// Selection is the offer (or pair of offers) the simulated firmware picks.
type Selection struct {
	Address int    `json:"address_offer"` // index into Offers of the offer giving the address; -1 none
	Boot    int    `json:"boot_offer"`    // index of the offer giving boot information; -1 none
	Rank    int    `json:"rank"`          // EDK II priority 1 (best) … 8; 0 none
	Reason  string `json:"reason"`
}

// Select ranks offers as the firmware of p does: EDK II's PXE policy
// (pxe.Select) for PXE clients and iPXE (which takes the same offers), and
// HttpBootDxe's (ClassifyHTTP, SelectHTTP) for UEFI HTTP boot.
func Select(p Profile, offers []Offer) Selection {
	if p.HTTPBoot() {
		types, _ := httpTypes4(offers)
		return SelectHTTP(types)
	}
	pkts := make([]*dhcpv4.DHCPv4, len(offers))
	for i, o := range offers {
		pkts[i] = o.Packet
	}
	s := pxe.Select(pkts)
	return Selection{Address: s.Address, Boot: s.Boot, Rank: s.Rank, Reason: s.Reason}
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// Warning is something an operator should look at; Code is stable for
// scripts, Message is for people.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Warning codes.
const (
	WarnTwoDHCPServers   = "multiple-dhcp-servers"   // more than one server hands out addresses
	WarnUnexpectedServer = "unexpected-server"       // a server outside --expect-server answered
	WarnBootFileMissing  = "boot-file-missing"       // the TFTP server says the file does not exist
	WarnHTTPStatus       = "http-error"              // an HTTP URL answered 404 or another error
	WarnBlksizeDown      = "blksize-negotiated-down" // TFTP server granted a smaller block
	WarnChainloadLoop    = "chainload-loop"          // iPXE was offered an NBP again
	WarnNoBootServer     = "no-boot-server-reply"    // boot server discovery got no answer
	WarnMalformedPXE     = "malformed-option-43"
	WarnNAK              = "dhcp-nak" // the address server refused its own offer
	WarnCleanup          = "cleanup"  // the probe could not undo a change to the interface
)

// OfferWarnings returns the warnings that offers alone show: more than one
// server giving addresses, servers not in expect (when expect is not
// empty), and an undecodable option 43.
func OfferWarnings(offers []Offer, expect []netip.Addr) []Warning {
	var out []Warning
	var dhcpServers []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, o := range offers {
		s := o.Server()
		if o.Kind == "dhcp" && !contains(dhcpServers, s) {
			dhcpServers = append(dhcpServers, s)
		}
		if len(expect) > 0 && !contains(expect, s) && !seen[s] {
			out = append(out, Warning{WarnUnexpectedServer,
				fmt.Sprintf("%s answered (%s offer) but is not an expected server", s, o.Type)})
		}
		if o.PXEError != "" && !seen[s] {
			out = append(out, Warning{WarnMalformedPXE, fmt.Sprintf("%s sent an option 43 that does not decode: %s", s, o.PXEError)})
		}
		seen[s] = true
	}
	if len(dhcpServers) > 1 {
		names := make([]string, len(dhcpServers))
		for i, a := range dhcpServers {
			names[i] = a.String()
		}
		out = append(out, Warning{WarnTwoDHCPServers,
			fmt.Sprintf("%d DHCP servers hand out addresses: %s (machines get whichever answers first)", len(dhcpServers), strings.Join(names, ", "))})
	}
	return out
}

func contains(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// nbpExts are the extensions of network bootstrap programs, iPXE itself
// among them.
var nbpExts = []string{".efi", ".kpxe", ".kkpxe", ".kkkpxe", ".pxe", ".0", ".com", ".lkrn", ".usb", ".n12"}

// IsNBP reports whether file names a network bootstrap program (an .efi or
// .kpxe binary…) rather than a script.
func IsNBP(file string) bool {
	f := strings.ToLower(file)
	if i := strings.IndexAny(f, "?#"); i >= 0 && isURL(f) {
		f = f[:i]
	}
	ext := path.Ext(f)
	for _, e := range nbpExts {
		if ext == e {
			return true
		}
	}
	return false
}

// ChainloadWarning returns the chainload-loop warning when iPXE (p.IPXE)
// is offered a boot program again instead of a script: iPXE would load
// itself forever.
func ChainloadWarning(p Profile, bootFile string) (Warning, bool) {
	if !p.IPXE || !IsNBP(bootFile) {
		return Warning{}, false
	}
	return Warning{WarnChainloadLoop, fmt.Sprintf(
		"iPXE was offered the boot program %q again: it would chainload forever (give iPXE a script URL when the user class is iPXE)", bootFile)}, true
}
