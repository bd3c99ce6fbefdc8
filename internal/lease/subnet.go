package lease

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Defaults for the zero fields of Subnet and Config.
const (
	DefaultLeaseTime   = time.Hour
	DefaultOfferHold   = 60 * time.Second
	DefaultDeclineHold = 10 * time.Minute
	// InfiniteLease is the lease of a client that cannot renew (BOOTP,
	// RFC 1534 §2): 100 years, within the times every Store keeps.
	InfiniteLease = 100 * 365 * 24 * time.Hour
)

// Range is a pool of dynamic addresses, First through Last inclusive.
type Range struct {
	First, Last netip.Addr
}

// Contains reports whether a is in the range.
func (r Range) Contains(a netip.Addr) bool {
	return !a.Less(r.First) && !r.Last.Less(a)
}

// Reservation gives one client a fixed address. A reservation matches a
// client by ClientID (option 61) when set, else by DUID (any IAID of the
// client's DUIDKey, RFC 4361 keys of IPv4 clients included), else by MAC.
// Addr need not lie in a Range but must lie in the subnet's Prefix.
type Reservation struct {
	MAC      net.HardwareAddr
	ClientID []byte
	DUID     []byte
	Addr     netip.Addr
	Hostname string // given to the client when it sends none
}

// matches reports whether the reservation is for the client with key and mac.
func (r Reservation) matches(key ClientKey, mac net.HardwareAddr) bool {
	switch {
	case len(r.ClientID) > 0:
		return string(r.ClientID) == string(key)
	case len(r.DUID) > 0:
		d, ok := key.DUID()
		return ok && bytes.Equal(d, r.DUID)
	}
	return len(r.MAC) > 0 && bytes.Equal(r.MAC, mac)
}

// Subnet is one network, IPv4 or IPv6, served by a Manager.
type Subnet struct {
	Prefix       netip.Prefix  // e.g. 192.0.2.0/24
	Ranges       []Range       // dynamic pools, inside Prefix
	Reservations []Reservation // fixed addresses, inside Prefix
	// Exclude lists addresses never offered (the router, static hosts).
	// The network and broadcast addresses of Prefix and ServerID are
	// always excluded.
	Exclude []netip.Addr
	// ServerID is this server's address on the subnet: option 54 of our
	// replies, compared with option 54 of a DHCPREQUEST. Unused for IPv6
	// (a DHCPv6 server names itself by DUID: see RequestRequest.Selected).
	ServerID  netip.Addr
	LeaseTime time.Duration // bound lease length; 0 means DefaultLeaseTime
	OfferHold time.Duration // how long an offer reserves its address; 0 means DefaultOfferHold
}

// subnet is a validated Subnet with its lookups indexed.
type subnet struct {
	Subnet
	first, last netip.Addr          // bounds of Prefix
	byAddr      map[netip.Addr]int  // reserved address -> reservation
	byID        map[string]int      // client ID -> reservation
	byDUID      map[string]int      // DUID -> reservation by DUID
	byMAC       map[string]int      // MAC -> reservation without client ID or DUID
	exclude     map[netip.Addr]bool // Exclude and ServerID
}

