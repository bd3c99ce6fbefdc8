package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// dhcp6YAML is a dhcp6 mode server configuration on pxe0 (a fake host's
// interface with 2001:db8:0:1::1/64) with a relayed subnet.
const dhcp6YAML = `interfaces: [pxe0]
dhcp6:
  preference: 255
  rapid_commit: true
  subnets:
    - interface: pxe0
      prefix: 2001:db8:0:1::/64
      ranges: [2001:db8:0:1::100-2001:db8:0:1::1ff, 2001:db8:0:1::1000-2001:db8:0:1::10ff]
      dns: [2001:db8::53]
      domain_search: [lab.example, example.org]
      lease_time: 2h
      preferred_time: 90m
      options:
        - {code: 31, type: ips, value: [2001:db8::123]}
        - {code: 65000, type: string, value: hello}
      reservations:
        - duid: 00:03:00:01:52:54:00:12:34:56
          address: 2001:db8:0:1::50
          hostname: node50
        - mac: 52:54:00:12:34:57
          address: 2001:db8:0:1::51
    - prefix: 2001:db8:0:2::/64
      ranges: [2001:db8:0:2::10-2001:db8:0:2::20]
`

func dhcp6Host() *fakeHost {
	return &fakeHost{ifaces: map[string][]netip.Prefix{"pxe0": {
		netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:0:1::1/64")}}}
}

func parse6(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("pxed.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	c.Host = dhcp6Host()
	c.Defaults()
	return c
}

func TestServerSubnets6(t *testing.T) {
	c := parse6(t, dhcp6YAML)
	if c.DHCP6.Mode != ModeServer {
		t.Fatalf("mode %q: subnets given, want server", c.DHCP6.Mode)
	}
	if es := c.validateDHCP6(); len(es) > 0 {
		t.Fatalf("validate: %v", es)
	}
	subs, err := c.ServerSubnets6()
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 2 {
		t.Fatalf("%d subnets", len(subs))
	}
	s := subs[0]
	if s.Interface != "pxe0" || s.Lease.Prefix.String() != "2001:db8:0:1::/64" || len(s.Lease.Ranges) != 2 ||
		s.Lease.LeaseTime != 2*time.Hour || s.Preferred != 90*time.Minute || len(s.DNS) != 1 || len(s.Options) != 2 ||
		len(s.Lease.Reservations) != 2 || len(s.Lease.Reservations[0].DUID) != 10 || len(s.Lease.Reservations[1].MAC) != 6 {
		t.Fatalf("subnet 0 = %+v", s)
	}
	if s.Options[0].Code != 31 || len(s.Options[0].Value) != 16 || s.Options[1].Code != 65000 {
		t.Errorf("options = %+v", s.Options)
	}
	if subs[1].Interface != "" || subs[1].Lease.LeaseTime != time.Hour || subs[1].Preferred != time.Hour {
		t.Errorf("relayed subnet = %+v (want default 1h lease and preferred time)", subs[1])
	}
	if c.DHCP6Preference() != 255 || !c.DHCP6.RapidCommit {
		t.Errorf("preference %d rapid commit %v", c.DHCP6Preference(), c.DHCP6.RapidCommit)
	}
}

func TestDHCP6RangeShorthandAndModes(t *testing.T) {
	c := parse6(t, "interfaces: [pxe0]\ndhcp6:\n  range: 2001:db8:0:1::100-2001:db8:0:1::1ff\n")
	if es := c.validateDHCP6(); len(es) > 0 {
		t.Fatal(es)
	}
	subs, err := c.ServerSubnets6()
	if err != nil || len(subs) != 1 || subs[0].Lease.Prefix.String() != "2001:db8:0:1::/64" || subs[0].Interface != "pxe0" {
		t.Fatalf("--dhcp6-range gives %+v, %v", subs, err)
	}
	if c.DHCP6Preference() != 255 {
		t.Errorf("preference unset gives %d in mode server, want 255", c.DHCP6Preference())
	}
	if c := parse6(t, "interfaces: [pxe0]\n"); c.DHCP6Preference() != -1 {
		t.Errorf("the proxy sends preference %d, want none", c.DHCP6Preference())
	}
	for _, tc := range []struct{ yaml, mode string }{
		{"interfaces: [pxe0]\n", ModeProxy},
		{"interfaces: [pxe0]\ndhcp:\n  mode: server\n  range: 192.0.2.10-192.0.2.20\n", ModeOff},
		{"interfaces: [pxe0]\ndhcp:\n  mode: off\n", ModeOff},
		// A boot server only answers boot server requests: no ProxyDHCPv6.
		{"interfaces: [pxe0]\ndhcp:\n  mode: boot-server\n", ModeOff},
	} {
		if c := parse6(t, tc.yaml); c.DHCP6.Mode != tc.mode {
			t.Errorf("%q: dhcp6 mode %q, want %q", tc.yaml, c.DHCP6.Mode, tc.mode)
		}
	}
}

func TestServerSubnet6Errors(t *testing.T) {
	tests := []struct {
		name, old, new string
		field          string
		line           int
		fix            string
	}{
		{"overlapping ranges", "2001:db8:0:1::1000-2001:db8:0:1::10ff", "2001:db8:0:1::180-2001:db8:0:1::10ff",
			"dhcp6.subnets[0].ranges[1]", 8, "overlaps dhcp6.subnets[0].ranges[0] (pxed.yaml:8): make the ranges disjoint"},
		{"range outside its prefix", "[2001:db8:0:2::10-2001:db8:0:2::20]", "[2001:db8:0:3::10-2001:db8:0:3::20]",
			"dhcp6.subnets[1].ranges[0]", 23, "outside the subnet 2001:db8:0:2::/64: write a range inside it"},
		{"IPv4 range", "[2001:db8:0:2::10-2001:db8:0:2::20]", "[192.0.2.10-192.0.2.20]",
			"dhcp6.subnets[1].ranges[0]", 23, "both ends must be IPv6 addresses"},
		{"overlapping prefixes", "prefix: 2001:db8:0:2::/64", "prefix: 2001:db8::/48",
			"dhcp6.subnets[1].prefix", 22, "overlaps the subnet 2001:db8:0:1::/64"},
		{"interface without an address in the prefix", "prefix: 2001:db8:0:1::/64", "prefix: 2001:db8:0:9::/64",
			"dhcp6.subnets[0].prefix", 7, "ip -6 addr add 2001:db8:0:9::1/64 dev pxe0"},
		{"reservation used twice", "address: 2001:db8:0:1::51", "address: 2001:db8:0:1::50",
			"dhcp6.subnets[0].reservations[1].address", 21, "already reserved by dhcp6.subnets[0].reservations[0]"},
		{"bad DUID", "duid: 00:03:00:01:52:54:00:12:34:56", "duid: zz",
			"dhcp6.subnets[0].reservations[0].duid", 17, "write the DUID as hex bytes"},
		{"own option", "code: 65000", "code: 2", "dhcp6.subnets[0].options[1].code", 15, "other than pxed's own"},
		{"IPv4 in ips", "value: [2001:db8::123]", "value: [192.0.2.123]", "dhcp6.subnets[0].options[0].value", 14, "is not an IPv6 address"},
		{"preferred longer than lease", "preferred_time: 90m", "preferred_time: 3h", "dhcp6.subnets[0].preferred_time", 12, "up to the lease time"},
		{"preference out of range", "preference: 255", "preference: 256", "dhcp6.preference", 3, "from 0 to 255"},
		{"range and subnets", "  rapid_commit: true\n", "  rapid_commit: true\n  range: 2001:db8:0:1::100-2001:db8:0:1::1ff\n", "dhcp6.range", 5, "write either dhcp6.range or dhcp6.subnets"},
		{"bad domain", "domain_search: [lab.example, example.org]", "domain_search: [lab..example]", "dhcp6.subnets[0].domain_search", 10, "not a domain name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(dhcp6YAML, tc.old, tc.new, 1)
			if text == dhcp6YAML {
				t.Fatalf("%q not in the base configuration", tc.old)
			}
			c := parse6(t, text)
			es := c.validateDHCP6()
			var e *Error
			for _, x := range es {
				if x.Field == tc.field {
					e = x
				}
			}
			if e == nil {
				t.Fatalf("no error for %q in:\n%v", tc.field, es)
			}
			if e.File != "pxed.yaml" || e.Line != tc.line || !strings.Contains(e.Msg, tc.fix) {
				t.Errorf("error %q, want pxed.yaml:%d saying %q", e, tc.line, tc.fix)
			}
			if len(es) != 1 && tc.name != "interface without an address in the prefix" { // there every address is also outside
				t.Errorf("want one mistake, got:\n%v", es)
			}
		})
	}
}
