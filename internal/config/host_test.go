package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// fakeHost is a machine with the interfaces given, and counts the address
// lookups.
type fakeHost struct {
	ifaces  map[string][]netip.Prefix
	lookups int
}

func (h *fakeHost) HasInterface(name string) bool {
	_, ok := h.ifaces[name]
	return ok
}

func (h *fakeHost) InterfaceAddrs(name string) ([]netip.Prefix, error) {
	h.lookups++
	a, ok := h.ifaces[name]
	if !ok {
		return nil, fmt.Errorf("no interface %s", name)
	}
	return a, nil
}

// TestServerSubnetsOnFakeHost validates a mode server configuration on an
// interface this machine does not have: the subnet's server ID and the
// range shorthand's prefix come from the Host, and Validate's lookups are
// the only ones (ServerSubnets builds nothing again).
func TestServerSubnetsOnFakeHost(t *testing.T) {
	l := newLab(t)
	pxe0 := []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("10.9.0.1/24")}
	tests := []struct {
		name, dhcp string
		prefix     string
		authorit   bool
	}{
		{"subnets", "dhcp:\n  mode: server\n  subnets:\n    - interface: pxe0\n      prefix: 10.9.0.0/24\n      ranges: [10.9.0.100-10.9.0.200]\n", "10.9.0.0/24", false},
		{"range shorthand", "dhcp:\n  mode: server\n  range: 10.9.0.100-10.9.0.200\n", "10.9.0.0/24", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("pxed.yaml", []byte(l.yaml("interfaces: [pxe0]\nipxe_dir: {ipxe}\nprofiles:\n  p:\n    kernel: {kernel}\n"+tc.dhcp)))
			if err != nil {
				t.Fatal(err)
			}
			h := &fakeHost{ifaces: map[string][]netip.Prefix{"pxe0": pxe0}}
			c.Host = h
			c.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			validated := h.lookups
			subs, err := c.ServerSubnets()
			if err != nil {
				t.Fatalf("ServerSubnets: %v", err)
			}
			if len(subs) != 1 || subs[0].Interface != "pxe0" || subs[0].Lease.Prefix.String() != tc.prefix ||
				subs[0].Lease.ServerID != netip.MustParseAddr("10.9.0.1") || subs[0].Authoritative != tc.authorit {
				t.Errorf("ServerSubnets = %+v, want one subnet %s on pxe0 served from 10.9.0.1", subs, tc.prefix)
			}
			if h.lookups != validated {
				t.Errorf("ServerSubnets looked the interfaces up again (%d lookups, %d in Validate): it builds the subnets a second time", h.lookups, validated)
			}
		})
	}
}

func TestFakeHostErrors(t *testing.T) {
	l := newLab(t)
	h := &fakeHost{ifaces: map[string][]netip.Prefix{"pxe0": {netip.MustParsePrefix("fe80::1/64")}, "lo": nil}}
	tests := []struct {
		name, yaml string
		field      string
		fix        string
	}{
		{"interface the host lacks", "interfaces: [lo, eth0]\n", "interfaces[1]", `interface "eth0" does not exist on this host`},
		{"range on an interface without IPv4", "interfaces: [pxe0]\ndhcp:\n  mode: server\n  range: 10.9.0.100-10.9.0.200\n", "dhcp.range", `interface "pxe0" has no IPv4 address`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("pxed.yaml", []byte(l.yaml("ipxe_dir: {ipxe}\nprofiles:\n  p:\n    kernel: {kernel}\n"+tc.yaml)))
			if err != nil {
				t.Fatal(err)
			}
			c.Host = h
			c.Defaults()
			var es Errors
			if err := c.Validate(); !errors.As(err, &es) || len(es) != 1 || es[0].Field != tc.field || !strings.Contains(es[0].Msg, tc.fix) {
				t.Fatalf("Validate = %v, want one mistake at %s saying %q", err, tc.field, tc.fix)
			}
		})
	}
}

func TestHostIsNotInTheFile(t *testing.T) {
	_, err := Parse("pxed.yaml", []byte("host: x\n"))
	var es Errors
	if !errors.As(err, &es) || !strings.Contains(es[0].Msg, "unknown field") {
		t.Fatalf("Parse(host:) = %v, want an unknown field", err)
	}
}
