package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// The tests here run pxed as the lab's stateful DHCPv6 server and lease
// IA_NA addresses to clients nobody here wrote: ISC dhclient -6 and OVMF.

const serverRange6 = "2001:db8::1000-2001:db8::10ff"

// startServer6 runs `pxed serve` as the DHCPv6 server (and ProxyDHCP for
// IPv4) with leases in dataDir; extra is appended to the dhcp6 section.
func startServer6(t *testing.T, n *lab.Net, dataDir, extra string) *lab.Proc {
	t.Helper()
	kernel, initrd := lab.Assets(t)
	conf := filepath.Join(t.TempDir(), "pxed.yaml")
	yaml := fmt.Sprintf(`interfaces: [%s]
data_dir: %s
tftp_addr: ":69"
http_addr: ":8080"
log_level: debug
dhcp6:
  mode: server
  subnets:
    - interface: %s
      prefix: 2001:db8::/64
      ranges: [%s]
      dns: [2001:db8::53]
      domain_search: [lab.example]
%s
profiles:
  default:
    kernel: %s
    initrds: [%s]
    cmdline: console=ttyS0 panic=-1
`, n.Bridge(), dataDir, n.Bridge(), serverRange6, extra, kernel, initrd)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, n.NS(), pxedBin, "serve", "--config", conf)
	waitServing(t, n, p)
	return p
}

// TestDhclient6ObtainRenewReleaseAgain: ISC dhclient -6 obtains an address
// from the range (Solicit/Advertise/Request/Reply) with the DNS and
// search list, confirms it again after a restart (Confirm), renews it at
// T1 (Renew), releases it with -r (Release), and gets the same address
// again afterwards; `pxed leases` shows each state.
func TestDhclient6ObtainRenewReleaseAgain(t *testing.T) {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("needs dhclient (apt-get install isc-dhcp-client)")
	}
	n := lab.NewNet(t)
	data := t.TempDir()
	// lease 1m, preferred 40s: T1 = 20 s, so the renewal comes quickly.
	startServer6(t, n, data, "      lease_time: 1m\n      preferred_time: 40s\n")
	h := clientHost(t, n, "dhclient6", 6)
	waitLinkLocal(t, h)
	dir := t.TempDir()
	events, leaseFile, pidFile := filepath.Join(dir, "events"), filepath.Join(dir, "leases"), filepath.Join(dir, "pid")
	script := writeScript(t, `echo "$reason ip=$new_ip6_address dns=$new_dhcp6_name_servers search=$new_dhcp6_domain_search" >> `+events+`
exit 0
`)
	args := []string{"-6", "-v", "-1", "-d", "-sf", script, "-lf", leaseFile, "-pf", pidFile, h.Iface}
	p := lab.Start(t, h.NS, "dhclient", args...)
	lab.WaitFor(t, 40*time.Second, "dhclient -6 to bind", func() bool { return strings.Contains(readFile(events), "BOUND6 ") || p.Exited() })
	ip := lastField(readFile(events), "BOUND6", "ip")
	if ip == "" || !strings.HasPrefix(ip, "2001:db8::10") {
		t.Fatalf("dhclient -6 did not bind from pxed's range:\n%s\n%s", readFile(events), p.Output())
	}
	if dns := lastField(readFile(events), "BOUND6", "dns"); dns != "2001:db8::53" {
		t.Errorf("DNS servers %q, want 2001:db8::53:\n%s", dns, readFile(events))
	}
	row := leases(t, data)[ip]
	if row.State != "bound" || !strings.HasPrefix(row.Client, "ff:") {
		t.Fatalf("pxed leases: %s is %+v, want bound to a DUID+IAID key", ip, row)
	}
	// Renew at T1 (20 s).
	lab.WaitFor(t, 60*time.Second, "dhclient -6 to renew", func() bool { return strings.Contains(readFile(events), "RENEW6 ") || p.Exited() })
	if got := lastField(readFile(events), "RENEW6", "ip"); got != ip {
		t.Fatalf("renewed %q, want %s:\n%s", got, ip, readFile(events))
	}
	p.Stop()

	// Restarted with its lease file, dhclient confirms the address.
	p = lab.Start(t, h.NS, "dhclient", args...)
	lab.WaitFor(t, 40*time.Second, "dhclient -6 to confirm", func() bool {
		e := readFile(events)
		return strings.Count(e, "BOUND6 ")+strings.Count(e, "REBOOT6 ") >= 2 || p.Exited()
	})
	if got := lastField(readFile(events), "REBOOT6", "ip") + lastField(readFile(events), "BOUND6", "ip"); !strings.Contains(got, ip) {
		t.Fatalf("after a restart dhclient has %q, want %s:\n%s\n%s", got, ip, readFile(events), p.Output())
	}
	p.Stop()

	out, err := lab.Run(t, h.NS, "dhclient", "-6", "-v", "-r", "-sf", script, "-lf", leaseFile, "-pf", pidFile, h.Iface)
	if err != nil {
		t.Fatalf("dhclient -6 -r: %v\n%s", err, out)
	}
	lab.WaitFor(t, 20*time.Second, "the lease to be released", func() bool { return leases(t, data)[ip].State == "released" })

	// A new start with no lease but the same DUID (dhclient keeps it in
	// the lease file): a Solicit, and the same address again, bound.
	var duid string
	for _, line := range strings.Split(readFile(leaseFile), "\n") {
		if strings.HasPrefix(line, "default-duid ") {
			duid = line + "\n"
		}
	}
	if duid == "" {
		t.Fatalf("no default-duid in dhclient's lease file:\n%s", readFile(leaseFile))
	}
	if err := os.WriteFile(leaseFile, []byte(duid), 0o644); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(readFile(events), "BOUND6 ")
	p = lab.Start(t, h.NS, "dhclient", args...)
	lab.WaitFor(t, 40*time.Second, "dhclient -6 to bind again", func() bool {
		return strings.Count(readFile(events), "BOUND6 ") > before || p.Exited()
	})
	if got := lastField(readFile(events), "BOUND6", "ip"); got != ip {
		t.Fatalf("after release dhclient got %q, want %s again:\n%s", got, ip, readFile(events))
	}
	p.Stop()
	if row := leases(t, data)[ip]; row.State != "bound" {
		t.Fatalf("pxed leases: %s is %+v, want bound again", ip, row)
	}
}

