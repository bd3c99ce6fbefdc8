package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serverYAML is a mode server configuration on lo (127.0.0.1/8, present
// on every host) with a relayed subnet; extra is appended under subnets.
const serverYAML = `interfaces: [lo]
data_dir: /tmp
dhcp:
  mode: server
  probe_timeout: 150ms
  subnets:
    - interface: lo
      prefix: 127.0.0.0/8
      ranges: [127.0.0.100-127.0.0.200, 127.1.0.1-127.1.0.9]
      router: 127.0.0.1
      dns: [127.0.0.53, 127.0.0.54]
      domain: lab.example
      mtu: 1400
      ntp: [127.0.0.123]
      lease_time: 2h
      authoritative: true
      options:
        - {code: 252, type: string, value: "http://127.0.0.1/wpad.dat"}
        - {code: 150, type: ips, value: [127.0.0.1, 127.0.0.2]}
        - {code: 19, type: bool, value: false}
        - {code: 23, type: uint8, value: 64}
        - {code: 57, type: uint16, value: 1500}
        - {code: 2, type: uint32, value: 3600}
        - {code: 224, type: hex, value: "01:02:0a"}
        - {code: 128, type: ip, value: 127.0.0.9}
      reservations:
        - mac: 52:54:00:12:34:56
          address: 127.0.0.50
          hostname: node50
          options:
            - {code: 66, type: string, value: tftp.lab.example}
        - client_id: 01:52:54:00:12:34:57
          address: 127.0.0.51
    - prefix: 198.51.100.0/24
      ranges: [198.51.100.10-198.51.100.20]
`

func TestServerSubnets(t *testing.T) {
	c, err := Parse("pxed.yaml", []byte(serverYAML))
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	subs, err := c.ServerSubnets()
	if err != nil {
		t.Fatalf("ServerSubnets: %v", err)
	}
	if len(subs) != 2 {
		t.Fatalf("%d subnets, want 2", len(subs))
	}
	s := subs[0]
	lo := netip.MustParseAddr("127.0.0.1")
	if s.Interface != "lo" || s.Lease.Prefix.String() != "127.0.0.0/8" || s.Lease.ServerID != lo || s.Lease.LeaseTime != 2*time.Hour ||
		!s.Authoritative || len(s.Lease.Ranges) != 2 || s.Domain != "lab.example" || s.MTU != 1400 {
		t.Errorf("subnet 0 = %+v", s)
	}
	if fmt.Sprint(s.Router, s.DNS, s.NTP) != "[127.0.0.1] [127.0.0.53 127.0.0.54] [127.0.0.123]" {
		t.Errorf("router/dns/ntp = %v %v %v", s.Router, s.DNS, s.NTP)
	}
	want := map[uint8][]byte{
		252: []byte("http://127.0.0.1/wpad.dat"), 150: {127, 0, 0, 1, 127, 0, 0, 2}, 19: {0}, 23: {64},
		57: {0x05, 0xdc}, 2: {0, 0, 0x0e, 0x10}, 224: {1, 2, 10}, 128: {127, 0, 0, 9},
	}
	for _, o := range s.Options {
		if !bytes.Equal(o.Value, want[o.Code]) {
			t.Errorf("option %d = %v, want %v", o.Code, o.Value, want[o.Code])
		}
		delete(want, o.Code)
	}
	if len(want) > 0 {
		t.Errorf("options missing: %v", want)
	}
	r := s.Lease.Reservations
	if len(r) != 2 || r[0].MAC.String() != "52:54:00:12:34:56" || r[0].Hostname != "node50" || !bytes.Equal(r[1].ClientID, []byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x57}) {
		t.Errorf("reservations = %+v", r)
	}
	if h := s.HostOptions[netip.MustParseAddr("127.0.0.50")]; len(h) != 1 || h[0].Code != 66 {
		t.Errorf("host options = %+v", s.HostOptions)
	}
	if subs[1].Interface != "" || subs[1].Lease.ServerID != lo || subs[1].Authoritative {
		t.Errorf("relayed subnet = %+v, want server ID of the first interface", subs[1])
	}
	if c.ProbeTimeout() != 150*time.Millisecond {
		t.Errorf("probe timeout %v", c.ProbeTimeout())
	}
}

