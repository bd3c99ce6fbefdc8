package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"pxed/internal/lease"
)

// DHCP modes.
const (
	ModeProxy  = "proxy"  // ProxyDHCP beside an existing DHCP server (default)
	ModeServer = "server" // full DHCP server: addresses and boot info
	ModeOff    = "off"    // no DHCP at all (TFTP/HTTP only)
	// ModeBootServer answers PXE boot server requests only (port 4011,
	// and sub-option 71 broadcasts to 67), no ProxyDHCP offers: the
	// boot server of menu items another pxed offers (dhcp4.Proxy.BootServerOnly).
	ModeBootServer = "boot-server"
)

// DefaultProbeTimeout is dhcp.probe_timeout when the file and flags leave
// it unset.
const DefaultProbeTimeout = 300 * time.Millisecond

// DHCP is the dhcp section: DHCPv4, as ProxyDHCP or a full server. Its
// options are encoded by dhcp4.EncodeOption; DHCPv6 will be a section of
// its own beside it.
type DHCP struct {
	Mode  string `yaml:"mode"`  // proxy (default), server, boot-server, off
	Range string `yaml:"range"` // FIRST-LAST, for mode server: one subnet on the interface's prefix
	// Subnets are the networks of mode server (instead of Range).
	Subnets []Subnet `yaml:"subnets"`
	// ProbeTimeout is how long to wait for an answer to the address probe
	// (ARP on-link, ICMP echo for relayed subnets) before
	// offering an address ("300ms" default; "off" disables probing).
	ProbeTimeout OptionalDuration `yaml:"probe_timeout"`
	// CommitInterval is the least time between two lease commits (fsyncs)
	// under load, unless 64 leases wait: the writes of every client in
	// between share one commit ("10ms" default; "0s" commits as soon as
	// the previous one is done).
	CommitInterval OptionalDuration `yaml:"commit_interval"`
	// LeaseJournal: with the SQLite store, a lease commit is one append
	// and one fdatasync of a journal file pxed writes itself, and SQLite is
	// brought up to date from it once a second (DefaultLeaseJournal when
	// unset). pxed must then be the database's only user.
	LeaseJournal *bool `yaml:"lease_journal"`
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
	// BOOTPDynamic leases range addresses to BOOTP clients without a
	// reservation, for ever (as dnsmasq's bootp-dynamic).
	BOOTPDynamic bool `yaml:"bootp_dynamic"`
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
	BOOTPDynamic  bool
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

// DefaultLeaseJournal is dhcp.lease_journal when unset.
const DefaultLeaseJournal = true

// LeaseJournal returns dhcp.lease_journal, or its default.
// Unset, it is off for a server of a cluster: servers sharing one SQLite
// file cannot journal (each must be the file's only writer).
func (c *Config) LeaseJournal() bool {
	if c.DHCP.LeaseJournal == nil {
		return DefaultLeaseJournal && !c.Cluster.Enabled
	}
	return *c.DHCP.LeaseJournal
}

// ServerSubnets returns the subnets of mode server: dhcp.subnets, or for
// dhcp.range one subnet on the prefix of the first interface. Each
// subnet's server ID is its interface's address (for relayed subnets the
// first interface's). Call it after Validate: it returns the subnets
// Validate built and checked (before Validate, it builds them itself).
func (c *Config) ServerSubnets() ([]ServerSubnet, error) {
	r := c.server
	if r == nil {
		r = c.buildServerSubnets()
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return r.subnets, nil
}

// serverSubnets is mode server's subnets as Validate built them, with the
// mistakes found on the way.
type serverSubnets struct {
	subnets []ServerSubnet
	errs    Errors
}

// validateDHCP checks the dhcp section: its mode and, in mode server, the
// subnets.
func (c *Config) validateDHCP() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	switch c.DHCP.Mode {
	case ModeProxy, ModeOff, ModeBootServer:
	case ModeServer:
		es = append(es, c.validateServer()...)
	default:
		add(c.errorf("dhcp.mode", "%q is not a DHCP mode: write proxy, server, boot-server or off", c.DHCP.Mode))
	}
	return append(es, c.validateDHCP6()...) // dhcp6.go
}

// validateServer checks mode server's settings and builds its subnets, once:
// ServerSubnets returns them.
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
	c.server = c.buildServerSubnets()
	return append(es, c.server.errs...)
}
