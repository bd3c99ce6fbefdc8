package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"pxed/internal/dhcp4"
	"pxed/internal/lease"
)

// DHCP modes.
const (
	ModeProxy  = "proxy"  // ProxyDHCP beside an existing DHCP server (default)
	ModeServer = "server" // full DHCP server: addresses and boot info
	ModeOff    = "off"    // no DHCP at all (TFTP/HTTP only)
)

// DefaultProbeTimeout is dhcp.probe_timeout when the file and flags leave
// it unset.
const DefaultProbeTimeout = 300 * time.Millisecond

// DHCP configures the DHCP side.
type DHCP struct {
	Mode  string `yaml:"mode"`  // proxy (default), server, off
	Range string `yaml:"range"` // FIRST-LAST, for mode server: one subnet on the interface's prefix
	// Subnets are the networks of mode server (instead of Range).
	Subnets []Subnet `yaml:"subnets"`
	// ProbeTimeout is how long to wait for an ICMP echo reply before
	// offering an address ("300ms" default; "off" disables probing).
	ProbeTimeout OptionalDuration `yaml:"probe_timeout"`
	// CommitInterval is the least time between two lease commits (fsyncs)
	// under load, unless 64 leases wait: the writes of every client in
	// between share one commit ("10ms" default; "0s" commits as soon as
	// the previous one is done).
	CommitInterval OptionalDuration `yaml:"commit_interval"`
}

// Subnet is one network pxed leases addresses on in mode server.
type Subnet struct {
	// Interface is where the subnet is attached; empty for a network
	// behind a relay agent (selected by giaddr).
	Interface     string           `yaml:"interface"`
	Prefix        string           `yaml:"prefix"` // e.g. 192.0.2.0/24
	Ranges        []string         `yaml:"ranges"` // FIRST-LAST
	Router        string           `yaml:"router"`
	DNS           []string         `yaml:"dns"`
	Domain        string           `yaml:"domain"`
	MTU           int              `yaml:"mtu"`
	NTP           []string         `yaml:"ntp"`
	LeaseTime     OptionalDuration `yaml:"lease_time"` // e.g. 1h (default)
	Options       []Option         `yaml:"options"`
	Reservations  []Reservation    `yaml:"reservations"`
	Authoritative bool             `yaml:"authoritative"`
}

// Option is a DHCP option by number with a typed value.
type Option struct {
	Code  int    `yaml:"code"`
	Type  string `yaml:"type"` // ip, ips, string, uint8, uint16, uint32, bool, hex
	Value any    `yaml:"value"`
}

// Reservation gives one client a fixed address.
type Reservation struct {
	MAC      string   `yaml:"mac"`
	ClientID string   `yaml:"client_id"` // option 61 as hex, e.g. 01:52:54:00:12:34:56
	Address  string   `yaml:"address"`
	Hostname string   `yaml:"hostname"`
	Options  []Option `yaml:"options"`
}

// ParseRange parses "FIRST-LAST" IPv4 addresses, FIRST <= LAST.
func ParseRange(s string) (netip.Addr, netip.Addr, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q is not FIRST-LAST", s)
	}
	first, err1 := netip.ParseAddr(strings.TrimSpace(a))
	last, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || !first.Is4() || !last.Is4() {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q: both ends must be IPv4 addresses", s)
	}
	if last.Less(first) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q: first address is after the last", s)
	}
	return first, last, nil
}

// ServerSubnet is a validated subnet of mode server, ready for the lease
// Manager and the DHCP policy.
type ServerSubnet struct {
	Interface     string       // "" for a relayed subnet
	Lease         lease.Subnet // prefix, ranges, reservations, server ID, lease time
	Authoritative bool
	Router        []netip.Addr
	DNS           []netip.Addr
	NTP           []netip.Addr
	Domain        string
	MTU           uint16
	Options       []RawOption
	HostOptions   map[netip.Addr][]RawOption // by reserved address
}

// RawOption is an encoded DHCP option.
type RawOption struct {
	Code  uint8
	Value []byte
}

// ProbeTimeout returns the ICMP probe timeout: 300ms by default, 0 when
// probe_timeout is "off".
func (c *Config) ProbeTimeout() time.Duration {
	if !c.DHCP.ProbeTimeout.IsSet() {
		return DefaultProbeTimeout
	}
	d, _ := c.DHCP.ProbeTimeout.Value() // 0 when off
	return d
}

// CommitInterval returns dhcp.commit_interval and whether it is set (when
// not, the lease store's default applies). 0 means no wait between commits.
func (c *Config) CommitInterval() (time.Duration, bool) {
	d, _ := c.DHCP.CommitInterval.Value()
	return d, c.DHCP.CommitInterval.IsSet()
}

