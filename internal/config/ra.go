package config

import (
	"fmt"
	"net/netip"
	"time"
)

// RouterAdvertisements is the router_advertisements section: pxed sends
// IPv6 router advertisements on its interfaces, for a boot segment with no
// router (off by default: a segment with a router must not get a second).
type RouterAdvertisements struct {
	Enabled bool `yaml:"enabled"`
	// Managed (M flag): machines get addresses from a DHCPv6 server.
	// Other (O flag): they ask DHCPv6 for other configuration, where
	// pxed's ProxyDHCPv6 gives iPXE its script (default true).
	Managed bool  `yaml:"managed"`
	Other   *bool `yaml:"other"`
	// Prefixes announced on-link and, for /64s, for SLAAC; default the
	// prefixes of each interface's global IPv6 addresses.
	Prefixes []string `yaml:"prefixes"`
	// RouterLifetime announces pxed as a default router for this long
	// (0s, the default: not a router).
	RouterLifetime Duration `yaml:"router_lifetime"`
	// Interval between unsolicited advertisements (default 10s).
	Interval Duration `yaml:"interval"`
}

// OtherFlag is the O flag to send: true unless written false.
func (r RouterAdvertisements) OtherFlag() bool { return r.Other == nil || *r.Other }

// RAPrefixes are the configured prefixes, parsed (call after Validate).
func (r RouterAdvertisements) RAPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range r.Prefixes {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func (c *Config) validateRA() Errors {
	var es Errors
	r := c.RouterAdvertisements
	for i, s := range r.Prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() > 64 {
			es = append(es, c.errorf(fmt.Sprintf("router_advertisements.prefixes[%d]", i),
				"%q is not an IPv6 prefix of at most 64 bits: write e.g. 2001:db8:0:1::/64", s))
		}
	}
	if r.RouterLifetime.D() > 9000*time.Second {
		es = append(es, c.errorf("router_advertisements.router_lifetime", "%v is more than RFC 4861 allows: write at most 2h30m", r.RouterLifetime.D()))
	}
	if iv := r.Interval.D(); iv != 0 && (iv < 3*time.Second || iv > 1800*time.Second) {
		es = append(es, c.errorf("router_advertisements.interval", "%v is out of range: write a duration from 3s to 30m", iv))
	}
	if r.Enabled && len(c.Interfaces) == 0 {
		es = append(es, c.errorf("router_advertisements.enabled", "no interface to advertise on: write `interfaces: [eth1]`"))
	}
	return es
}
