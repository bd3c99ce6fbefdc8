package client

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/pxe"
)

// HTTP boot offer types (HTTP_BOOT_OFFER_TYPE of EDK II's HttpBootDxe): an
// address offer ("Dhcp…") or not ("Proxy…"), with a boot URI naming its
// host by address ("IpUri") or by name ("NameUri"), with DNS servers
// ("…Dns") or without; DhcpOnly and DhcpDns carry no HTTPClient URI.
const (
	HTTPDhcpNameUriDns = "DhcpNameUriDns"
	HTTPDhcpDns        = "DhcpDns"
	HTTPDhcpIpUri      = "DhcpIpUri"
	HTTPDhcpIpUriDns   = "DhcpIpUriDns"
	HTTPDhcpNameUri    = "DhcpNameUri"
	HTTPDhcpOnly       = "DhcpOnly"
	HTTPProxyNameUri   = "ProxyNameUri"
	HTTPProxyIpUri     = "ProxyIpUri"
)

// HTTPOffer is what HttpBootDxe reads from an offer to classify it.
type HTTPOffer struct {
	Proxy       bool   // no address: yiaddr's first byte 0 (DHCPv4); no successful IA_NA (DHCPv6)
	VendorClass string // option 60, or the first class data of DHCPv6 option 16
	URI         string // option 67 or the file field (DHCPv4); option 59 (DHCPv6)
	DNS         bool   // option 6 (DHCPv4) or 23 (DHCPv6) present
	IPv6        bool
}

// ClassifyHTTP returns o's offer type as HttpBootParseDhcp4Packet and
// HttpBootParseDhcp6Packet decide it, or why HttpBootDxe drops the offer:
// vendor class data starting "HTTPClient" (ten bytes compared; over IPv6
// the enterprise number is not) makes an HTTP offer, which must carry a
// URI that parses; the URI is "IP" when its host is an address literal of
// the offer's family; an offer with neither HTTPClient nor an address is
// dropped. UEFI 2.10 §24.7.3.
func ClassifyHTTP(o HTTPOffer) (string, error) {
	isHTTP := strings.HasPrefix(o.VendorClass, pxe.HTTPClient)
	if !isHTTP {
		switch {
		case o.Proxy:
			return "", fmt.Errorf("no address and no HTTPClient vendor class: HttpBootDxe drops it")
		case o.DNS:
			return HTTPDhcpDns, nil
		}
		return HTTPDhcpOnly, nil
	}
	if o.URI == "" {
		return "", fmt.Errorf("HTTPClient offer without a boot URI: HttpBootDxe drops it")
	}
	u, err := url.Parse(o.URI)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("HTTPClient offer's boot URI %q does not parse: HttpBootDxe drops it", o.URI)
	}
	a, err := netip.ParseAddr(u.Hostname())
	ipURI := err == nil && a.Zone() == "" && (a.Is6() && !a.Is4In6()) == o.IPv6
	switch {
	case ipURI && o.Proxy:
		return HTTPProxyIpUri, nil
	case ipURI && o.DNS:
		return HTTPDhcpIpUriDns, nil
	case ipURI:
		return HTTPDhcpIpUri, nil
	case o.Proxy:
		return HTTPProxyNameUri, nil
	case o.DNS:
		return HTTPDhcpNameUriDns, nil
	}
	return HTTPDhcpNameUri, nil
}

// httpOfferMax is HTTP_BOOT_OFFER_MAX_NUM.
const httpOfferMax = 16

