package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lab"
)

// The tests here run pxed as the only DHCP server of the lab (mode server)
// and lease addresses to clients nobody here wrote: busybox udhcpc,
// dhclient, and QEMU's OVMF and SeaBIOS firmware.

const serverRange = "192.0.2.100-192.0.2.200"

// startServerMode runs `pxed boot --dhcp-range` with its leases in dataDir.
func startServerMode(t *testing.T, n *lab.Net, dataDir string) *lab.Proc {
	t.Helper()
	return startPxed(t, n, "--dhcp-range", serverRange, "--data-dir", dataDir)
}

// clientHost is a lab host with no IPv4 address (only 2001:db8::/64), for
// a DHCP client to configure.
func clientHost(t *testing.T, n *lab.Net, name string, i int) *lab.Host {
	t.Helper()
	return n.AddHost(t, name, mustPrefix(fmt.Sprintf("2001:db8::%x/64", 0x100+i)))
}

type leaseRow struct {
	Address  string `json:"address"`
	State    string `json:"state"`
	MAC      string `json:"mac"`
	Client   string `json:"client"`
	Hostname string `json:"hostname"`
}

// leases runs `pxed leases --json` on dataDir.
func leases(t *testing.T, dataDir string) map[string]leaseRow {
	t.Helper()
	return leasesArgs(t, "--data-dir", dataDir)
}

// leasesArgs runs `pxed leases --json` with args (e.g. --store DSN); it
// fails the test on an address listed twice.
func leasesArgs(t *testing.T, args ...string) map[string]leaseRow {
	t.Helper()
	out, err := exec.Command(pxedBin, append([]string{"leases", "--json"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("pxed leases %v: %v\n%s", args, err, out)
	}
	var rows []leaseRow
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("pxed leases --json: %v\n%s", err, out)
	}
	m := map[string]leaseRow{}
	for _, r := range rows {
		if _, dup := m[r.Address]; dup {
			t.Fatalf("pxed leases lists %s twice:\n%s", r.Address, out)
		}
		m[r.Address] = r
	}
	return m
}

func writeScript(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func macOf(t *testing.T, ns, iface string) string {
	t.Helper()
	out, err := lab.Run(t, ns, "cat", "/sys/class/net/"+iface+"/address")
	if err != nil {
		t.Fatalf("mac of %s: %v", iface, err)
	}
	return strings.TrimSpace(out)
}

// lastField returns the value of key=value in the last line of log that
// starts with event.
func lastField(log, event, key string) string {
	val := ""
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != event {
			continue
		}
		for _, kv := range f[1:] {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				val = v
			}
		}
	}
	return val
}

