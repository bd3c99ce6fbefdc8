package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/client"
	"pxed/internal/lab"
)

// runStorm runs `pxed storm --json` on host h and decodes its report; code
// is the exit status, stderr the progress line.
func runStorm(t *testing.T, h *lab.Host, args ...string) (*client.StormReport, int, string) {
	t.Helper()
	var r client.StormReport
	code, progress := runJSON(t, h, 4*time.Minute, "storm", &r, args...)
	t.Logf("storm %v: exit %d: booted %d failed %d in %.2f s, retries %v, failures %v, socket %+v",
		args, code, r.Booted, r.Failed, r.Seconds, r.Retries, r.Failures, r.Socket)
	for _, s := range r.Stages {
		t.Logf("  %-16s n=%d p50=%v p95=%v p99=%v max=%v", s.Stage, s.Count, s.P50, s.P95, s.P99, s.Max)
	}
	return &r, code, progress
}

func stage(r *client.StormReport, name string) client.StageStats {
	for _, s := range r.Stages {
		if s.Stage == name {
			return s
		}
	}
	return client.StageStats{Stage: name}
}

// stormLab starts an address-only dnsmasq with 245 addresses and pxed's
// ProxyDHCP, and returns the host the storm runs on.
func stormLab(t *testing.T) (*lab.Net, *lab.Host) {
	n := lab.NewNet(t)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.10", "192.0.2.254")
	startPxed(t, n)
	return n, n.AddHost(t, "storm", mustPrefix("192.0.2.3/24"))
}

// TestStormPxed boots 200 simulated machines (UEFI and BIOS PXE, distinct
// MACs on one raw socket) at once through an address-only dnsmasq and
// pxed's ProxyDHCP, boot server discovery and TFTP, fetching the NBP.
func TestStormPxed(t *testing.T) {
	n, h := stormLab(t)
	const machines = 200
	{
		r, code, progress := runStorm(t, h, "--clients", "200", "--arch", "efi-x64,bios", "--fetch", "--timeout-scale", "0.5")
		if code != 0 || r.Booted != machines || r.Failed != 0 {
			t.Fatalf("exit %d: booted %d failed %d (%v, e.g. %v), want all %d booted", code, r.Booted, r.Failed, r.Failures, r.Examples, machines)
		}
		// Every machine went through each stage once: DHCP with dnsmasq,
		// boot server discovery on port 4011 with pxed for EDK II (a
		// ProxyBinl offer; BIOS loads the ProxyPxe10 offer's file), the NBP
		// over TFTP.
		for st, want := range map[string]int{client.StageDiscover: machines, client.StageRequest: machines,
			client.StageBootServer: machines / 2, client.StageNBP: machines, client.StageTotal: machines} {
			if s := stage(r, st); s.Count != want || s.P50 <= 0 || s.P50 > s.P95 || s.P95 > s.P99 || s.P99 > s.Max {
				t.Errorf("stage %s = %+v, want %d ordered samples", st, s, want)
			}
		}
		// undionly.kpxe (74213 bytes) for half, snponly.efi (173792) for the other half.
		if want := int64(machines/2*74213 + machines/2*173792); r.Bytes != want {
			t.Errorf("bytes = %d, want %d", r.Bytes, want)
		}
		if r.Socket == nil || r.Socket.ARPReplies == 0 {
			t.Errorf("socket stats %+v: want ARP answered for the leased addresses (boot server replies go to ciaddr)", r.Socket)
		}
		if !strings.Contains(progress, "booted 200") {
			t.Errorf("progress line does not end with all booted: %q", lastLine(progress))
		}
		// pxed saw the machines as distinct clients.
		if evs := timeline(t, n, client.StormMAC(nil, machines-1).String()); len(evs) == 0 {
			t.Errorf("pxed has no timeline for the last simulated machine")
		}
	}
}

// TestStormPxedIPXE boots iPXE machines: script, kernel and initrd over
// HTTP from pxed.
func TestStormPxedIPXE(t *testing.T) {
	_, h := stormLab(t)
	{
		r, code, _ := runStorm(t, h, "--clients", "20", "--arch", "ipxe-efi,ipxe-bios", "--fetch", "--verify", "--timeout-scale", "0.25",
			"--mac-prefix", "02:70:79")
		if code != 0 || r.Booted != 20 {
			t.Fatalf("exit %d: booted %d failed %d (%v, e.g. %v)", code, r.Booted, r.Failed, r.Failures, r.Examples)
		}
		for _, st := range []string{client.StageScript, client.StageKernel, client.StageInitrd} {
			if s := stage(r, st); s.Count != 20 {
				t.Errorf("stage %s count %d, want 20", st, s.Count)
			}
		}
		// --verify: every machine got the bytes of the files pxed serves.
		kernel, initrd := lab.Assets(t)
		want := map[string]string{"kernel " + filepath.Base(kernel): fileSHA256(t, kernel), "initrd " + filepath.Base(initrd): fileSHA256(t, initrd)}
		if !maps.Equal(r.SHA256, want) {
			t.Errorf("sha256 = %v, want %v", r.SHA256, want)
		}
	}
}

// TestStormMachineAddrs: with --machine-addrs each machine downloads from
// the address it leased, so pxed sees one client per machine and puts each
// machine's script and kernel on that machine's own timeline (attributed by
// the address its DHCP exchange used, never by the MAC in the URL).
func TestStormMachineAddrs(t *testing.T) {
	n, h := stormLab(t)
	const machines = 10
	r, code, _ := runStorm(t, h, "--clients", "10", "--arch", "ipxe-efi", "--fetch", "--machine-addrs", "--timeout-scale", "0.25",
		"--mac-prefix", "02:70:7a")
	if code != 0 || r.Booted != machines {
		t.Fatalf("exit %d: booted %d failed %d (%v, e.g. %v)", code, r.Booted, r.Failed, r.Failures, r.Examples)
	}
	for i := 1; i <= machines; i++ {
		mac := fmt.Sprintf("02:70:7a:00:00:%02x", i)
		evs := timeline(t, n, mac)
		if err := stagesInOrder(evs, "dhcp-offer", "script", "kernel"); err != nil {
			t.Errorf("machine %s: %v: %+v", mac, err, evs)
		}
		for _, e := range evs {
			if e.Stage == "claim-mismatch" {
				t.Errorf("machine %s: claim-mismatch %q: its downloads came from another machine's address", mac, e.Detail)
			}
		}
	}
	// The addresses were put on the interface for the boot only.
	if out, err := lab.Run(t, h.NS, "ip", "-4", "-o", "addr", "show"); err != nil || strings.Count(out, "/32") != 0 {
		t.Errorf("addresses left on the storm host (%v):\n%s", err, out)
	}
}

// TestStormNoServer: nobody answers; every machine fails with no-offer and
// storm exits 1.
func TestStormNoServer(t *testing.T) {
	n := lab.NewNet(t)
	h := n.AddHost(t, "storm", mustPrefix("192.0.2.3/24"))
	r, code, _ := runStorm(t, h, "--clients", "5", "--arch", "bios", "--timeout-scale", "0.02")
	if code != 1 || r.Booted != 0 || r.Failures["no-offer"] != 5 {
		t.Errorf("exit %d booted %d failures %v, want exit 1 and 5 no-offer", code, r.Booted, r.Failures)
	}
	if r.Retries["DISCOVER"] != 5*(len(client.Windows)-1) {
		t.Errorf("DISCOVER retries = %d, want %d", r.Retries["DISCOVER"], 5*(len(client.Windows)-1))
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

func fileSHA256(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
