package dhcp6

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/rfc1035label"

	"pxed/internal/dhcp4"
)

// EncodeOption encodes a DHCPv6 option value written in a configuration
// as typ: ip (one IPv6 address, 16 bytes), ips (a list of them, or one
// string separated by commas), domains (a list of domain names in RFC 1035
// wire form, as options 24 and 29 carry them), and the scalar types of
// dhcp4.EncodeOption (string, uint8, uint16, uint32, bool, hex), which
// DHCPv6 encodes the same way. The error says what to write instead.
func EncodeOption(typ string, v any) ([]byte, error) {
	switch typ {
	case "ip", "ips", "domains":
	default:
		return dhcp4.EncodeOption(typ, v)
	}
	var list []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			list = append(list, fmt.Sprint(e))
		}
	case []string:
		list = x
	default:
		list = strings.Split(fmt.Sprint(v), ",")
	}
	if typ == "domains" {
		var names []string
		for _, s := range list {
			s = strings.TrimSuffix(strings.TrimSpace(s), ".")
			if s == "" || len(s) > 253 {
				return nil, fmt.Errorf("%q is not a domain name: write e.g. example.com", s)
			}
			for _, l := range strings.Split(s, ".") {
				if l == "" || len(l) > 63 {
					return nil, fmt.Errorf("%q is not a domain name (empty or over-long label): write e.g. example.com", s)
				}
			}
			names = append(names, s)
		}
		return (&rfc1035label.Labels{Labels: names}).ToBytes(), nil
	}
	if typ == "ip" && len(list) != 1 {
		return nil, fmt.Errorf("type ip takes one address: write type: ips for a list")
	}
	var b []byte
	for _, s := range list {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || !a.Is6() || a.Is4In6() {
			return nil, fmt.Errorf("%q is not an IPv6 address: write e.g. 2001:db8::1", s)
		}
		b = append(b, a.AsSlice()...)
	}
	return b, nil
}