func TestServerRangeShorthand(t *testing.T) {
	c := &Config{Interfaces: []string{"lo"}, DHCP: DHCP{Mode: ModeServer, Range: "127.0.0.100-127.0.0.200"}}
	c.Defaults()
	subs, err := c.ServerSubnets()
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0].Lease.Prefix.String() != "127.0.0.0/8" || subs[0].Interface != "lo" || !subs[0].Authoritative ||
		subs[0].Lease.Ranges[0].First.String() != "127.0.0.100" {
		t.Fatalf("--dhcp-range gives %+v, want one authoritative subnet on lo's prefix", subs)
	}
	if c.ProbeTimeout() != 300*time.Millisecond {
		t.Errorf("default probe timeout %v, want 300ms", c.ProbeTimeout())
	}
	c.DHCP.ProbeTimeout = ParseOptionalDuration("off")
	if c.ProbeTimeout() != 0 {
		t.Errorf("probe_timeout off gives %v", c.ProbeTimeout())
	}
	if d, set := c.CommitInterval(); set {
		t.Errorf("commit_interval unset gives %v, set", d)
	}
	c.DHCP.CommitInterval = ParseOptionalDuration("0s")
	if d, set := c.CommitInterval(); !set || d != 0 {
		t.Errorf("commit_interval 0s gives %v, %v; want 0, set", d, set)
	}
}

func TestServerSubnetErrors(t *testing.T) {
	// Each case edits serverYAML: replace old with new.
	tests := []struct {
		name, old, new string
		field          string
		line           int
		fix            string
	}{
		{"overlapping ranges", "127.1.0.1-127.1.0.9", "127.0.0.150-127.0.0.160",
			"dhcp.subnets[0].ranges[1]", 9, "overlaps dhcp.subnets[0].ranges[0] (pxed.yaml:9): make the ranges disjoint"},
		{"range outside its subnet", "[198.51.100.10-198.51.100.20]", "[198.51.101.10-198.51.101.20]",
			"dhcp.subnets[1].ranges[0]", 35, "outside the subnet 198.51.100.0/24: write a range inside it"},
		{"reservation address used twice", "address: 127.0.0.51", "address: 127.0.0.50",
			"dhcp.subnets[0].reservations[1].address", 33, "already reserved by dhcp.subnets[0].reservations[0] (pxed.yaml:27)"},
		{"one client reserved twice", "client_id: 01:52:54:00:12:34:57", "mac: 52:54:00:12:34:56",
			"dhcp.subnets[0].reservations[1]", 32, "already has the reservation dhcp.subnets[0].reservations[0] (pxed.yaml:27)"},
		{"reservation on the router's address", "address: 127.0.0.51", "address: 127.0.0.1",
			"dhcp.subnets[0].reservations[1].address", 33, "reserve another address"},
		{"reservation outside the subnet", "address: 127.0.0.51", "address: 192.0.2.51",
			"dhcp.subnets[0].reservations[1].address", 33, "write an IPv4 address inside 127.0.0.0/8"},
		{"bad uint8", "value: 64}", "value: 300}", "dhcp.subnets[0].options[3].value", 21, "write a number from 0 to 255"},
		{"bad option type", "type: hex", "type: blob", "dhcp.subnets[0].options[6].value", 24, "write ip, ips, string"},
		{"ip given a list", "type: ip, value: 127.0.0.9", "type: ip, value: [127.0.0.9, 127.0.0.8]", "dhcp.subnets[0].options[7].value", 25, "type: ips"},
		{"option 54 is pxed's own", "code: 128", "code: 54", "dhcp.subnets[0].options[7].code", 25, "53 and 54 are pxed's own"},
		{"bad prefix", "prefix: 198.51.100.0/24", "prefix: 198.51.100.0", "dhcp.subnets[1].prefix", 34, "write e.g. `prefix: 192.0.2.0/24`"},
		{"interface not served", "- interface: lo", "- interface: eth9", "dhcp.subnets[0].interface", 7, "not one of the served interfaces"},
		{"interface on another prefix", "prefix: 127.0.0.0/8", "prefix: 192.0.2.0/24", "dhcp.subnets[0].prefix", 8, "leave interface empty for a relayed subnet"},
		{"short lease", "lease_time: 2h", "lease_time: 10s", "dhcp.subnets[0].lease_time", 15, "at least 1m"},
		{"bad probe timeout", "probe_timeout: 150ms", "probe_timeout: soon", "dhcp.probe_timeout", 5, "write e.g. 300ms, or off"},
		{"commit interval too long", "probe_timeout: 150ms\n", "probe_timeout: 150ms\n  commit_interval: 2s\n", "dhcp.commit_interval", 6, "between 0s and 1s: write e.g. 10ms"},
		{"range and subnets", "  mode: server\n", "  mode: server\n  range: 127.0.0.100-127.0.0.200\n", "dhcp.range", 5, "write either dhcp.range or dhcp.subnets"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(serverYAML, tc.old, tc.new, 1)
			if text == serverYAML {
				t.Fatalf("%q not in the base configuration", tc.old)
			}
			c, err := Parse("pxed.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			es := c.validateServer()
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
			if len(es) != 1 && tc.name != "interface on another prefix" { // there every address is also outside
				t.Errorf("want one mistake, got:\n%v", es)
			}
			var all Errors
			if _, err := c.ServerSubnets(); strings.HasPrefix(tc.field, "dhcp.subnets") && !errors.As(err, &all) {
				t.Errorf("ServerSubnets = %v, want the same Errors", err)
			}
		})
	}
}