// validate checks the subnet, fills in defaults and indexes it.
func (s Subnet) validate() (*subnet, error) {
	if !s.Prefix.IsValid() || s.Prefix.Addr().Is4In6() {
		return nil, fmt.Errorf("lease: subnet prefix %v: want a prefix such as 192.0.2.0/24 or 2001:db8::/64", s.Prefix)
	}
	s.Prefix = s.Prefix.Masked()
	if s.LeaseTime <= 0 {
		s.LeaseTime = DefaultLeaseTime
	}
	if s.OfferHold <= 0 {
		s.OfferHold = DefaultOfferHold
	}
	for _, r := range s.Ranges {
		if !r.First.IsValid() || !r.Last.IsValid() || !s.Prefix.Contains(r.First) || !s.Prefix.Contains(r.Last) || r.Last.Less(r.First) {
			return nil, fmt.Errorf("lease: subnet %v: range %v-%v: want FIRST <= LAST, both inside the prefix", s.Prefix, r.First, r.Last)
		}
	}
	sn := &subnet{
		Subnet: s,
		byAddr: make(map[netip.Addr]int), byID: make(map[string]int), byDUID: make(map[string]int), byMAC: make(map[string]int),
		exclude: make(map[netip.Addr]bool),
	}
	sn.first, sn.last = prefixBounds(s.Prefix)
	for i, r := range s.Reservations {
		if !s.Prefix.Contains(r.Addr) {
			return nil, fmt.Errorf("lease: subnet %v: reservation %d address %v: outside the prefix", s.Prefix, i, r.Addr)
		}
		if j, dup := sn.byAddr[r.Addr]; dup {
			return nil, fmt.Errorf("lease: subnet %v: address %v reserved twice (reservations %d and %d)", s.Prefix, r.Addr, j, i)
		}
		sn.byAddr[r.Addr] = i
		var m map[string]int
		var id string
		switch {
		case len(r.ClientID) > 0:
			m, id = sn.byID, string(r.ClientID)
		case len(r.DUID) > 0:
			m, id = sn.byDUID, string(r.DUID)
		case len(r.MAC) > 0:
			m, id = sn.byMAC, string(r.MAC)
		default:
			return nil, fmt.Errorf("lease: subnet %v: reservation %d (%v): set a MAC, a client ID or a DUID", s.Prefix, i, r.Addr)
		}
		if j, dup := m[id]; dup {
			return nil, fmt.Errorf("lease: subnet %v: reservations %d and %d are for the same client", s.Prefix, j, i)
		}
		m[id] = i
	}
	for _, a := range s.Exclude {
		sn.exclude[a] = true
	}
	if s.ServerID.IsValid() {
		sn.exclude[s.ServerID] = true
	}
	return sn, nil
}

// prefixBounds returns the lowest and highest address of a prefix.
func prefixBounds(p netip.Prefix) (netip.Addr, netip.Addr) {
	first := p.Masked().Addr()
	b := first.AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	last, _ := netip.AddrFromSlice(b)
	return first, last
}

// reservationFor returns the reservation of the client, if any: by client
// ID (the key) first, then by DUID, then by MAC.
func (s *subnet) reservationFor(key ClientKey, mac net.HardwareAddr) (Reservation, bool) {
	if i, ok := s.byID[string(key)]; ok {
		return s.Reservations[i], true
	}
	if d, ok := key.DUID(); ok {
		if i, ok := s.byDUID[string(d)]; ok {
			return s.Reservations[i], true
		}
	}
	if i, ok := s.byMAC[string(mac)]; ok && len(mac) > 0 {
		return s.Reservations[i], true
	}
	return Reservation{}, false
}

// reservedFor returns the reservation of addr, if any.
func (s *subnet) reservedFor(addr netip.Addr) (Reservation, bool) {
	if i, ok := s.byAddr[addr]; ok {
		return s.Reservations[i], true
	}
	return Reservation{}, false
}

// excluded reports whether addr is never handed out by this subnet: in
// IPv4 its network and broadcast addresses, in IPv6 its Subnet-Router
// anycast address (RFC 4291 §2.6.1), and Exclude.
func (s *subnet) excluded(addr netip.Addr) bool {
	switch {
	case s.Prefix.Addr().Is4() && s.Prefix.Bits() < 31 && (addr == s.first || addr == s.last):
		return true
	case s.Prefix.Addr().Is6() && s.Prefix.Bits() < 127 && addr == s.first:
		return true
	}
	return s.exclude[addr]
}

// inRanges reports whether addr lies in a dynamic range.
func (s *subnet) inRanges(addr netip.Addr) bool {
	for _, r := range s.Ranges {
		if r.Contains(addr) {
			return true
		}
	}
	return false
}

// usableBy reports whether addr may be leased to the client: it is its
// reservation, or it is a dynamic, non-excluded address reserved for no one.
func (s *subnet) usableBy(addr netip.Addr, key ClientKey, mac net.HardwareAddr) bool {
	if !s.Prefix.Contains(addr) || s.excluded(addr) {
		return false
	}
	if r, ok := s.reservedFor(addr); ok {
		return r.matches(key, mac)
	}
	return s.inRanges(addr)
}