// ServerSubnets returns the subnets of mode server: dhcp.subnets, or for
// dhcp.range one subnet on the prefix of the first interface. Each
// subnet's server ID is its interface's address (for relayed subnets the
// first interface's). Call it after Validate.
func (c *Config) ServerSubnets() ([]ServerSubnet, error) {
	out, es := c.serverSubnets()
	if len(es) > 0 {
		return nil, es
	}
	return out, nil
}

// validateDHCP checks the dhcp section: its mode and, in mode server, the
// subnets.
func (c *Config) validateDHCP() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	switch c.DHCP.Mode {
	case ModeProxy, ModeOff:
	case ModeServer:
		es = append(es, c.validateServer()...)
	default:
		add(c.errorf("dhcp.mode", "%q is not a DHCP mode: write proxy, server or off", c.DHCP.Mode))
	}
	return es
}

func (c *Config) validateServer() Errors {
	var es Errors
	if pt := c.DHCP.ProbeTimeout; pt.IsSet() && !pt.Off() {
		if d, ok := pt.Value(); !ok || d < 0 {
			es = append(es, c.errorf("dhcp.probe_timeout", "%q is not a duration: write e.g. 300ms, or off", pt))
		}
	}
	if ci := c.DHCP.CommitInterval; ci.IsSet() {
		if d, ok := ci.Value(); !ok || d < 0 || d > time.Second {
			es = append(es, c.errorf("dhcp.commit_interval", "%q is not a duration between 0s and 1s: write e.g. 10ms", ci))
		}
	}
	_, more := c.serverSubnets()
	return append(es, more...)
}

// ifaceAddr returns the IPv4 address and prefix of an interface.
func ifaceAddr(name string) (netip.Prefix, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Prefix{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap().Is4() {
				ones, _ := pn.Mask.Size()
				return netip.PrefixFrom(ip.Unmap(), ones), true
			}
		}
	}
	return netip.Prefix{}, false
}

// used is where an address range or a reserved address was configured.
type used struct {
	field       string
	first, last netip.Addr
}

