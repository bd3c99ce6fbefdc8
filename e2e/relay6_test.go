package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// The routed lab of TestRelayedDHCPv6BootsOVMF: the client's segment
// (2001:db8:1::/64) behind a router that relays DHCPv6 to the servers'
// segment (the lab bridge, 2001:db8::/64).
var (
	clientPrefix6 = netip.MustParsePrefix("2001:db8:1::/64")
	routerClient6 = netip.MustParsePrefix("2001:db8:1::1/64") // the router on the client's segment
	routerUp6     = netip.MustParsePrefix("2001:db8::fe/64")  // the router on the servers' segment
)

// routedSegment makes a second lab segment for the clients, joined to
// servers (whose bridge is the servers' segment) by a router: the client
// lab's namespace, with IPv6 forwarding on, its bridge holding
// routerClient6 (and no IPv4: nothing here is routed over IPv4), and a
// veth "up0" with routerUp6 on the servers' bridge. The servers' segment
// routes clientPrefix6 through it. The router sends no advertisements
// and relays nothing: the caller starts radvd and dhcrelay there.
func routedSegment(t *testing.T, servers *lab.Net) *lab.Net {
	t.Helper()
	clients := lab.NewNet(t)
	r := clients.NS()
	for _, args := range [][]string{
		{"ip", "addr", "flush", "dev", clients.Bridge(), "scope", "global"},
		{"ip", "addr", "add", routerClient6.String(), "dev", clients.Bridge(), "nodad"},
		{"sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "link", "add", "up0", "type", "veth", "peer", "name", "rtr0", "netns", servers.NS()},
		{"ip", "addr", "add", routerUp6.String(), "dev", "up0", "nodad"},
		{"ip", "link", "set", "up0", "up"},
	} {
		if out, err := lab.Run(t, r, args[0], args[1:]...); err != nil {
			t.Fatalf("router: %v\n%s", err, out)
		}
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "rtr0", "master", servers.Bridge(), "up"},
		{"ip", "route", "add", clientPrefix6.String(), "via", routerUp6.Addr().String(), "dev", servers.Bridge()},
	} {
		if out, err := lab.Run(t, servers.NS(), args[0], args[1:]...); err != nil {
			t.Fatalf("servers' segment: %v\n%s", err, out)
		}
	}
	return clients
}

