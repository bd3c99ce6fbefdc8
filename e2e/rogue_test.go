package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// rogueRow is a row of GET /api/rogues (issue 11's contract).
type rogueRow struct {
	Server     string `json:"server"`
	MAC        string `json:"mac"`
	Interface  string `json:"interface"`
	Count      int    `json:"count"`
	Kind       string `json:"kind"`
	LastClient string `json:"last_client"`
	Offered    struct {
		YIAddr      string `json:"yiaddr"`
		SIAddr      string `json:"siaddr"`
		File        string `json:"file"`
		VendorClass string `json:"vendor_class"`
	} `json:"offered"`
}

func rogues(t *testing.T, n *lab.Net) []rogueRow {
	t.Helper()
	out, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/api/rogues")
	if err != nil {
		t.Fatalf("GET /api/rogues: %v\n%s", err, out)
	}
	var rows []rogueRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("GET /api/rogues: %v\n%s", err, out)
	}
	return rows
}

// hostMAC is the MAC of host h's interface.
func hostMAC(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, err := lab.Run(t, h.NS, "cat", "/sys/class/net/"+h.Iface+"/address")
	if err != nil {
		t.Fatalf("MAC of %s: %v %s", h.NS, err, out)
	}
	return strings.TrimSpace(out)
}

// TestRogueDHCPServer: pxed is the DHCP server of the lab; a dnsmasq on
// another host also answers PXE clients, with an address and a boot file.
// pxed reports it (API table, metric, log line, an event on the client's
// timeline) with dnsmasq's address and offer, and does not report itself.
func TestRogueDHCPServer(t *testing.T) {
	n := lab.NewNet(t)
	captureIfAsked(t, n.NS(), n.Bridge(), "br0") // internal/rogue/testdata
	pxed := startPxed(t, n, "--dhcp-range", "192.0.2.50-192.0.2.60")
	rogue := n.AddHost(t, "rogue", mustPrefix("192.0.2.2/24"))
	rogueMAC := hostMAC(t, rogue)
	startDnsmasq(t, rogue.NS, rogue.Iface, "--dhcp-range=192.0.2.100,192.0.2.200,5m", "--dhcp-boot=rogue.efi,,192.0.2.2")
	h := clientHost(t, n, "client", 1)
	clientMAC := hostMAC(t, h)

	// Twice: the second time pxed has seen the client, so the rogue's
	// offer joins the client's timeline too.
	runProbe(t, h, "--arch", "bios")
	runProbe(t, h, "--arch", "bios")

	rows := rogues(t, n)
	if len(rows) != 1 {
		t.Fatalf("GET /api/rogues = %+v, want one row: dnsmasq at 192.0.2.2", rows)
	}
	r := rows[0]
	if r.Server != "192.0.2.2" || r.MAC != rogueMAC || r.Interface != "br0" || r.Count < 2 || r.Kind != "dhcp+pxe" ||
		r.LastClient != clientMAC || r.Offered.File != "rogue.efi" || r.Offered.SIAddr != "192.0.2.2" ||
		!strings.HasPrefix(r.Offered.YIAddr, "192.0.2.1") {
		t.Errorf("rogue row = %+v, want dnsmasq (192.0.2.2, %s) offering 192.0.2.1xx and rogue.efi from 192.0.2.2 to %s", r, rogueMAC, clientMAC)
	}

	metrics, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	if !strings.Contains(metrics, `pxed_rogue_dhcp_replies_total{server="192.0.2.2"}`) ||
		strings.Contains(metrics, `pxed_rogue_dhcp_replies_total{server="192.0.2.1"}`) {
		t.Errorf("metrics: want a pxed_rogue_dhcp_replies_total series for 192.0.2.2 only:\n%s", grepLines(metrics, "pxed_rogue"))
	}

	var onClient bool
	for _, e := range timeline(t, n, clientMAC) {
		if e.Stage == "rogue-server" && strings.Contains(e.Detail, "192.0.2.2") && strings.Contains(e.Detail, "rogue.efi") {
			onClient = true
		}
	}
	if !onClient {
		t.Errorf("no rogue-server event naming 192.0.2.2 and rogue.efi on the client's timeline: %+v", timeline(t, n, clientMAC))
	}

	logs := grepLines(pxed.Output(), "another DHCP server")
	if !strings.Contains(logs, "server=192.0.2.2") || strings.Contains(logs, "server=192.0.2.1 ") {
		t.Errorf("log lines: want a warning naming 192.0.2.2 and none naming pxed:\n%s", logs)
	}
	if n := strings.Count(logs, "\n"); n > 2 {
		t.Errorf("%d warning lines for one server within seconds, want one per interval:\n%s", n, logs)
	}
}