func (c *Config) serverSubnets() ([]ServerSubnet, Errors) {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	subnets := c.DHCP.Subnets
	if c.DHCP.Range != "" {
		if len(subnets) > 0 {
			return nil, Errors{c.errorf("dhcp.range", "write either dhcp.range or dhcp.subnets, not both (put the range under subnets[].ranges)")}
		}
		if _, _, err := ParseRange(c.DHCP.Range); err != nil {
			return nil, Errors{c.errorf("dhcp.range", "%v: write `range: 192.0.2.100-192.0.2.200`", err)}
		}
		if len(c.Interfaces) == 0 {
			return nil, nil // reported as the missing interface
		}
		pfx, ok := ifaceAddr(c.Interfaces[0])
		if !ok {
			return nil, Errors{c.errorf("dhcp.range", "interface %q has no IPv4 address to take the subnet from: give it one (ip addr add 192.0.2.1/24 dev %s) or write dhcp.subnets", c.Interfaces[0], c.Interfaces[0])}
		}
		subnets = []Subnet{{Interface: c.Interfaces[0], Prefix: pfx.Masked().String(), Ranges: []string{c.DHCP.Range}, Authoritative: true}}
	}
	if len(subnets) == 0 {
		return nil, Errors{c.errorf("dhcp.range", "mode server needs addresses to lease: write `range: 192.0.2.100-192.0.2.200` (or pass --dhcp-range), or write dhcp.subnets")}
	}
	field := func(i int, f string) string {
		if c.DHCP.Range != "" && f == "ranges[0]" {
			return "dhcp.range"
		}
		return fmt.Sprintf("dhcp.subnets[%d].%s", i, f)
	}
	var ranges, reserved []used
	var out []ServerSubnet
	for i, sc := range subnets {
		ss := ServerSubnet{Interface: sc.Interface, Authoritative: sc.Authoritative, Domain: sc.Domain, HostOptions: map[netip.Addr][]RawOption{}}
		pfx, err := netip.ParsePrefix(sc.Prefix)
		if err != nil || !pfx.Addr().Is4() {
			add(c.errorf(field(i, "prefix"), "%q is not an IPv4 prefix: write e.g. `prefix: 192.0.2.0/24`", sc.Prefix))
			continue
		}
		pfx = pfx.Masked()
		ss.Lease.Prefix = pfx
		ifname := sc.Interface
		if ifname == "" && len(c.Interfaces) > 0 {
			ifname = c.Interfaces[0]
		} else if ifname != "" && !slices.Contains(c.Interfaces, ifname) {
			add(c.errorf(field(i, "interface"), "%q is not one of the served interfaces %v: add it to interfaces or fix the name", ifname, c.Interfaces))
		}
		if ia, ok := ifaceAddr(ifname); ok {
			ss.Lease.ServerID = ia.Addr()
			if sc.Interface != "" && !pfx.Contains(ia.Addr()) {
				add(c.errorf(field(i, "prefix"), "interface %s has address %v, outside %v: write the interface's prefix (%v), or leave interface empty for a relayed subnet", ifname, ia.Addr(), pfx, ia.Masked()))
			}
		}
		if sc.LeaseTime.IsSet() {
			d, ok := sc.LeaseTime.Value()
			if !ok || d < time.Minute {
				add(c.errorf(field(i, "lease_time"), "%q: write a duration of at least 1m, e.g. 1h or 12h", sc.LeaseTime))
			}
			ss.Lease.LeaseTime = d
		}
		for j, r := range sc.Ranges {
			f := field(i, fmt.Sprintf("ranges[%d]", j))
			first, last, err := ParseRange(r)
			if err != nil {
				add(c.errorf(f, "%v: write e.g. 192.0.2.100-192.0.2.200", err))
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
		if sc.Router != "" {
			ss.Router = c.addrs(field(i, "router"), []string{sc.Router}, add)
		}
		ss.DNS = c.addrs(field(i, "dns"), sc.DNS, add)
		ss.NTP = c.addrs(field(i, "ntp"), sc.NTP, add)
		if sc.MTU != 0 && (sc.MTU < 68 || sc.MTU > 65535) {
			add(c.errorf(field(i, "mtu"), "%d: write an MTU between 68 and 65535, e.g. 1500", sc.MTU))
		}
		ss.MTU = uint16(sc.MTU)
		ss.Options = c.options(field(i, "options"), sc.Options, add)
		clients := map[string]string{}
		for j, r := range sc.Reservations {
			f := field(i, fmt.Sprintf("reservations[%d]", j))
			res := lease.Reservation{Hostname: r.Hostname}
			a, err := netip.ParseAddr(r.Address)
			if err != nil || !a.Is4() || !pfx.Contains(a) {
				add(c.errorf(f+".address", "%q: write an IPv4 address inside %v", r.Address, pfx))
				continue
			}
			res.Addr = a
			for _, u := range reserved {
				if u.first == a {
					add(c.errorf(f+".address", "%v is already reserved by %s: give each client its own address", a, c.where(u.field)))
				}
			}
			if a == ss.Lease.ServerID {
				add(c.errorf(f+".address", "%v is pxed's own address on %s: reserve another address", a, ifname))
			} else if slices.Contains(ss.Router, a) {
				add(c.errorf(f+".address", "%v is the subnet's router: reserve another address", a))
			}
			reserved = append(reserved, used{field: f, first: a})
			var id string
			switch {
			case r.ClientID != "":
				b, err := hexBytes(r.ClientID)
				if err != nil || len(b) < 2 {
					add(c.errorf(f+".client_id", "%q: write option 61 as hex bytes, e.g. 01:52:54:00:12:34:56", r.ClientID))
				}
				res.ClientID, id = b, "id "+string(b)
			case r.MAC != "":
				mac, err := net.ParseMAC(r.MAC)
				if err != nil || len(mac) != 6 {
					add(c.errorf(f+".mac", "%q is not a MAC address: write aa:bb:cc:dd:ee:ff", r.MAC))
				}
				res.MAC, id = mac, "mac "+string(mac)
			default:
				add(c.errorf(f, "reservation of %v names no client: write mac: aa:bb:cc:dd:ee:ff or client_id: 01:aa:bb:cc:dd:ee:ff", a))
			}
			if prev, dup := clients[id]; dup && id != "" {
				add(c.errorf(f, "this client already has the reservation %s: keep one", c.where(prev)))
			}
			clients[id] = f
			ss.Lease.Reservations = append(ss.Lease.Reservations, res)
			if opts := c.options(f+".options", r.Options, add); len(opts) > 0 {
				ss.HostOptions[a] = opts
			}
		}
		out = append(out, ss)
	}
	return out, es
}

func (c *Config) addrs(field string, in []string, add func(*Error)) []netip.Addr {
	var out []netip.Addr
	for _, s := range in {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || !a.Is4() {
			add(c.errorf(field, "%q is not an IPv4 address: write e.g. 192.0.2.1", s))
			continue
		}
		out = append(out, a)
	}
	return out
}

func hexBytes(s string) ([]byte, error) {
	return hex.DecodeString(strings.NewReplacer(":", "", "-", "", " ", "").Replace(s))
}

func (c *Config) options(field string, in []Option, add func(*Error)) []RawOption {
	var out []RawOption
	for k, o := range in {
		f := fmt.Sprintf("%s[%d]", field, k)
		if o.Code < 1 || o.Code > 254 || o.Code == 53 || o.Code == 54 {
			add(c.errorf(f+".code", "%d: write an option number from 1 to 254 (53 and 54 are pxed's own)", o.Code))
			continue
		}
		b, err := dhcp4.EncodeOption(o.Type, o.Value)
		if err != nil {
			add(c.errorf(f+".value", "%v", err))
			continue
		}
		out = append(out, RawOption{Code: uint8(o.Code), Value: b})
	}
	return out
}