// TestUdhcpcObtainRenewReleaseReboot: busybox udhcpc obtains a lease,
// renews it (SIGUSR1: unicast REQUEST, RFC 2131 §4.4.5 RENEWING), releases
// it (SIGUSR2: DHCPRELEASE) and, started again, gets the same address back.
func TestUdhcpcObtainRenewReleaseReboot(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox (apt-get install busybox) for udhcpc")
	}
	n := lab.NewNet(t)
	data := t.TempDir()
	pxed := startServerMode(t, n, data)
	h := clientHost(t, n, "udhcpc", 1)
	mac := macOf(t, h.NS, h.Iface)
	events := filepath.Join(t.TempDir(), "events")
	script := writeScript(t, `echo "$1 ip=$ip serverid=$serverid lease=$lease subnet=$subnet" >> `+events+`
case "$1" in bound|renew) ip addr replace "$ip/$subnet" dev "$interface" ;; deconfig) ip -4 addr flush dev "$interface" ;; esac
`)
	p := lab.Start(t, h.NS, "busybox", "udhcpc", "-i", h.Iface, "-f", "-s", script, "-t", "10", "-T", "2")
	lab.WaitFor(t, 30*time.Second, "udhcpc to bind", func() bool { return strings.Contains(readFile(events), "bound ") || p.Exited() })
	ip := lastField(readFile(events), "bound", "ip")
	if ip == "" || lastField(readFile(events), "bound", "serverid") != "192.0.2.1" || lastField(readFile(events), "bound", "lease") != "3600" {
		t.Fatalf("udhcpc did not bind from pxed:\n%s", readFile(events))
	}
	if l := leases(t, data)[ip]; l.State != "bound" || l.MAC != mac {
		t.Fatalf("pxed leases: %s is %+v, want bound to %s", ip, l, mac)
	}
	if out, err := exec.Command(pxedBin, "leases", "--data-dir", data).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "ADDRESS") || !strings.Contains(string(out), ip+" ") || !strings.Contains(string(out), mac) {
		t.Errorf("pxed leases (table): %v\n%s", err, out)
	}
	// The running server's view (GET /api/leases, offers in memory included).
	if out, err := lab.Run(t, n.NS(), pxedBin, "leases", "--server", "192.0.2.1:8080"); err != nil ||
		!strings.Contains(out, ip+" ") || !strings.Contains(out, "bound") || !strings.Contains(out, mac) {
		t.Errorf("pxed leases --server (table): %v\n%s", err, out)
	}
	var rows []leaseRow
	if out, err := lab.Run(t, n.NS(), pxedBin, "leases", "--server", "http://192.0.2.1:8080/", "--json"); err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Errorf("pxed leases --server --json: %v\n%s", err, out)
	}
	if len(rows) != 1 || rows[0].Address != ip || rows[0].State != "bound" || rows[0].MAC != mac {
		t.Errorf("pxed leases --server --json = %+v, want %s bound to %s", rows, ip, mac)
	}
	// udhcpc sets no broadcast bit: RFC 2131 §4.1 unicast to yiaddr at chaddr (SIOCSARP).
	if !strings.Contains(pxed.Output(), "dst="+ip+":68") {
		t.Errorf("no reply was unicast to %s:68; pxed log:\n%s", ip, pxed.Output())
	}

	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, 20*time.Second, "udhcpc to renew", func() bool { return strings.Contains(readFile(events), "renew ") })
	if got := lastField(readFile(events), "renew", "ip"); got != ip {
		t.Fatalf("renewed %s, want %s:\n%s", got, ip, readFile(events))
	}

	if err := p.Cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, 20*time.Second, "the lease to be released", func() bool { return leases(t, data)[ip].State == "released" })
	p.Stop()

	out, err := lab.Run(t, h.NS, "busybox", "udhcpc", "-i", h.Iface, "-f", "-q", "-n", "-s", script, "-t", "5", "-T", "2")
	if err != nil {
		t.Fatalf("udhcpc again: %v\n%s", err, out)
	}
	if got := lastField(readFile(events), "bound", "ip"); got != ip {
		t.Fatalf("after release and restart bound %s, want the same %s (RFC 2131 §4.3.1 previous address)", got, ip)
	}
	out, err = lab.Run(t, h.NS, "busybox", "udhcpc", "-i", h.Iface, "-f", "-q", "-n", "-s", script, "-r", ip, "-t", "5", "-T", "2")
	if err != nil || lastField(readFile(events), "bound", "ip") != ip {
		t.Fatalf("udhcpc -r %s: %v\n%s\n%s", ip, err, out, readFile(events))
	}
}

// TestDhclientObtainRebootRelease: ISC dhclient obtains a lease, starts
// again from its lease file (INIT-REBOOT, RFC 2131 §4.3.2: REBOOT with the
// same address) and releases it with -r.
func TestDhclientObtainRebootRelease(t *testing.T) {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("needs dhclient (apt-get install isc-dhcp-client)")
	}
	n := lab.NewNet(t)
	data := t.TempDir()
	startServerMode(t, n, data)
	h := clientHost(t, n, "dhclient", 2)
	dir := t.TempDir()
	events, leaseFile, pidFile := filepath.Join(dir, "events"), filepath.Join(dir, "leases"), filepath.Join(dir, "pid")
	script := writeScript(t, `echo "$reason ip=$new_ip_address server=$new_dhcp_server_identifier" >> `+events+`
case "$reason" in BOUND|RENEW|REBOOT|REBIND) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;; RELEASE|EXPIRE|STOP) ip -4 addr flush dev "$interface" ;; esac
`)
	args := []string{"-4", "-v", "-1", "-d", "-sf", script, "-lf", leaseFile, "-pf", pidFile, h.Iface}
	p := lab.Start(t, h.NS, "dhclient", args...)
	lab.WaitFor(t, 40*time.Second, "dhclient to bind", func() bool { return strings.Contains(readFile(events), "BOUND ") || p.Exited() })
	ip := lastField(readFile(events), "BOUND", "ip")
	if ip == "" || lastField(readFile(events), "BOUND", "server") != "192.0.2.1" {
		t.Fatalf("dhclient did not bind from pxed:\n%s\n%s", readFile(events), p.Output())
	}
	p.Stop()

	p = lab.Start(t, h.NS, "dhclient", args...)
	lab.WaitFor(t, 40*time.Second, "dhclient to reboot", func() bool { return strings.Contains(readFile(events), "REBOOT ") || p.Exited() })
	if got := lastField(readFile(events), "REBOOT", "ip"); got != ip {
		t.Fatalf("INIT-REBOOT gave %q, want %s:\n%s\n%s", got, ip, readFile(events), p.Output())
	}

	out, err := lab.Run(t, h.NS, "dhclient", "-4", "-v", "-r", "-sf", script, "-lf", leaseFile, "-pf", pidFile, h.Iface)
	if err != nil {
		t.Fatalf("dhclient -r: %v\n%s", err, out)
	}
	lab.WaitFor(t, 20*time.Second, "the lease to be released", func() bool { return leases(t, data)[ip].State == "released" })
}

