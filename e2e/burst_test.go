package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// A rack powering on right after pxed (re)starts: 1,000 new clients
// against a fresh server in the server role with the default settings
// (address probing on, 300 ms). Each free address is probed first; the
// probes used to be ICMP echoes, each of which left an INCOMPLETE, then
// FAILED, entry in the host's neighbour table (1,024 entries for all
// namespaces by default), and past that the kernel dropped DHCP packets:
// a quarter of a first burst was lost. Probes of on-link addresses are now
// ARP probes (RFC 5227), which create no entry, and the server has enough
// workers for the probes in flight.

// burstLab is the lab bridge with a /15 from the benchmark range instead
// of its usual /24, a host on it, and a fresh pxed leasing 4,096 addresses
// of the /15 with the default settings.
func burstLab(t *testing.T) (*lab.Net, *lab.Host, *lab.Proc, string) {
	t.Helper()
	n := lab.NewNet(t)
	for _, args := range [][]string{{"del", "192.0.2.1/24"}, {"add", "198.18.0.1/15"}} {
		if out, err := lab.Run(t, n.NS(), "ip", "addr", args[0], args[1], "dev", n.Bridge()); err != nil {
			t.Fatalf("ip addr %v: %v\n%s", args, err, out)
		}
	}
	h := n.AddHost(t, "burst", mustPrefix("198.18.0.2/15"))
	kernel, initrd := lab.Assets(t)
	data := t.TempDir()
	p := lab.Start(t, n.NS(), pxedBin, "boot", "--interface", n.Bridge(), "--kernel", kernel, "--initrd", initrd,
		"--http-addr", "198.18.0.1:8080", "--tftp-addr", "198.18.0.1:69", "--data-dir", data,
		"--dhcp-range", "198.18.1.0-198.18.16.255")
	lab.WaitFor(t, 15*time.Second, "pxed to serve HTTP", func() bool {
		_, err := lab.Run(t, n.NS(), "curl", "-sf", "http://198.18.0.1:8080/healthz")
		return err == nil || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("pxed exited: %v\n%s", p.Err(), p.Output())
	}
	return n, h, p, data
}

// neighbourEntries counts the entries of the server namespace's neighbour
// table that are not usable: INCOMPLETE or FAILED resolutions.
func neighbourEntries(t *testing.T, ns string) int {
	t.Helper()
	out, err := lab.Run(t, ns, "ip", "-4", "neigh", "show")
	if err != nil {
		t.Fatalf("ip neigh: %v\n%s", err, out)
	}
	return strings.Count(out, "INCOMPLETE") + strings.Count(out, "FAILED")
}

// TestFreshServerBurstPerfdhcp: perfdhcp (as a relay agent, each exchange a
// new client) at 500 DISCOVERs/s for 5 s (the burst of the bug report) against a server started a moment
// before. Every DISCOVER gets its OFFER and every REQUEST its ACK: perfdhcp
// counts an exchange lost after 4 s (-d 4, the firmware's first DISCOVER
// retransmission), so CPU noise on a busy machine is not a loss.
func TestFreshServerBurstPerfdhcp(t *testing.T) {
	if _, err := exec.LookPath("perfdhcp"); err != nil {
		t.Skip("needs perfdhcp (apt-get install kea-admin)")
	}
	const rate, seconds = 500, 5
	n, h, _, data := burstLab(t)
	out, err := lab.Run(t, h.NS, "perfdhcp", "-4", "-g", "single", "-l", h.Iface, "-r", strconv.Itoa(rate), "-R", "100000",
		"-p", strconv.Itoa(seconds), "-d", "4", "-W", "4000000", "198.18.0.1")
	if err != nil && !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("perfdhcp: %v\n%s", err, out)
	}
	r := parsePerfdhcp(out)
	for _, ex := range []string{"DISCOVER-OFFER", "REQUEST-ACK"} {
		s := r.stats[ex]
		t.Logf("%s: sent %d, received %d", ex, s.sent, s.received)
		if s.sent < rate*seconds*9/10 {
			t.Fatalf("%s: perfdhcp sent %d, want about %d:\n%s", ex, s.sent, rate*seconds, out)
		}
		if s.received != s.sent {
			t.Errorf("%s: %d of %d lost against a fresh server", ex, s.sent-s.received, s.sent)
		}
	}
	if k := neighbourEntries(t, n.NS()); k != 0 {
		t.Errorf("%d INCOMPLETE/FAILED neighbour entries in the server's namespace: address probes resolve addresses", k)
	}
	bound := 0
	for _, row := range leases(t, data) { // fails on an address listed twice
		if row.State == "bound" {
			bound++
		}
	}
	if ra := r.stats["REQUEST-ACK"]; bound < ra.received {
		t.Errorf("%d leases bound, want at least the %d ACKs perfdhcp got", bound, ra.received)
	}
}

// TestFreshServerBurstStorm: `pxed storm` starts 1,000 PXE machines at once
// against a server started a moment before; every one gets its address
// and boot file with no DHCP failure.
func TestFreshServerBurstStorm(t *testing.T) {
	n, h, _, _ := burstLab(t)
	const machines = 1000
	r, code, _ := runStorm(t, h, "--clients", "1000", "--arch", "efi-x64,bios")
	if code != 0 || r.Booted != machines || r.Failed != 0 {
		t.Fatalf("exit %d: booted %d failed %d (%v, e.g. %v), want all %d", code, r.Booted, r.Failed, r.Failures, r.Examples, machines)
	}
	if k := neighbourEntries(t, n.NS()); k != 0 {
		t.Errorf("%d INCOMPLETE/FAILED neighbour entries in the server's namespace: address probes resolve addresses", k)
	}
}
