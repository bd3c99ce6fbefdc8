package e2e

import (
	"strings"
	"testing"

	"pxed/internal/client"
	"pxed/internal/lab"
)

// TestStormIPv6 boots 20 simulated EDK II machines over IPv6 at once:
// each Solicits with its own DUID-LLT, gets an address from dnsmasq
// (DHCPv6, 2001:db8::100-1ff) and the boot file from pxed's boot service
// on [2001:db8::1]:4011, loads snponly.efi over TFTP on IPv6, then, as
// iPXE, asks pxed for its script with an Information-request and loads
// the script, kernel and initrd over HTTP on IPv6. The storm host
// downloads from its own address 2001:db8::3 (the leases are not put on
// its interface).
func TestStormIPv6(t *testing.T) {
	n := lab.NewNet(t)
	dnsmasq := startAddressServer6(t, n)
	startPxed(t, n, "--tftp-addr", ":69", "--http-addr", ":8080")
	h := n.AddHost(t, "storm", mustPrefix("2001:db8::3/64"))
	const machines = 20
	r, code, progress := runStorm(t, h, "--ipv6", "--clients", "20", "--arch", "efi-x64", "--fetch", "--chain", "--verify",
		"--timeout-scale", "0.25", "--mac-prefix", "02:70:7b")
	if code != 0 || r.Booted != machines || r.Failed != 0 {
		t.Fatalf("exit %d: booted %d failed %d (%v, e.g. %v), want all %d booted", code, r.Booted, r.Failed, r.Failures, r.Examples, machines)
	}
	for _, st := range []string{client.StageDiscover, client.StageRequest, client.StageBootServer, client.StageInfoRequest,
		client.StageNBP, client.StageScript, client.StageKernel, client.StageInitrd, client.StageTotal} {
		if s := stage(r, st); s.Count != machines || s.P50 <= 0 || s.P50 > s.P95 || s.P95 > s.Max {
			t.Errorf("stage %s = %+v, want %d ordered samples", st, s, machines)
		}
	}
	if want := fileSHA(t, "/usr/lib/ipxe/snponly.efi"); r.SHA256["nbp snponly.efi"] != want {
		t.Errorf("sha256 %v, want nbp snponly.efi %s", r.SHA256, want)
	}
	if !strings.Contains(progress, "booted 20") {
		t.Errorf("progress line does not end with all booted: %q", lastLine(progress))
	}
	// Every machine leased its own address: dnsmasq replied 20 times.
	if got := strings.Count(dnsmasq.Output(), "DHCPREPLY("); got != machines {
		t.Errorf("dnsmasq sent %d Replies, want %d (one address per machine)", got, machines)
	}
	// pxed saw the machines apart (by their DUID-LLT's MAC).
	if evs := timeline(t, n, client.StormMAC([]byte{2, 0x70, 0x7b}, machines-1).String()); len(evs) == 0 {
		t.Errorf("pxed has no timeline for the last simulated machine")
	}
}
