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

// used is where an address range or a reserved address was configured.
type used struct {
	field       string
	first, last netip.Addr
}

// buildServerSubnets builds and checks mode server's subnets.
func (c *Config) buildServerSubnets() *serverSubnets {
	subnets, es := c.subnetsToServe()
	if len(es) > 0 || len(subnets) == 0 {
		return &serverSubnets{errs: es}
	}
	k := &subnetCheck{c: c}
	var out []ServerSubnet
	for i, s := range subnets {
		if ss, ok := k.subnet(i, s); ok {
			out = append(out, ss)
		}
	}
	return &serverSubnets{subnets: out, errs: k.es}
}

// subnetsToServe returns dhcp.subnets, or the one subnet dhcp.range (or
// --dhcp-range) stands for: the range on the first interface's prefix. It
// returns neither subnets nor mistakes when there is no interface (that is
// reported as the missing interface).
func (c *Config) subnetsToServe() ([]Subnet, Errors) {
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
		pfx, ok := c.ifaceAddr(c.Interfaces[0])
		if !ok {
			return nil, Errors{c.errorf("dhcp.range", "interface %q has no IPv4 address to take the subnet from: give it one (ip addr add 192.0.2.1/24 dev %s) or write dhcp.subnets", c.Interfaces[0], c.Interfaces[0])}
		}
		subnets = []Subnet{{Interface: c.Interfaces[0], Prefix: pfx.Masked().String(), Ranges: []string{c.DHCP.Range}, Authoritative: true}}
	}
	if len(subnets) == 0 {
		return nil, Errors{c.errorf("dhcp.range", "mode server needs addresses to lease: write `range: 192.0.2.100-192.0.2.200` (or pass --dhcp-range), or write dhcp.subnets")}
	}
	return subnets, nil
}

// subnetCheck builds mode server's subnets one after the other, collecting
// the mistakes: ranges and reserved addresses must not overlap across
// subnets either.
type subnetCheck struct {
	c        *Config
	es       Errors
	ranges   []used // every range so far
	reserved []used // every reserved address so far
}

func (k *subnetCheck) add(e *Error) { k.es = append(k.es, e) }

// field names field f of the i-th subnet; dhcp.range's subnet has no
// fields of its own but its range.
func (k *subnetCheck) field(i int, f string) string {
	if k.c.DHCP.Range != "" && f == "ranges[0]" {
		return "dhcp.range"
	}
	return fmt.Sprintf("dhcp.subnets[%d].%s", i, f)
}