// TestRogueProxyDHCP: pxed is ProxyDHCP beside the network's address-only
// DHCP server (expected: not reported) and a second ProxyDHCP server, a
// dnsmasq with pxe-service (reported, with its boot offer). While an iPXE
// probe downloads the NBP, kernel and initrd from pxed, the detection's
// filter passes up nothing but other servers' DHCP replies.
func TestRogueProxyDHCP(t *testing.T) {
	n := lab.NewNet(t)
	captureIfAsked(t, n.NS(), n.Bridge(), "br0") // internal/rogue/testdata
	startPxed(t, n)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.100", "192.0.2.200")
	// First pxed alone beside the address-only server: an iPXE probe
	// downloads the NBP, kernel and initrd (megabytes of frames on br0).
	h := clientHost(t, n, "client", 1)
	r, _ := runProbe(t, h, "--arch", "ipxe-efi", "--fetch")
	var downloaded int64
	for _, d := range r.Downloads {
		downloaded += d.Bytes
	}
	// Then a second ProxyDHCP server. It serves its NBP too, so that a
	// probe that picks it ends at once.
	other := n.AddHost(t, "proxy", mustPrefix("192.0.2.3/24"))
	tftpRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(tftpRoot, "rogueboot.0"), []byte("not an NBP"), 0o644); err != nil {
		t.Fatal(err)
	}
	startDnsmasq(t, other.NS, other.Iface, "--dhcp-range=192.0.2.0,proxy", "--pxe-service=x86PC,rogue menu,rogueboot",
		"--enable-tftp", "--tftp-root="+tftpRoot)
	runProbe(t, h, "--arch", "bios")

	var rows []rogueRow
	lab.WaitFor(t, 10*time.Second, "the ProxyDHCP dnsmasq in /api/rogues", func() bool {
		rows = rogues(t, n)
		return len(rows) > 0
	})
	if len(rows) != 1 || rows[0].Server != "192.0.2.3" || rows[0].Kind != "proxydhcp" || rows[0].Offered.YIAddr != "" ||
		!strings.HasPrefix(rows[0].Offered.VendorClass, "PXEClient") {
		t.Errorf("GET /api/rogues = %+v, want only the ProxyDHCP dnsmasq at 192.0.2.3 (kind proxydhcp, PXEClient, no address); "+
			"the address-only server at 192.0.2.2 is expected beside ProxyDHCP", rows)
	}

	metrics, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	frames, replies, ignored := metricSum(metrics, "pxed_rogue_frames_total"), metricSum(metrics, "pxed_rogue_dhcp_replies_total"),
		metricSum(metrics, "pxed_rogue_ignored_total")
	t.Logf("rogue detection: %d frames passed up by the filter (%d rogue replies, %d expected ones) while the probe downloaded %d bytes",
		frames, replies, ignored, downloaded)
	if downloaded < 1<<20 || ignored == 0 || frames != replies+ignored {
		t.Errorf("frames passed up = %d, want exactly the DHCP replies of other servers (%d reported + %d expected), "+
			"after a download of %d bytes (want > 1 MiB)", frames, replies, ignored, downloaded)
	}
}

// TestRogueDHCPv6: pxed is ProxyDHCPv6 beside a DHCPv6 dnsmasq that also
// hands out a boot file URL. DHCPv6 replies are unicast to the client's
// link-local address, so pxed sees them only where the network floods
// unicast: the lab bridge is made a hub (no MAC learning, its own port
// promiscuous), as a hub or a flooding switch would be.
func TestRogueDHCPv6(t *testing.T) {
	n := lab.NewNet(t)
	for _, args := range [][]string{{"link", "set", n.Bridge(), "type", "bridge", "ageing_time", "0"}, {"link", "set", n.Bridge(), "promisc", "on"}} {
		if out, err := lab.Run(t, n.NS(), "ip", args...); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	captureIfAsked(t, n.NS(), n.Bridge(), "br0")
	startAddressServer6(t, n, "--dhcp-option=option6:bootfile-url,tftp://[2001:db8::2]/rogue6.efi")
	startPxed(t, n, "--tftp-addr", ":69", "--http-addr", ":8080")
	h := n.AddHost(t, "probe", netip.Prefix{})
	runProbe(t, h, "--ipv6")

	var rows []rogueRow
	lab.WaitFor(t, 10*time.Second, "the DHCPv6 dnsmasq in /api/rogues", func() bool {
		rows = rogues(t, n)
		return len(rows) > 0
	})
	// dnsmasq answers from its link-local address, and at times from its
	// global one (2001:db8::2): one row per source address, all of them
	// the one server (its MAC) with its offer.
	for _, r := range rows {
		if r.MAC != rows[0].MAC || !strings.HasPrefix(r.Server, "fe80::") && r.Server != "2001:db8::2" ||
			r.Offered.File != "tftp://[2001:db8::2]/rogue6.efi" || !strings.HasPrefix(r.Offered.YIAddr, "2001:db8::1") || r.Kind != "dhcp+pxe" {
			t.Errorf("GET /api/rogues = %+v, want the DHCPv6 dnsmasq (its link-local or global source) offering 2001:db8::1xx and its boot file URL", rows)
			break
		}
	}
}

// metricSum is the sum of every sample of metric name in a /metrics page.
func metricSum(page, name string) int64 {
	var sum float64
	for _, l := range strings.Split(page, "\n") {
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			f := strings.Fields(l)
			var v float64
			if _, err := fmt.Sscan(f[len(f)-1], &v); err == nil {
				sum += v
			}
		}
	}
	return int64(sum)
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