// startRadvd runs radvd on the client segment's router: it advertises
// itself as the default router (the firmware learns its route to the
// servers' segment only this way: DHCPv6 names no router) and
// clientPrefix6 for SLAAC, with the O flag and without M, as the lab's
// RAs do on one segment (iPXE then asks for its configuration with an
// Information-request, relayed to pxed; EDK II solicits an address
// whatever the flags say). The prefix matters to EDK II: it sends its
// Request to pxed's boot service before it configures the address
// DHCPv6 gave it, from its SLAAC address (captured); without one it
// would come from its link-local address, which no router forwards.
func startRadvd(t *testing.T, clients *lab.Net) *lab.Proc {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(conf, []byte(`interface `+clients.Bridge()+` {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 10;
	AdvManagedFlag off;
	AdvOtherConfigFlag on;
	prefix `+clientPrefix6.String()+` {
		AdvOnLink on;
		AdvAutonomous on;
	};
};
`), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, clients.NS(), "/usr/sbin/radvd", "--nodaemon", "--logmethod", "stderr", "--debug", "1",
		"--config", conf, "--pidfile", filepath.Join(dir, "radvd.pid"))
	// It advertises once the bridge has a port up (the VM's tap).
	lab.WaitFor(t, 10*time.Second, "radvd to run", func() bool {
		return strings.Contains(p.Output(), "polling for") || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("radvd exited: %v\n%s", p.Err(), p.Output())
	}
	return p
}

// TestRelayedDHCPv6BootsOVMF boots an OVMF machine over PXE on IPv6 from a
// segment pxed is not on: a router between the client's segment and the
// servers' relays DHCPv6 with ISC dhcrelay (RFC 8415 §19) to both the
// network's address server (dnsmasq) and pxed's ProxyDHCPv6, and routes
// the rest. This is how a site with central DHCP servers looks: the
// address server and the boot server sit on a server segment and every
// client segment's router relays to both. EDK II gets its address from
// dnsmasq and pxed's ProxyBinl Advertise, both through the relay (Relay-
// Repl to the relay's port 547); its Request to pxed's boot service
// (4011), the TFTP of snponly.efi, iPXE's relayed Information-request
// and the HTTP that follows are routed.
func TestRelayedDHCPv6BootsOVMF(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about a minute under TCG); not in -short")
	}
	for _, bin := range []string{"/usr/sbin/dhcrelay", "/usr/sbin/radvd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt-get install isc-dhcp-relay radvd) as the client segment's router", bin)
		}
	}
	n := lab.NewNet(t)
	dnsmasq := startAddressServer6(t, n, "--dhcp-range=2001:db8:1::100,2001:db8:1::1ff,64,5m")
	pxed := startPxed(t, n, "--tftp-addr", ":69", "--http-addr", ":8080")
	if !strings.Contains(pxed.Output(), "ProxyDHCPv6 on") {
		t.Fatalf("pxed did not start ProxyDHCPv6:\n%s", pxed.Output())
	}
	clients := routedSegment(t, n)
	captureIfAsked(t, clients.NS(), clients.Bridge(), "client")
	captureIfAsked(t, n.NS(), n.Bridge(), "servers")
	startRadvd(t, clients)
	// -l: the client's link (its global address becomes the Relay-Forw's
	// link-address, from which dnsmasq picks the range); -u: one unicast
	// destination per server, both through up0.
	relay := lab.Start(t, clients.NS(), "/usr/sbin/dhcrelay", "-6", "-d", "-pf", filepath.Join(t.TempDir(), "dhcrelay.pid"),
		"-l", clients.Bridge(), "-u", "2001:db8::2%up0", "-u", "2001:db8::1%up0")
	lab.WaitFor(t, 10*time.Second, "dhcrelay to listen", func() bool {
		return strings.Contains(relay.Output(), "Listening on") || relay.Exited()
	})
	if relay.Exited() {
		t.Fatalf("dhcrelay exited: %v\n%s", relay.Err(), relay.Output())
	}

	const mac = "52:54:00:00:06:21"
	vm := lab.StartVM(t, clients, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 5 * time.Minute,
		FwCfg: []string{"name=opt/org.tianocore/IPv4PXESupport,string=no"}})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("uefi PXEv6 through a relay: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	if line := bootLine(vm.Serial()); !strings.Contains(line, `"UEFI PXEv6`) {
		t.Errorf("the boot option started was not UEFI PXEv6: %q\n%s", line, tail(vm.Serial(), 3<<10))
	}
	evs := logTimeline(t, n, mac)
	var stages []event
	for _, e := range evs {
		stages = append(stages, event{Stage: e.Stage, Detail: e.Detail, Bytes: e.Bytes})
		switch e.Stage {
		case "tftp-done", "script", "kernel", "initrd":
			// Routed from the client's segment: its address there.
			if a, err := netip.ParseAddr(e.IP); err != nil || !clientPrefix6.Contains(a) {
				t.Errorf("%s from %q, not from the client's segment %v", e.Stage, e.IP, clientPrefix6)
			}
		}
	}
	// Advertise (relayed), boot service Reply (routed), iPXE's
	// Information-request Reply (relayed), then the files.
	if err := stagesInOrder(stages, "dhcp-offer", "dhcp-ack", "tftp-done", "dhcp-ack", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
	// pxed answered relayed messages in Relay-Repl to the relay's port
	// 547, not the client directly (it is not on pxed's link).
	if !strings.Contains(pxed.Output(), "dst=[2001:db8::fe]:547") {
		t.Errorf("pxed sent no reply to the relay [2001:db8::fe]:547:\n%s", tail(pxed.Output(), 8<<10))
	}
	if !strings.Contains(dnsmasq.Output(), "DHCPREPLY(") || !strings.Contains(dnsmasq.Output(), "2001:db8:1::") {
		t.Errorf("the DHCPv6 address server gave no address on the client's segment through the relay:\n%s", dnsmasq.Output())
	}
	if strings.Contains(pxed.Output(), "level=ERROR") {
		t.Errorf("pxed logged errors:\n%s", pxed.Output())
	}
}

// captureIfAsked records iface in namespace ns with tcpdump into
// $PXED_CAPTURE_DIR/<test>-<name>.pcap when that variable is set: how the
// firmware captures under internal/*/testdata were made. It keeps UDP and
// ICMPv6 (neighbour discovery decides whether a reply reaches an IPv6
// client). The capture stops with the test.
func captureIfAsked(t *testing.T, ns, iface, name string) {
	t.Helper()
	dir := os.Getenv("PXED_CAPTURE_DIR")
	if dir == "" {
		return
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("PXED_CAPTURE_DIR is set: needs tcpdump (apt-get install tcpdump)")
	}
	file := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".pcap")
	if _, err := os.Stat(file); err == nil { // -count=N: keep every run's
		file = strings.TrimSuffix(file, ".pcap") + time.Now().Format("-150405") + ".pcap"
	}
	p := lab.Start(t, ns, "tcpdump", "-i", iface, "-U", "-s", "0", "-w", file, "udp or icmp6")
	lab.WaitFor(t, 10*time.Second, "tcpdump to listen", func() bool {
		return strings.Contains(p.Output(), "listening on") || p.Exited()
	})
	t.Logf("capturing %s in %s to %s", iface, ns, file)
}