// waitLinkLocal waits until the host's link-local address has passed
// duplicate address detection: a DHCPv6 client binds to it (port 546).
func waitLinkLocal(t *testing.T, h *lab.Host) {
	t.Helper()
	lab.WaitFor(t, 10*time.Second, "a link-local address on "+h.Iface, func() bool {
		out, err := lab.Run(t, h.NS, "ip", "-6", "addr", "show", "dev", h.Iface, "scope", "link")
		return err == nil && strings.Contains(out, "fe80:") && !strings.Contains(out, "tentative")
	})
}

// TestServerRoleIPv6OnlyBootsOVMF: a segment with no IPv4 service at all
// (pxed's DHCPv4 off) where pxed is the DHCPv6 server and sends the router
// advertisements (M flag: machines ask DHCPv6 for addresses). An OVMF
// machine with PXE over IPv6 only gets address and boot file in one
// Advertise (EDK II's DhcpBinl offer), loads snponly.efi over TFTP on
// IPv6; its iPXE solicits an address (stateful, as the M flag says) and
// gets its script URL in the same Reply; kernel and initrd come over HTTP
// on IPv6. A second machine HTTP-Boots an ISO over IPv6 from the same
// server role.
func TestServerRoleIPv6OnlyBootsOVMF(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (about 3 minutes under TCG); not in -short")
	}
	n := lab.NewNet(t)
	if out, err := lab.Run(t, n.NS(), "sysctl", "-qw", "net.ipv6.conf."+n.Bridge()+".accept_ra=0"); err != nil {
		t.Fatalf("sysctl: %v\n%s", err, out)
	}
	captureIfAsked(t, n.NS(), n.Bridge(), "bridge")
	kernel, initrd := lab.Assets(t)
	iso := buildLiveISO(t)
	data := t.TempDir()
	pxed := startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: `+data+`
tftp_addr: ":69"
http_addr: ":8080"
log_level: debug
dhcp:
  mode: "off"
dhcp6:
  mode: server
  range: `+serverRange6+`
router_advertisements:
  enabled: true
  managed: true
default_profile: linux
profiles:
  linux:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
    cmdline: console=ttyS0 panic=-1
  live:
    image: `+iso+`
machines:
  "52:54:00:00:0b:02": live
