package e2e

import (
	"encoding/json"
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

var pxedBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pxed-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pxedBin = filepath.Join(dir, "pxed")
	out, err := exec.Command("go", "build", "-o", pxedBin, "pxed/cmd/pxed").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building pxed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if err := lab.CheckClean(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: left behind:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// startAddressServer runs dnsmasq as a plain DHCP server (addresses only, no
// PXE options, no TFTP) on its own host of the lab: the network's "existing"
// DHCP server that pxed's ProxyDHCP works beside.
func startAddressServer(t *testing.T, n *lab.Net) *lab.Proc {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
		t.Skip("needs /usr/sbin/dnsmasq (apt-get install dnsmasq-base) as the address-only DHCP server")
	}
	h := n.AddHost(t, "dhcp", mustPrefix("192.0.2.2/24"))
	// The "router" of the lab also sends IPv6 router advertisements, as a
	// real network's router does: without one, iPXE waits ~16 s for IPv6
	// autoconfiguration before it fetches its script.
	if out, err := lab.Run(t, h.NS, "ip", "addr", "add", "2001:db8::2/64", "dev", h.Iface, "nodad"); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	state := t.TempDir()
	p := lab.Start(t, h.NS, "/usr/sbin/dnsmasq", "-k", "--conf-file=/dev/null", "--port=0",
		"--user=root", "--group=root", "--interface="+h.Iface, "--bind-interfaces",
		"--pid-file="+filepath.Join(state, "dnsmasq.pid"), "--dhcp-leasefile="+filepath.Join(state, "leases"),
		"--log-facility=-", "--log-dhcp", "--dhcp-range=192.0.2.100,192.0.2.200,5m", "--no-ping",
		"--enable-ra", "--dhcp-range=::,constructor:"+h.Iface+",ra-only")
	lab.WaitFor(t, 10*time.Second, "dnsmasq to start", func() bool {
		return strings.Contains(p.Output(), "DHCP, IP range") || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("dnsmasq exited: %v\n%s", p.Err(), p.Output())
	}
	return p
}

// startPxed runs `pxed boot` on the lab bridge with the lab kernel and
// initramfs and waits until its HTTP server answers.
func startPxed(t *testing.T, n *lab.Net, extra ...string) *lab.Proc {
	t.Helper()
	kernel, initrd := lab.Assets(t)
	args := append([]string{"boot", "--interface", n.Bridge(), "--kernel", kernel, "--initrd", initrd,
		"--cmdline", "console=ttyS0 panic=-1", "--http-addr", "192.0.2.1:8080", "--tftp-addr", "192.0.2.1:69",
		"--data-dir", t.TempDir(), "--log-level", "debug"}, extra...)
	p := lab.Start(t, n.NS(), pxedBin, args...)
	waitServing(t, n, p)
	return p
}

// waitServing waits until pxed p answers /healthz on the lab bridge, and
// fails the test when it exited instead.
func waitServing(t *testing.T, n *lab.Net, p *lab.Proc) {
	t.Helper()
	waitServingAt(t, n.NS(), "192.0.2.1", p)
}

// waitServingAt is waitServing for a pxed in namespace ns answering HTTP
// on ip:8080.
func waitServingAt(t *testing.T, ns, ip string, p *lab.Proc) {
	t.Helper()
	lab.WaitFor(t, 15*time.Second, "pxed on "+ip+" to serve HTTP", func() bool {
		if p.Exited() {
			return true
		}
		_, err := lab.Run(t, ns, "curl", "-sf", "http://"+ip+":8080/healthz")
		return err == nil
	})
	if p.Exited() {
		t.Fatalf("pxed exited: %v\n%s", p.Err(), p.Output())
	}
}

type event struct {
	Stage  string `json:"stage"`
	Detail string `json:"detail"`
	Bytes  int64  `json:"bytes"`
}

func timeline(t *testing.T, n *lab.Net, mac string) []event {
	t.Helper()
	return timelineAt(t, n.NS(), "192.0.2.1", mac)
}

// timelineAt is mac's timeline as the pxed at addr (port 8080) keeps it,
// asked from namespace ns.
func timelineAt(t *testing.T, ns, addr, mac string) []event {
	t.Helper()
	out, err := lab.Run(t, ns, "curl", "-sf", "http://"+addr+":8080/api/machines/"+mac+"/timeline")
	if err != nil {
		t.Fatalf("timeline of %s at %s: %v\n%s", mac, addr, err, out)
	}
	var evs []event
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("timeline of %s at %s: %v\n%s", mac, addr, err, out)
	}
	return evs
}

// stagesInOrder checks that want appear in evs in that order (other events may lie between).
func stagesInOrder(evs []event, want ...string) error {
	i := 0
	for _, e := range evs {
		if i < len(want) && e.Stage == want[i] {
			i++
		}
	}
	if i < len(want) {
		var got []string
		for _, e := range evs {
			got = append(got, e.Stage+"("+e.Detail+")")
		}
		return fmt.Errorf("missing stage %q after %v; timeline: %s", want[i], want[:i], strings.Join(got, ", "))
	}
	return nil
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestProxyDHCPBootsFirmware boots a UEFI (OVMF, EDK II PXE → snponly.efi →
// iPXE) and a legacy BIOS (SeaBIOS with the iPXE NIC ROM) machine to the
// lab marker through pxed as ProxyDHCP beside an address-only dnsmasq.
func TestProxyDHCPBootsFirmware(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (30-40 s each under TCG); not in -short")
	}
	n := lab.NewNet(t)
	dnsmasq := startAddressServer(t, n)
	pxed := startPxed(t, n)

	for _, tc := range []struct {
		fw     lab.Firmware
		mac    string
		stages []string
	}{
		{lab.UEFI, "52:54:00:00:03:01", []string{"dhcp-offer", "tftp-done", "dhcp-offer", "script", "kernel", "initrd"}},
		{lab.BIOS, "52:54:00:00:03:02", []string{"dhcp-offer", "script", "kernel", "initrd"}},
	} {
		t.Run(tc.fw.String(), func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: tc.fw, MAC: tc.mac, Timeout: 5 * time.Minute})
			vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
			t.Logf("%s: %s after %v", tc.fw, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			evs := timeline(t, n, tc.mac)
			if err := stagesInOrder(evs, tc.stages...); err != nil {
				t.Error(err)
			}
			for _, e := range evs {
				if e.Stage == "dhcp-offer" && strings.Contains(e.Detail, "ipxe →") && strings.Contains(e.Detail, ".efi") {
					t.Errorf("iPXE was offered an NBP again (chainload loop): %s", e.Detail)
				}
			}
			if !strings.Contains(dnsmasq.Output(), "DHCPACK("+"eth0) 192.0.2.") {
				t.Errorf("the address-only DHCP server acknowledged no lease")
			}
		})
	}
	if strings.Contains(pxed.Output(), "level=ERROR") {
		t.Errorf("pxed logged errors:\n%s", pxed.Output())
	}
}
