package e2e

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// startAddressServer6 runs dnsmasq as the network's DHCPv6 server on its
// own host: stateful addresses from 2001:db8::100-1ff, no PXE options,
// no router advertisements (pxed sends those: --router-advertisements, O
// flag without M: iPXE then asks for its configuration with a stateless
// Information-request, which pxed's ProxyDHCPv6 answers; with M it would
// solicit an address and hear only the server that offered one). It leaves iPXE alone
// (user class iPXE): iPXE takes the first Reply to its Information-
// request, and answering it is pxed's job here. extra are more dnsmasq
// arguments (a range for a relayed segment).
func startAddressServer6(t *testing.T, n *lab.Net, extra ...string) *lab.Proc {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
		t.Skip("needs /usr/sbin/dnsmasq (apt-get install dnsmasq-base) as the DHCPv6 address server")
	}
	h := n.AddHost(t, "dhcp6", mustPrefix("192.0.2.2/24"))
	if out, err := lab.Run(t, h.NS, "ip", "addr", "add", "2001:db8::2/64", "dev", h.Iface, "nodad"); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	// The bridge (pxed's side) keeps its static address only.
	if out, err := lab.Run(t, n.NS(), "sysctl", "-qw", "net.ipv6.conf."+n.Bridge()+".accept_ra=0"); err != nil {
		t.Fatalf("sysctl: %v\n%s", err, out)
	}
	state := t.TempDir()
	args := append([]string{"-k", "--conf-file=/dev/null", "--port=0",
		"--user=root", "--group=root", "--interface=" + h.Iface, "--bind-interfaces",
		"--pid-file=" + filepath.Join(state, "dnsmasq.pid"), "--dhcp-leasefile=" + filepath.Join(state, "leases"),
		"--log-facility=-", "--log-dhcp", "--dhcp-range=2001:db8::100,2001:db8::1ff,64,5m",
		"--dhcp-userclass=set:ipxe,iPXE", "--dhcp-ignore=tag:ipxe"}, extra...)
	p := lab.Start(t, h.NS, "/usr/sbin/dnsmasq", args...)
	lab.WaitFor(t, 10*time.Second, "dnsmasq to start", func() bool {
		return strings.Contains(p.Output(), "DHCPv6, IP range") || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("dnsmasq exited: %v\n%s", p.Err(), p.Output())
	}
	return p
}

// TestProxyDHCPv6BootsOVMF boots an OVMF machine whose PXE runs over IPv6
// only (IPv4PXESupport=no) on a segment without any DHCPv4 server: EDK II
// Solicits, gets its address from dnsmasq and a ProxyBinl Advertise from
// pxed, asks pxed's boot service on [2001:db8::1]:4011 for the boot file,
// loads snponly.efi over TFTP on IPv6; iPXE gets its script URL from
// pxed in reply to its Information-request and loads the kernel and
// initrd over HTTP on IPv6.
func TestProxyDHCPv6BootsOVMF(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about a minute under TCG); not in -short")
	}
	n := lab.NewNet(t)
	dnsmasq := startAddressServer6(t, n)
	pxed := startPxed(t, n, "--tftp-addr", ":69", "--http-addr", ":8080", "--router-advertisements")
	if !strings.Contains(pxed.Output(), "ProxyDHCPv6 on") {
		t.Fatalf("pxed did not start ProxyDHCPv6:\n%s", pxed.Output())
	}
	const mac = "52:54:00:00:06:01"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 5 * time.Minute,
		FwCfg: []string{"name=opt/org.tianocore/IPv4PXESupport,string=no"}})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	took := time.Since(vm.Started).Round(100 * time.Millisecond)
	t.Logf("uefi PXEv6: %s after %v", lab.BootMarker, took)
	if !strings.Contains(vm.Serial(), `starting Boot0`) || !strings.Contains(vm.Serial(), `"UEFI PXEv6`) {
		t.Errorf("the serial log shows no UEFI PXEv6 boot option started:\n%s", tail(vm.Serial(), 3<<10))
	}
	evs := timeline(t, n, mac)
	if err := stagesInOrder(evs, "dhcp-offer", "dhcp-ack", "tftp-done", "dhcp-ack", "script", "kernel", "initrd"); err != nil {
		// What EDK II said about its PXEv6 attempt (it falls back to its
		// next boot option silently).
		t.Errorf("%v\nserial log:\n%s", err, tail(vm.Serial(), 6<<10))
	}
	// Where the NBP, script, kernel and initrd went: IPv6 addresses only.
	// (pxed's ProxyDHCP also answers iPXE's DHCPv4 DISCOVERs; with no
	// DHCPv4 server on the segment iPXE gets no address that way.)
	var ips []struct {
		Time   time.Time `json:"time"`
		Stage  string    `json:"stage"`
		IP     string    `json:"ip"`
		Detail string    `json:"detail"`
	}
	out, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/api/machines/"+mac+"/timeline")
	if err != nil || json.Unmarshal([]byte(out), &ips) != nil {
		t.Fatalf("timeline: %v\n%s", err, out)
	}
	for _, e := range ips {
		t.Logf("  +%5.2fs %-12s %-20s %s", e.Time.Sub(ips[0].Time).Seconds(), e.Stage, e.IP, e.Detail)
		switch e.Stage {
		case "tftp-done", "script", "kernel", "initrd":
			if a, err := netip.ParseAddr(e.IP); err != nil || !a.Is6() || a.Is4In6() {
				t.Errorf("%s from %q, not over IPv6", e.Stage, e.IP)
			}
		}
	}
	for _, e := range evs {
		if strings.Contains(e.Detail, "ipxe") && strings.Contains(e.Detail, ".efi") {
			t.Errorf("iPXE was offered an NBP again (chainload loop): %s", e.Detail)
		}
	}
	if !strings.Contains(dnsmasq.Output(), "DHCPREPLY(") {
		t.Errorf("the DHCPv6 address server gave no address:\n%s", dnsmasq.Output())
	}
	if strings.Contains(pxed.Output(), "level=ERROR") {
		t.Errorf("pxed logged errors:\n%s", pxed.Output())
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