// subnet builds and checks the i-th subnet; false when its prefix is not
// one (nothing else can be checked then).
func (k *subnetCheck) subnet(i int, sc Subnet) (ServerSubnet, bool) {
	c, add, field := k.c, k.add, k.field
	ss := ServerSubnet{Interface: sc.Interface, Authoritative: sc.Authoritative, BOOTPDynamic: sc.BOOTPDynamic, Domain: sc.Domain, HostOptions: map[netip.Addr][]RawOption{}}
	pfx, err := netip.ParsePrefix(sc.Prefix)
	if err != nil || !pfx.Addr().Is4() {
		add(c.errorf(field(i, "prefix"), "%q is not an IPv4 prefix: write e.g. `prefix: 192.0.2.0/24`", sc.Prefix))
		return ss, false
	}
	pfx = pfx.Masked()
	ss.Lease.Prefix = pfx
	ifname := sc.Interface
	if ifname == "" && len(c.Interfaces) > 0 {
		ifname = c.Interfaces[0]
	} else if ifname != "" && !slices.Contains(c.Interfaces, ifname) {
		add(c.errorf(field(i, "interface"), "%q is not one of the served interfaces %v: add it to interfaces or fix the name", ifname, c.Interfaces))
	}
	if ia, ok := c.ifaceAddr(ifname); ok {
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
	k.addRanges(i, sc.Ranges, &ss)
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
	k.addReservations(i, sc.Reservations, ifname, &ss)
	return ss, true
}

// addRanges checks the i-th subnet's ranges (inside its prefix, disjoint
// from every other range) and adds them to ss.
func (k *subnetCheck) addRanges(i int, ranges []string, ss *ServerSubnet) {
	c, pfx := k.c, ss.Lease.Prefix
	for j, r := range ranges {
		f := k.field(i, fmt.Sprintf("ranges[%d]", j))
		first, last, err := ParseRange(r)
		if err != nil {
			k.add(c.errorf(f, "%v: write e.g. 192.0.2.100-192.0.2.200", err))
			continue
		}
		if !pfx.Contains(first) || !pfx.Contains(last) {
			k.add(c.errorf(f, "range %s is outside the subnet %v: write a range inside it", r, pfx))
			continue
		}
		for _, u := range k.ranges {
			if !last.Less(u.first) && !u.last.Less(first) {
				k.add(c.errorf(f, "range %s overlaps %s: make the ranges disjoint", r, c.where(u.field)))
			}
		}
		k.ranges = append(k.ranges, used{f, first, last})
		ss.Lease.Ranges = append(ss.Lease.Ranges, lease.Range{First: first, Last: last})
	}
}

// addReservations checks the i-th subnet's reservations (an address inside
// its prefix that no other reservation, pxed or the router has; one
// reservation per client) and adds them, and their options, to ss.
func (k *subnetCheck) addReservations(i int, rs []Reservation, ifname string, ss *ServerSubnet) {
	c, add, pfx := k.c, k.add, ss.Lease.Prefix
	clients := map[string]string{}
	for j, r := range rs {
		f := k.field(i, fmt.Sprintf("reservations[%d]", j))
		res := lease.Reservation{Hostname: r.Hostname}
		a, err := netip.ParseAddr(r.Address)
		if err != nil || !a.Is4() || !pfx.Contains(a) {
			add(c.errorf(f+".address", "%q: write an IPv4 address inside %v", r.Address, pfx))
			continue
		}
		res.Addr = a
		c.noteReserved(&k.reserved, f, a, add)
		if a == ss.Lease.ServerID {
			add(c.errorf(f+".address", "%v is pxed's own address on %s: reserve another address", a, ifname))
		} else if slices.Contains(ss.Router, a) {
			add(c.errorf(f+".address", "%v is the subnet's router: reserve another address", a))
		}
		var id string
		switch {
		case r.ClientID != "":
			b, err := hexBytes(r.ClientID)
			if err != nil || len(b) < 2 {
				add(c.errorf(f+".client_id", "%q: write option 61 as hex bytes, e.g. 01:52:54:00:12:34:56", r.ClientID))
			}
			res.ClientID, id = b, "id "+string(b)
		case r.MAC != "":
			res.MAC = c.reservedMAC(f, r.MAC, add)
			id = "mac " + string(res.MAC)
		default:
			add(c.errorf(f, "reservation of %v names no client: write mac: aa:bb:cc:dd:ee:ff or client_id: 01:aa:bb:cc:dd:ee:ff", a))
		}
		c.noteClient(clients, f, id, add)
		ss.Lease.Reservations = append(ss.Lease.Reservations, res)
		if opts := c.options(f+".options", r.Options, add); len(opts) > 0 {
			ss.HostOptions[a] = opts
		}
	}
}

// noteReserved records a reserved address, reporting one reserved before.
func (c *Config) noteReserved(reserved *[]used, f string, a netip.Addr, add func(*Error)) {
	for _, u := range *reserved {
		if u.first == a {
			add(c.errorf(f+".address", "%v is already reserved by %s: give each client its own address", a, c.where(u.field)))
		}
	}
	*reserved = append(*reserved, used{field: f, first: a})
}

// reservedMAC parses the MAC of reservation f.
func (c *Config) reservedMAC(f, s string, add func(*Error)) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		add(c.errorf(f+".mac", "%q is not a MAC address: write aa:bb:cc:dd:ee:ff", s))
	}
	return mac
}

// noteClient records the client of reservation f (id: its kind and
// bytes, "" when it names none), reporting a client reserved twice.
func (c *Config) noteClient(clients map[string]string, f, id string, add func(*Error)) {
	if prev, dup := clients[id]; dup && id != "" {
		add(c.errorf(f, "this client already has the reservation %s: keep one", c.where(prev)))
	}
	clients[id] = f
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