`)
	for _, tc := range []struct {
		name, mac, option string
		fwcfg             []string
		stages            []string
	}{
		{"pxe", "52:54:00:00:0b:01", `"UEFI PXEv6`, []string{"name=opt/org.tianocore/IPv4PXESupport,string=no"},
			[]string{"dhcp-offer", "dhcp-ack", "tftp-done", "dhcp-offer", "dhcp-ack", "script", "kernel", "initrd"}},
		{"http-iso", "52:54:00:00:0b:02", `"UEFI HTTPv6`, uefiHTTPOnly, []string{"dhcp-offer", "dhcp-ack", "image"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: tc.mac, Timeout: 6 * time.Minute, FwCfg: tc.fwcfg})
			vm.WaitSerial(t, lab.BootMarker, 5*time.Minute)
			t.Logf("%s: %s after %v", tc.name, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			if line := bootLine(vm.Serial()); !strings.Contains(line, tc.option) {
				t.Errorf("the boot option started was not %s: %q", tc.option, line)
			}
			evs := logTimeline(t, n, tc.mac)
			var stages []event
			for _, e := range evs {
				stages = append(stages, event{Stage: e.Stage, Detail: e.Detail, Bytes: e.Bytes})
				switch e.Stage {
				case "tftp-done", "http", "image", "script", "kernel", "initrd":
					if a, err := netip.ParseAddr(e.IP); err != nil || !a.Is6() || a.Is4In6() || !strings.HasPrefix(e.IP, "2001:db8::10") {
						t.Errorf("%s from %q: want an address pxed leased", e.Stage, e.IP)
					}
				}
			}
			if err := stagesInOrder(stages, tc.stages...); err != nil {
				t.Error(err)
			}
			// The firmware releases its address before it starts what it
			// loaded (iPXE's stays bound): the row stays, with the MAC.
			rows := 0
			for _, l := range leases(t, data) {
				if l.MAC == tc.mac && strings.HasPrefix(l.Address, "2001:db8::10") && strings.HasPrefix(l.Client, "ff:") {
					rows++
				}
			}
			if rows == 0 {
				t.Errorf("no IPv6 lease of %s in pxed leases: %v", tc.mac, leases(t, data))
			}
		})
	}
	if strings.Contains(pxed.Output(), "level=ERROR") {
		t.Errorf("pxed logged errors:\n%s", pxed.Output())
	}
}

// TestRelayedDHCPv6Server: ISC dhclient -6 on a segment pxed is not on,
// behind a router running ISC dhcrelay -6 (the routed lab of
// TestRelayedDHCPv6BootsOVMF), gets an address from the subnet pxed
// serves for that segment, chosen by the Relay-Forw's link address; the
// Advertise and Reply go back in Relay-Repl through the relay.
func TestRelayedDHCPv6Server(t *testing.T) {
	for _, bin := range []string{"/usr/sbin/dhcrelay", "dhclient"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt-get install isc-dhcp-relay isc-dhcp-client)", bin)
		}
	}
	n := lab.NewNet(t)
	kernel, initrd := lab.Assets(t)
	data := t.TempDir()
	pxed := startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: `+data+`
tftp_addr: ":69"
http_addr: ":8080"
log_level: debug
dhcp:
  mode: "off"
dhcp6:
  subnets:
    - interface: %[1]s
      prefix: 2001:db8::/64
      ranges: [`+serverRange6+`]
    - prefix: `+clientPrefix6.String()+`
      ranges: [2001:db8:1::1000-2001:db8:1::10ff]
profiles:
  linux:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
`)
	clients := routedSegment(t, n)
	relay := lab.Start(t, clients.NS(), "/usr/sbin/dhcrelay", "-6", "-d", "-pf", filepath.Join(t.TempDir(), "dhcrelay.pid"),
		"-l", clients.Bridge(), "-u", "2001:db8::1%up0")
	lab.WaitFor(t, 10*time.Second, "dhcrelay to listen", func() bool {
		return strings.Contains(relay.Output(), "Listening on") || relay.Exited()
	})
	if relay.Exited() {
		t.Fatalf("dhcrelay exited: %v\n%s", relay.Err(), relay.Output())
	}
	h := clients.AddHost(t, "dhclient6r", netip.Prefix{})
	waitLinkLocal(t, h)
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	script := writeScript(t, `echo "$reason ip=$new_ip6_address" >> `+events+"\nexit 0\n")
	p := lab.Start(t, h.NS, "dhclient", "-6", "-v", "-1", "-d", "-sf", script, "-lf", filepath.Join(dir, "leases"),
		"-pf", filepath.Join(dir, "pid"), h.Iface)
	lab.WaitFor(t, 40*time.Second, "dhclient -6 to bind through the relay", func() bool {
		return strings.Contains(readFile(events), "BOUND6 ") || p.Exited()
	})
	ip := lastField(readFile(events), "BOUND6", "ip")
	if a, err := netip.ParseAddr(ip); err != nil || !strings.HasPrefix(ip, "2001:db8:1::10") {
		t.Fatalf("dhclient -6 bound %q (%v), want an address of the relayed subnet:\n%s\n%s", ip, a, readFile(events), p.Output())
	}
	if l := leases(t, data)[ip]; l.State != "bound" {
		t.Errorf("pxed leases: %s is %+v, want bound", ip, l)
	}
	if !strings.Contains(pxed.Output(), "dst=[2001:db8::fe]:547") {
		t.Errorf("pxed sent no Relay-Repl to the relay [2001:db8::fe]:547:\n%s", tail(pxed.Output(), 8<<10))
	}
	p.Stop()
}
