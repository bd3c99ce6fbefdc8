package client

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestClassifyHTTP follows HttpBootParseDhcp4Packet and
// HttpBootParseDhcp6Packet.
func TestClassifyHTTP(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    HTTPOffer
		want string // "" dropped
	}{
		{"address, no class: DhcpOnly", HTTPOffer{}, HTTPDhcpOnly},
		{"address + DNS: DhcpDns", HTTPOffer{DNS: true}, HTTPDhcpDns},
		{"address + HTTPClient + IPv4 URI", HTTPOffer{VendorClass: "HTTPClient", URI: "http://192.0.2.1/a.efi"}, HTTPDhcpIpUri},
		{"address + HTTPClient + IPv4 URI + DNS", HTTPOffer{VendorClass: "HTTPClient", URI: "http://192.0.2.1/a.efi", DNS: true}, HTTPDhcpIpUriDns},
		{"address + HTTPClient + name", HTTPOffer{VendorClass: "HTTPClient", URI: "http://boot.example/a.efi"}, HTTPDhcpNameUri},
		{"address + HTTPClient + name + DNS", HTTPOffer{VendorClass: "HTTPClient", URI: "http://boot.example/a.efi", DNS: true}, HTTPDhcpNameUriDns},
		{"proxy + HTTPClient + IPv4 URI", HTTPOffer{Proxy: true, VendorClass: "HTTPClient", URI: "http://192.0.2.1:8080/a.efi"}, HTTPProxyIpUri},
		{"proxy + HTTPClient + IPv6 URI over IPv6", HTTPOffer{Proxy: true, IPv6: true, VendorClass: "HTTPClient", URI: "http://[2001:db8::1]:8080/a.efi"}, HTTPProxyIpUri},
		{"IPv4 literal over IPv6 is a name to HttpUrlGetIp6", HTTPOffer{Proxy: true, IPv6: true, VendorClass: "HTTPClient", URI: "http://192.0.2.1/a.efi"}, HTTPProxyNameUri},
		{"proxy + HTTPClient + name", HTTPOffer{Proxy: true, VendorClass: "HTTPClient:Arch:00016", URI: "http://boot.example/a.efi"}, HTTPProxyNameUri},
		{"proxy without HTTPClient: dropped", HTTPOffer{Proxy: true, URI: "http://192.0.2.1/a.efi"}, ""},
		{"PXEClient proxy: dropped", HTTPOffer{Proxy: true, VendorClass: "PXEClient", URI: "x.efi"}, ""},
		{"HTTPClient without URI: dropped", HTTPOffer{VendorClass: "HTTPClient"}, ""},
		{"HTTPClient with a URI that does not parse: dropped", HTTPOffer{VendorClass: "HTTPClient", URI: "snponly.efi"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ClassifyHTTP(tc.o)
			if (err != nil) != (tc.want == "") || got != tc.want {
				t.Errorf("ClassifyHTTP = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestSelectHTTP follows HttpBootSelectDhcpOffer (no URI in the boot
// option: the "corporate environment").
func TestSelectHTTP(t *testing.T) {
	for _, tc := range []struct {
		name          string
		types         []string
		address, boot int
		rank          int
	}{
		{"1: DhcpIpUri first", []string{HTTPDhcpOnly, HTTPProxyIpUri, HTTPDhcpIpUri}, 2, 2, 1},
		{"1: DhcpIpUriDns", []string{HTTPDhcpNameUriDns, HTTPDhcpIpUriDns}, 1, 1, 1},
		{"2: DhcpNameUriDns", []string{HTTPDhcpOnly, HTTPDhcpNameUriDns}, 1, 1, 2},
		{"3: DhcpOnly + ProxyIpUri", []string{HTTPProxyIpUri, "", HTTPDhcpOnly}, 2, 0, 3},
		{"4: DhcpDns + ProxyIpUri", []string{HTTPDhcpDns, HTTPProxyIpUri}, 0, 1, 4},
		{"5: DhcpDns + ProxyNameUri", []string{HTTPProxyNameUri, HTTPDhcpDns}, 1, 0, 5},
		{"6: DhcpDns + DhcpNameUri", []string{HTTPDhcpNameUri, HTTPDhcpDns}, 1, 0, 6},
		{"DhcpOnly + ProxyNameUri: no DNS, nothing", []string{HTTPDhcpOnly, HTTPProxyNameUri}, -1, -1, 0},
		{"proxy alone", []string{HTTPProxyIpUri}, -1, -1, 0},
		{"all dropped", []string{"", ""}, -1, -1, 0},
		{"none", nil, -1, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := SelectHTTP(tc.types)
			if s.Address != tc.address || s.Boot != tc.boot || s.Rank != tc.rank || s.Reason == "" {
				t.Errorf("SelectHTTP = %+v, want address %d boot %d rank %d", s, tc.address, tc.boot, tc.rank)
			}
		})
	}
}

// TestHTTPOffer4 checks what is read from a DHCPv4 packet: EDK II takes an
// offer whose yiaddr starts with 0 for a proxy offer.
func TestHTTPOffer4(t *testing.T) {
	p, _ := dhcpv4.New(dhcpv4.WithYourIP(net.ParseIP("192.0.2.100")),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient")),
		dhcpv4.WithOption(dhcpv4.OptBootFileName("http://192.0.2.1/a.efi")),
		dhcpv4.WithOption(dhcpv4.OptDNS(net.ParseIP("192.0.2.53"))))
	if o := httpOffer4(p); o.Proxy || !o.DNS || o.URI != "http://192.0.2.1/a.efi" || o.VendorClass != "HTTPClient" {
		t.Errorf("httpOffer4 = %+v", o)
	}
	p.YourIPAddr = net.IPv4zero
	if o := httpOffer4(p); !o.Proxy {
		t.Errorf("yiaddr 0.0.0.0 is not a proxy offer: %+v", o)
	}
}

func TestHTTPImageType(t *testing.T) {
	for _, tc := range []struct {
		ct, uri string
		ok      bool
	}{
		{"application/efi", "http://x/boot", true},
		{"Application/EFI", "http://x/boot", true},
		{"application/vnd.efi-iso", "http://x/live", true},
		{"application/octet-stream", "http://x/snponly.EFI", true},
		{"application/octet-stream", "http://x/live.iso?x=1", true},
		{"text/html", "http://x/boot", false},
		{"", "http://x/a.img", true},
	} {
		if _, ok := HTTPImageType(tc.ct, tc.uri); ok != tc.ok {
			t.Errorf("HTTPImageType(%q, %q) ok = %v, want %v", tc.ct, tc.uri, ok, tc.ok)
		}
	}
}
