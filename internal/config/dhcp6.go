package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"pxed/internal/dhcp6"
	"pxed/internal/lease"
)

// DHCP6 is the dhcp6 section: DHCPv6 as ProxyDHCPv6 (boot information
// only, beside the network's DHCPv6 server) or as the stateful server.
type DHCP6 struct {
	// Mode is proxy (the default when dhcp.mode is proxy and no range or
	// subnet is given: answers UEFI PXE-over-IPv6, HTTP Boot and iPXE
	// beside the network's DHCPv6 server, never an address), server (the
	// default when range or subnets are given: leases IA_NA addresses and
	// gives boot clients their boot file in the same replies) or off.
	Mode string `yaml:"mode"`
	// Range is FIRST-LAST for mode server: one subnet on the prefix of the
	// first interface's global IPv6 address that holds it.
	Range string `yaml:"range"`
	// Subnets are the networks of mode server (instead of Range).
	Subnets []Subnet6 `yaml:"subnets"`
	// Preference is the preference option (7) of every Advertise of mode
	// server, 0–255; unset means 255: clients take pxed's Advertise at
	// once (RFC 8415 §18.2.1) instead of collecting others for their first
	// retransmission timeout (EDK II: 4 s). Write a lower value beside
	// other DHCPv6 servers. (The proxy never sends one: see dhcp6.)
	Preference *int `yaml:"preference"`
	// RapidCommit answers a Solicit carrying Rapid Commit (option 14) with
	// a committed Reply (RFC 8415 §18.3.1).
	RapidCommit bool `yaml:"rapid_commit"`
}

// Subnet6 is one IPv6 network pxed leases addresses on in mode server.
type Subnet6 struct {
	// Interface is where the subnet is attached; empty for a network
	// behind a relay agent (selected by the relay's link address).
	Interface    string           `yaml:"interface"`
	Prefix       string           `yaml:"prefix"` // e.g. 2001:db8:0:1::/64
	Ranges       []string         `yaml:"ranges"` // FIRST-LAST
	DNS          []string         `yaml:"dns"`    // option 23
	DomainSearch []string         `yaml:"domain_search"`
	LeaseTime    OptionalDuration `yaml:"lease_time"`     // valid lifetime, e.g. 1h (default)
	Preferred    OptionalDuration `yaml:"preferred_time"` // preferred lifetime; default the lease time
	Options      []Option         `yaml:"options"`        // by number; types as dhcp6.EncodeOption
	Reservations []Reservation6   `yaml:"reservations"`
}

// Reservation6 gives one DHCPv6 client (by DUID, else by MAC) a fixed
// address.
type Reservation6 struct {
	DUID     string `yaml:"duid"` // hex, e.g. 00:03:00:01:52:54:00:12:34:56
	MAC      string `yaml:"mac"`
	Address  string `yaml:"address"`
	Hostname string `yaml:"hostname"`
}

// ServerSubnet6 is a validated subnet of dhcp6 mode server.
type ServerSubnet6 struct {
	Interface    string       // "" for a relayed subnet
	Lease        lease.Subnet // prefix, ranges, reservations, lease time
	Preferred    time.Duration
	DNS          []netip.Addr
	DomainSearch []string
	Options      []RawOption6
}

// RawOption6 is an encoded DHCPv6 option.
type RawOption6 struct {
	Code  uint16
	Value []byte
}

// ParseRange6 parses "FIRST-LAST" IPv6 addresses, FIRST <= LAST.
func ParseRange6(s string) (netip.Addr, netip.Addr, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q is not FIRST-LAST", s)
	}
	first, err1 := netip.ParseAddr(strings.TrimSpace(a))
	last, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || !first.Is6() || !last.Is6() || first.Is4In6() || last.Is4In6() || first.Zone() != "" || last.Zone() != "" {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q: both ends must be IPv6 addresses", s)
	}
	if last.Less(first) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q: first address is after the last", s)
	}
	return first, last, nil
}

// DHCP6Preference is dhcp6.preference: unset, 255 in mode server and -1
// (none) otherwise.
func (c *Config) DHCP6Preference() int {
	switch {
	case c.DHCP6.Preference != nil:
		return *c.DHCP6.Preference
	case c.DHCP6.Mode == ModeServer:
		return 255
	}
	return -1
}