// SelectHTTP chooses among offer types (in the order received; "" for a
// dropped offer) as HttpBootSelectDhcpOffer does when the boot option
// names no URI (the "corporate environment"): 1. DhcpIpUri or
// DhcpIpUriDns; 2. DhcpNameUriDns; 3. DhcpOnly + ProxyIpUri; 4. DhcpDns +
// ProxyIpUri; 5. DhcpDns + ProxyNameUri; 6. DhcpDns + DhcpNameUri. The
// first offer of each type counts. Boot is the offer whose URI is loaded.
func SelectHTTP(types []string) Selection {
	first := map[string]int{}
	n := 0
	for i, t := range types {
		if t == "" {
			continue
		}
		if n++; n > httpOfferMax {
			break
		}
		if _, ok := first[t]; !ok {
			first[t] = i
		}
	}
	has := func(t string) bool { _, ok := first[t]; return ok }
	one := func(t string, rank int, why string) Selection {
		return Selection{Address: first[t], Boot: first[t], Rank: rank, Reason: why}
	}
	two := func(addr, boot string, rank int, why string) Selection {
		return Selection{Address: first[addr], Boot: first[boot], Rank: rank, Reason: why}
	}
	switch {
	case has(HTTPDhcpIpUri):
		return one(HTTPDhcpIpUri, 1, "DhcpIpUri offer: address and an HTTP URI by address from one server (HttpBootDxe priority 1)")
	case has(HTTPDhcpIpUriDns):
		return one(HTTPDhcpIpUriDns, 1, "DhcpIpUriDns offer: address, DNS and an HTTP URI by address (HttpBootDxe priority 1)")
	case has(HTTPDhcpNameUriDns):
		return one(HTTPDhcpNameUriDns, 2, "DhcpNameUriDns offer: address, DNS and an HTTP URI by name (HttpBootDxe priority 2)")
	case has(HTTPDhcpOnly) && has(HTTPProxyIpUri):
		return two(HTTPDhcpOnly, HTTPProxyIpUri, 3, "address from a DhcpOnly offer, URI from a ProxyIpUri offer (HttpBootDxe priority 3)")
	case has(HTTPDhcpDns) && has(HTTPProxyIpUri):
		return two(HTTPDhcpDns, HTTPProxyIpUri, 4, "address from a DhcpDns offer, URI from a ProxyIpUri offer (HttpBootDxe priority 4)")
	case has(HTTPDhcpDns) && has(HTTPProxyNameUri):
		return two(HTTPDhcpDns, HTTPProxyNameUri, 5, "address and DNS from a DhcpDns offer, URI by name from a ProxyNameUri offer (HttpBootDxe priority 5)")
	case has(HTTPDhcpDns) && has(HTTPDhcpNameUri):
		return two(HTTPDhcpDns, HTTPDhcpNameUri, 6, "address and DNS from a DhcpDns offer, URI by name from a DhcpNameUri offer (HttpBootDxe priority 6)")
	case len(types) == 0:
		return Selection{Address: -1, Boot: -1, Reason: "no offers received"}
	case n == 0:
		return Selection{Address: -1, Boot: -1, Reason: "HttpBootDxe dropped every offer (no HTTPClient URI and no address)"}
	case has(HTTPProxyIpUri) || has(HTTPProxyNameUri):
		return Selection{Address: -1, Boot: -1, Reason: "an HTTPClient proxy offer but no address offer it can pair with (a URI by name needs an offer with DNS servers)"}
	case has(HTTPDhcpNameUri):
		return Selection{Address: -1, Boot: -1, Reason: "an HTTP URI by name but no offer with DNS servers"}
	}
	return Selection{Address: -1, Boot: -1, Reason: "no offer with vendor class HTTPClient and a boot URI (HTTP boot needs both)"}
}

// httpOffer4 reads what HttpBootDxe classifies from a DHCPv4 offer.
func httpOffer4(p *dhcpv4.DHCPv4) HTTPOffer {
	return HTTPOffer{
		Proxy:       len(p.YourIPAddr) == 0 || p.YourIPAddr.To4() == nil || p.YourIPAddr.To4()[0] == 0,
		VendorClass: p.ClassIdentifier(),
		URI:         BootFile(p),
		DNS:         p.Options.Has(dhcpv4.OptionDomainNameServer),
	}
}

// httpOffer6 reads what HttpBootDxe classifies from a DHCPv6 Advertise.
func httpOffer6(o Offer6) HTTPOffer {
	return HTTPOffer{Proxy: o.Kind != "dhcp", VendorClass: o.VendorClass, URI: o.BootFileURL, DNS: len(o.DNS) > 0 || o.Msg != nil && o.Msg.Options.GetOne(23) != nil, IPv6: true}
}

// httpTypes4 classifies DHCPv4 offers for HTTP boot: the type of each, ""
// for a dropped one, and the reasons.
func httpTypes4(offers []Offer) ([]string, []string) {
	types, why := make([]string, len(offers)), make([]string, len(offers))
	for i, o := range offers {
		if o.Packet == nil {
			continue
		}
		t, err := ClassifyHTTP(httpOffer4(o.Packet))
		types[i] = t
		if err != nil {
			why[i] = err.Error()
		}
	}
	return types, why
}

// HTTPImageType returns what UEFI HTTP boot makes of a download, as
// HttpBootCheckImageType decides it: by Content-Type first
// ("application/efi", "application/vnd.efi-iso", "application/vnd.efi-img",
// compared without case and without parameters' tolerance), else by the
// URI path's last four characters (.efi, .iso, .img); ok is false when
// neither tells, and the firmware refuses the file.
func HTTPImageType(contentType, uri string) (kind string, ok bool) {
	switch strings.ToLower(contentType) {
	case "application/efi":
		return "EFI program", true
	case "application/vnd.efi-iso":
		return "CD/DVD image (RAM disk)", true
	case "application/vnd.efi-img":
		return "disk image (RAM disk)", true
	}
	p := uri
	if u, err := url.Parse(uri); err == nil {
		p = u.Path
	}
	if len(p) >= 4 {
		switch strings.ToLower(p[len(p)-4:]) {
		case ".efi":
			return "EFI program", true
		case ".iso":
			return "CD/DVD image (RAM disk)", true
		case ".img":
			return "disk image (RAM disk)", true
		}
	}
	return "", false
}