// TestServerModeBootsFirmware boots OVMF and SeaBIOS+iPXE to the lab
// marker with pxed as the only DHCP server: address and boot info in one
// reply.
func TestServerModeBootsFirmware(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (30-40 s each under TCG); not in -short")
	}
	n := lab.NewNet(t)
	data := t.TempDir()
	startServerMode(t, n, data)
	for _, tc := range []struct {
		fw  lab.Firmware
		mac string
	}{
		{lab.UEFI, "52:54:00:00:04:01"},
		{lab.BIOS, "52:54:00:00:04:02"},
	} {
		t.Run(tc.fw.String(), func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: tc.fw, MAC: tc.mac, Timeout: 5 * time.Minute})
			vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
			t.Logf("%s: %s after %v", tc.fw, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			bound := false
			for _, l := range leases(t, data) {
				bound = bound || (l.MAC == tc.mac && l.State == "bound")
			}
			if !bound {
				t.Errorf("no bound lease for %s in pxed leases: %v", tc.mac, leases(t, data))
			}
		})
	}
}

// TestServerModeCrashSafety runs many udhcpc clients (one per macvlan
// interface, each with its own MAC) against pxed, kills pxed with SIGKILL
// (the whole process group) after some of them got an ACK, restarts it on
// the same data dir and lets the rest finish. Then no address may have
// been acknowledged to two clients, and every acknowledged lease must be
// in `pxed leases` bound to its client.
func TestServerModeCrashSafety(t *testing.T) {
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Skip("needs busybox (apt-get install busybox) for udhcpc")
	}
	const clients = 100
	n := lab.NewNet(t)
	data := t.TempDir()
	kernel, initrd := lab.Assets(t)
	conf := filepath.Join(t.TempDir(), "pxed.yaml")
	yaml := fmt.Sprintf(`interfaces: [%s]
data_dir: %s
tftp_addr: 192.0.2.1:69
http_addr: 192.0.2.1:8080
dhcp:
  mode: server
  probe_timeout: "off"
  subnets:
    - interface: %s
      prefix: 192.0.2.0/24
      ranges: [192.0.2.10-192.0.2.250]
      lease_time: 1h
      authoritative: true
profiles:
  default:
    kernel: %s
    initrds: [%s]
`, n.Bridge(), data, n.Bridge(), kernel, initrd)
	if err := os.WriteFile(conf, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *lab.Proc {
		p := lab.Start(t, n.NS(), pxedBin, "serve", "--config", conf)
		waitServing(t, n, p)
		return p
	}
	pxed := start()

	h := clientHost(t, n, "many", 3)
	macs := addMacvlans(t, h, clients)
	events := filepath.Join(t.TempDir(), "events")
	script := writeScript(t, `[ "$1" = bound ] && echo "bound $interface $ip" >> `+events+"\nexit 0\n")
	var procs []*lab.Proc
	for i := range clients {
		procs = append(procs, lab.Start(t, h.NS, "busybox", "udhcpc", "-i", fmt.Sprintf("mv%d", i), "-f", "-q", "-n",
			"-s", script, "-t", "40", "-T", "1", "-A", "1"))
	}
	bound := func() int { return strings.Count(readFile(events), "bound ") }
	atKill := killMidRun(t, pxed, bound, clients)
	start()
	lab.WaitFor(t, 90*time.Second, "every udhcpc to finish", func() bool {
		for _, p := range procs {
			if !p.Exited() {
				return false
			}
		}
		return true
	})

	acked := map[string]string{} // address → interface
	for _, line := range strings.Split(strings.TrimSpace(readFile(events)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		if prev, dup := acked[f[2]]; dup && prev != f[1] {
			t.Errorf("%s acknowledged to %s and to %s", f[2], prev, f[1])
		}
		acked[f[2]] = f[1]
	}
	rows := leases(t, data) // fails on an address listed twice
	for addr, ifc := range acked {
		if r := rows[addr]; r.State != "bound" || r.MAC != macs[ifc] {
			t.Errorf("acknowledged lease %s for %s (%s) is %+v in pxed leases after the crash", addr, ifc, macs[ifc], r)
		}
	}
	if atKill >= clients {
		t.Errorf("SIGKILL landed after every client was bound: the crash was not mid-run")
	}
	t.Logf("%d clients, %d bound before SIGKILL, %d bound in all, %d lease rows", clients, atKill, len(acked), len(rows))
	if len(acked) != clients {
		t.Errorf("%d of %d clients got a lease", len(acked), clients)
	}
}