// ServerSubnets6 returns the subnets of dhcp6 mode server (call after
// Validate, which builds and checks them).
func (c *Config) ServerSubnets6() ([]ServerSubnet6, error) {
	r := c.server6
	if r == nil {
		r = c.buildServerSubnets6()
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return r.subnets, nil
}

type serverSubnets6 struct {
	subnets []ServerSubnet6
	errs    Errors
}

// defaultsDHCP6 picks the dhcp6 mode when none is written.
func (c *Config) defaultsDHCP6() {
	if c.DHCP6.Mode != "" {
		return
	}
	switch {
	case c.DHCP6.Range != "" || len(c.DHCP6.Subnets) > 0:
		c.DHCP6.Mode = ModeServer
	case c.DHCP.Mode == "" || c.DHCP.Mode == ModeProxy:
		// ProxyDHCPv6 comes with ProxyDHCP (on the interfaces that have
		// a global or ULA IPv6 address).
		c.DHCP6.Mode = ModeProxy
	default:
		c.DHCP6.Mode = ModeOff
	}
}

func (c *Config) validateDHCP6() Errors {
	var es Errors
	d := c.DHCP6
	switch d.Mode {
	case ModeProxy, ModeOff:
		if d.Range != "" || len(d.Subnets) > 0 {
			es = append(es, c.errorf("dhcp6.mode", "mode %s leases no addresses but dhcp6 has a range or subnets: write `mode: server`, or remove them", d.Mode))
		}
	case ModeServer:
		if len(c.Interfaces) == 0 {
			return es // reported as the missing interface
		}
		c.server6 = c.buildServerSubnets6()
		es = append(es, c.server6.errs...)
	default:
		es = append(es, c.errorf("dhcp6.mode", "%q is not a DHCPv6 mode: write proxy, server or off", d.Mode))
	}
	if p := d.Preference; p != nil && (*p < 0 || *p > 255) {
		es = append(es, c.errorf("dhcp6.preference", "%d: write a preference from 0 to 255 (255: clients take this server's Advertise at once)", *p))
	}
	return es
}

// ifaceAddr6 returns the interface's global (or ULA) IPv6 address and
// prefix that holds a, or its first one when a is the zero Addr.
func (c *Config) ifaceAddr6(name string, a netip.Addr) (netip.Prefix, bool) {
	addrs, err := c.host().InterfaceAddrs(name)
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, p := range addrs {
		if p.Addr().Is6() && !p.Addr().Is4In6() && p.Addr().IsGlobalUnicast() && (!a.IsValid() || p.Masked().Contains(a)) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

func (c *Config) buildServerSubnets6() *serverSubnets6 {
	d := c.DHCP6
	subnets := d.Subnets
	field := func(i int, f string) string { return fmt.Sprintf("dhcp6.subnets[%d].%s", i, f) }
	if d.Range != "" {
		if len(subnets) > 0 {
			return &serverSubnets6{errs: Errors{c.errorf("dhcp6.range", "write either dhcp6.range or dhcp6.subnets, not both (put the range under subnets[].ranges)")}}
		}
		first, _, err := ParseRange6(d.Range)
		if err != nil {
			return &serverSubnets6{errs: Errors{c.errorf("dhcp6.range", "%v: write `range: 2001:db8:0:1::100-2001:db8:0:1::1ff`", err)}}
		}
		if len(c.Interfaces) == 0 {
			return &serverSubnets6{}
		}
		pfx, ok := c.ifaceAddr6(c.Interfaces[0], first)
		if !ok {
			return &serverSubnets6{errs: Errors{c.errorf("dhcp6.range", "interface %q has no global IPv6 address on the range's network: give it one (ip -6 addr add %v/64 dev %s) or write dhcp6.subnets", c.Interfaces[0], first, c.Interfaces[0])}}
		}
		subnets = []Subnet6{{Interface: c.Interfaces[0], Prefix: pfx.Masked().String(), Ranges: []string{d.Range}}}
		field = func(int, string) string { return "dhcp6.range" } // its only field
	}
	if len(subnets) == 0 {
		return &serverSubnets6{errs: Errors{c.errorf("dhcp6.range", "dhcp6 mode server needs addresses to lease: write `range: 2001:db8:0:1::100-2001:db8:0:1::1ff` (or pass --dhcp6-range), or write dhcp6.subnets")}}
	}
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	var ranges, reserved []used
	var out []ServerSubnet6
	for i, sc := range subnets {
		pfx, err := netip.ParsePrefix(sc.Prefix)
		if err != nil || !pfx.Addr().Is6() || pfx.Addr().Is4In6() || pfx.Bits() > 120 {
			add(c.errorf(field(i, "prefix"), "%q is not an IPv6 prefix: write e.g. `prefix: 2001:db8:0:1::/64`", sc.Prefix))
			continue
		}
		pfx = pfx.Masked()
		ss := ServerSubnet6{Interface: sc.Interface, DomainSearch: sc.DomainSearch}
		ss.Lease.Prefix = pfx
		if sc.Interface != "" {
			if !slices.Contains(c.Interfaces, sc.Interface) {
				add(c.errorf(field(i, "interface"), "%q is not one of the served interfaces %v: add it to interfaces or fix the name", sc.Interface, c.Interfaces))
			} else if _, ok := c.ifaceAddr6(sc.Interface, pfx.Addr()); !ok {
				add(c.errorf(field(i, "prefix"), "interface %s has no address in %v: add one (ip -6 addr add %v/%d dev %s), or leave interface empty for a relayed subnet", sc.Interface, pfx, pfx.Addr().Next(), pfx.Bits(), sc.Interface))
			}
		}
		for _, x := range out {
			if x.Lease.Prefix.Overlaps(pfx) {
				add(c.errorf(field(i, "prefix"), "%v overlaps the subnet %v: give each subnet its own prefix", pfx, x.Lease.Prefix))
			}
		}
		if sc.LeaseTime.IsSet() {
			v, ok := sc.LeaseTime.Value()
			if !ok || v < time.Minute {
				add(c.errorf(field(i, "lease_time"), "%q: write a duration of at least 1m, e.g. 1h or 12h", sc.LeaseTime))
			}
			ss.Lease.LeaseTime = v
		}
		if ss.Lease.LeaseTime <= 0 {
			ss.Lease.LeaseTime = lease.DefaultLeaseTime
		}
		ss.Preferred = ss.Lease.LeaseTime
		if sc.Preferred.IsSet() {
			v, ok := sc.Preferred.Value()
			if !ok || v < 10*time.Second || v > ss.Lease.LeaseTime {
				add(c.errorf(field(i, "preferred_time"), "%q: write a duration from 10s up to the lease time (%v)", sc.Preferred, ss.Lease.LeaseTime))
			}
			ss.Preferred = v
		}
		for j, r := range sc.Ranges {
			f := field(i, fmt.Sprintf("ranges[%d]", j))
			first, last, err := ParseRange6(r)
			if err != nil {
				add(c.errorf(f, "%v: write e.g. 2001:db8:0:1::100-2001:db8:0:1::1ff", err))
				continue
			}
			if !pfx.Contains(first) || !pfx.Contains(last) {
				add(c.errorf(f, "range %s is outside the subnet %v: write a range inside it", r, pfx))
				continue
			}
			for _, u := range ranges {
				if !last.Less(u.first) && !u.last.Less(first) {
					add(c.errorf(f, "range %s overlaps %s: make the ranges disjoint", r, c.where(u.field)))
				}
			}
			ranges = append(ranges, used{f, first, last})
			ss.Lease.Ranges = append(ss.Lease.Ranges, lease.Range{First: first, Last: last})
		}
		for j, s := range sc.DNS {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is6() || a.Is4In6() {
				add(c.errorf(field(i, fmt.Sprintf("dns[%d]", j)), "%q is not an IPv6 address: write e.g. 2001:db8::53", s))
				continue
			}
			ss.DNS = append(ss.DNS, a)
		}
		if len(sc.DomainSearch) > 0 {
			if _, err := dhcp6.EncodeOption("domains", sc.DomainSearch); err != nil {
				add(c.errorf(field(i, "domain_search"), "%v", err))
			}
		}
		for k, o := range sc.Options {
			f := field(i, fmt.Sprintf("options[%d]", k))
			if o.Code < 1 || o.Code > 65535 || slices.Contains(ownOptions6, o.Code) {
				add(c.errorf(f+".code", "%d: write an option number from 1 to 65535 other than pxed's own %v", o.Code, ownOptions6))
				continue
			}
			b, err := dhcp6.EncodeOption(o.Type, o.Value)
			if err != nil {
				add(c.errorf(f+".value", "%v", err))
				continue
			}
			ss.Options = append(ss.Options, RawOption6{Code: uint16(o.Code), Value: b})
		}
		clients := map[string]string{}
		for j, r := range sc.Reservations {
			f := field(i, fmt.Sprintf("reservations[%d]", j))
			a, err := netip.ParseAddr(r.Address)
			if err != nil || !a.Is6() || !pfx.Contains(a) {
				add(c.errorf(f+".address", "%q: write an IPv6 address inside %v", r.Address, pfx))
				continue
			}
			c.noteReserved(&reserved, f, a, add)
			res := lease.Reservation{Addr: a, Hostname: r.Hostname}
			var id string
			switch {
			case r.DUID != "":
				b, err := hexBytes(r.DUID)
				if err != nil || len(b) < 3 || len(b) > 130 {
					add(c.errorf(f+".duid", "%q: write the DUID as hex bytes, e.g. 00:03:00:01:52:54:00:12:34:56", r.DUID))
				}
				res.DUID, id = b, "duid "+string(b)
			case r.MAC != "":
				res.MAC = c.reservedMAC(f, r.MAC, add)
				id = "mac " + string(res.MAC)
			default:
				add(c.errorf(f, "reservation of %v names no client: write duid: 00:03:00:01:… or mac: aa:bb:cc:dd:ee:ff", a))
			}
			c.noteClient(clients, f, id, add)
			ss.Lease.Reservations = append(ss.Lease.Reservations, res)
		}
		out = append(out, ss)
	}
	return &serverSubnets6{subnets: out, errs: es}
}

// ownOptions6 are the options pxed's DHCPv6 server writes itself: client
// and server identifiers, IA_NA, IA address, status, rapid commit,
// preference.
var ownOptions6 = []int{1, 2, 3, 5, 7, 13, 14}
