package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/client"
	"pxed/internal/lab"
)

// probeScale shrinks the firmware's 4/8/16/32 s DHCP windows for tests.
const probeScale = "0.25"

// runJSON runs `pxed SUB --interface IF --json ARGS…` in host h's namespace
// within timeout and decodes its standard output into out; it returns the
// exit status and standard error (storm's progress line).
func runJSON(t *testing.T, h *lab.Host, timeout time.Duration, sub string, out any, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append([]string{"netns", "exec", h.NS, pxedBin, sub, "--interface", h.Iface, "--json"}, args...)
	cmd := exec.CommandContext(ctx, "ip", argv...)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("pxed %s %v: %v\n%s", sub, args, err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("pxed %s %v: exit %d: decoding JSON: %v\nstdout:\n%s\nstderr:\n%s", sub, args, code, err, stdout.String(), stderr.String())
	}
	return code, stderr.String()
}

// runProbe runs `pxed probe --json` on host h's interface and decodes its
// report; code is the exit status.
func runProbe(t *testing.T, h *lab.Host, args ...string) (*client.Result, int) {
	t.Helper()
	var r client.Result
	code, _ := runJSON(t, h, 2*time.Minute, "probe", &r, append([]string{"--timeout-scale", probeScale}, args...)...)
	t.Logf("probe %v: exit %d: %s", args, code, r.Verdict)
	return &r, code
}

// startDnsmasq runs dnsmasq with args on interface iface of namespace ns and
// waits until it says DHCP is up.
func startDnsmasq(t *testing.T, ns, iface string, args ...string) *lab.Proc {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
		t.Skip("needs /usr/sbin/dnsmasq (apt-get install dnsmasq-base)")
	}
	state := t.TempDir()
	argv := append([]string{"-k", "--conf-file=/dev/null", "--port=0", "--user=root", "--group=root",
		"--interface=" + iface, "--bind-interfaces",
		"--pid-file=" + filepath.Join(state, "dnsmasq.pid"), "--dhcp-leasefile=" + filepath.Join(state, "leases"),
		"--log-facility=-", "--log-dhcp", "--no-ping"}, args...)
	p := lab.Start(t, ns, "/usr/sbin/dnsmasq", argv...)
	lab.WaitFor(t, 10*time.Second, "dnsmasq to start", func() bool {
		return strings.Contains(p.Output(), "DHCP, ") || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("dnsmasq exited: %v\n%s", p.Err(), p.Output())
	}
	return p
}

// startAddressOnly runs an address-only dnsmasq (no PXE, no TFTP) on a new
// lab host named name with address addr, leasing from first to last.
func startAddressOnly(t *testing.T, n *lab.Net, name, addr, first, last string) *lab.Proc {
	t.Helper()
	h := n.AddHost(t, name, mustPrefix(addr+"/24"))
	return startDnsmasq(t, h.NS, h.Iface, "--dhcp-range="+first+","+last+",5m")
}

// ipxeFiles copies the iPXE NBPs into a new TFTP root.
func ipxeFiles(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		b, err := os.ReadFile(filepath.Join("/usr/lib/ipxe", f))
		if err != nil {
			t.Skipf("needs /usr/lib/ipxe/%s (apt-get install ipxe): %v", f, err)
		}
		if err := os.WriteFile(filepath.Join(root, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkBoots asserts the probe would boot, picked the wanted offer types and
// boot file, and received exactly the bytes of the files in want (by role
// order: the i-th download whose role is not "script" against want[i]).
func checkBoots(t *testing.T, r *client.Result, code int, addrType, bootType, bootFile string, want ...string) {
	t.Helper()
	if code != 0 || !r.Boots {
		t.Fatalf("probe: exit %d boots=%v: %s\nwarnings: %v", code, r.Boots, r.Verdict, r.Warnings)
	}
	d := r.DHCP
	sel := d.Selection
	if got := d.Offers[sel.Address].Type; got != addrType {
		t.Errorf("address offer type = %s, want %s (%s)", got, addrType, sel.Reason)
	}
	if got := d.Offers[sel.Boot].Type; got != bootType {
		t.Errorf("boot offer type = %s, want %s (%s)", got, bootType, sel.Reason)
	}
	if !strings.HasSuffix(d.BootFile, bootFile) {
		t.Errorf("boot file = %q, want …%q", d.BootFile, bootFile)
	}
	var files []client.Download
	for _, dl := range r.Downloads {
		if dl.Role != "script" {
			files = append(files, dl)
		}
	}
	if len(files) != len(want) {
		t.Fatalf("downloads = %+v, want %d files", r.Downloads, len(want))
	}
	for i, path := range want {
		if files[i].SHA256 != fileSHA(t, path) || files[i].CheckOnly {
			t.Errorf("download %s (%s): sha256 %s, want %s of %s", files[i].Name, files[i].Role, files[i].SHA256, fileSHA(t, path), path)
		}
	}
}

func hasWarning(r *client.Result, code string) bool {
	for _, w := range r.Warnings {
		if w.Code == code {
			return true
		}
	}
	return false
}

// TestProbePxed probes pxed (ProxyDHCP beside an address-only dnsmasq) as
// UEFI PXE, legacy BIOS PXE and iPXE, fetching every file.
func TestProbePxed(t *testing.T) {
	n := lab.NewNet(t)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.100", "192.0.2.200")
	startPxed(t, n)
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))
	kernel, initrd := lab.Assets(t)

	t.Run("efi-x64", func(t *testing.T) {
		r, code := runProbe(t, h, "--arch", "efi-x64", "--fetch", "--expect-server", "192.0.2.1", "--expect-server", "192.0.2.2")
		// EDK II gets no option 43 from pxed: ProxyBinl, then port 4011.
		checkBoots(t, r, code, "DhcpOnly", "ProxyBinl", "snponly.efi", "/usr/lib/ipxe/snponly.efi")
		if r.DHCP.BootReply == nil || r.DHCP.BootReply.From.Port() != 4011 {
			t.Errorf("no boot server discovery answer from port 4011: %+v", r.DHCP.BootReply)
		}
		if len(r.Warnings) != 0 {
			t.Errorf("warnings: %v", r.Warnings)
		}
	})
	t.Run("bios", func(t *testing.T) {
		r, code := runProbe(t, h, "--arch", "bios", "--fetch")
		checkBoots(t, r, code, "DhcpOnly", "ProxyPxe10", "undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe")
	})
	t.Run("ipxe-efi", func(t *testing.T) {
		r, code := runProbe(t, h, "--arch", "ipxe-efi", "--fetch")
		checkBoots(t, r, code, "DhcpOnly", "ProxyPxe10", "/script.ipxe", kernel, initrd)
		if r.Script == nil || len(r.Script.Files) != 2 {
			t.Errorf("script files = %+v, want kernel and initrd", r.Script)
		}
	})
	t.Run("human-report", func(t *testing.T) {
		out, err := lab.Run(t, h.NS, pxedBin, "probe", "--interface", h.Iface, "--arch", "efi-x64", "--fetch",
			"--timeout-scale", probeScale, "--expect-server", "192.0.2.1")
		if err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
		t.Logf("report:\n%s", out)
		for _, want := range []string{"ProxyBinl", "DhcpOnly", "chosen: address from", "boot server discovery: 192.0.2.1:4011",
			"snponly.efi", "MB/s", "unexpected-server", "would boot"} {
			if !strings.Contains(out, want) {
				t.Errorf("report lacks %q", want)
			}
		}
	})
}

// TestProbeUnconfiguredInterface probes from an interface without an
// address, as on a dedicated provisioning NIC: the probe puts its lease on
// the interface for the downloads, as firmware would, and removes it after.
func TestProbeUnconfiguredInterface(t *testing.T) {
	n := lab.NewNet(t)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.100", "192.0.2.200")
	startPxed(t, n)
	h := n.AddHost(t, "bare", netip.Prefix{})
	r, code := runProbe(t, h, "--arch", "efi-x64", "--fetch")
	checkBoots(t, r, code, "DhcpOnly", "ProxyBinl", "snponly.efi", "/usr/lib/ipxe/snponly.efi")
	want := r.DHCP.Lease.Addr.String() + "/24 on eth0"
	if !strings.HasPrefix(r.Configured, want) {
		t.Errorf("configured = %q, want it to start with %q", r.Configured, want)
	}
	out, err := lab.Run(t, h.NS, "ip", "-4", "-o", "addr", "show", "dev", h.Iface)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("the probe left an address on the interface: %s", out)
	}
}

// TestProbeDnsmasqFull probes dnsmasq as a full PXE server (address, boot
// file, TFTP; iPXE gets an HTTP script from busybox httpd).
func TestProbeDnsmasqFull(t *testing.T) {
	n := lab.NewNet(t)
	tftpRoot := ipxeFiles(t)
	kernel, initrd := lab.Assets(t)
	httpRoot := t.TempDir()
	script := "#!ipxe\nkernel vmlinuz console=ttyS0 || goto failed\ninitrd http://192.0.2.1:8080/initrd.img\nboot\n:failed\nshell\n"
	for name, data := range map[string][]byte{"boot.ipxe": []byte(script)} {
		if err := os.WriteFile(filepath.Join(httpRoot, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, src := range map[string]string{"vmlinuz": kernel, "initrd.img": initrd} {
		if err := os.Symlink(src, filepath.Join(httpRoot, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (apt-get install busybox-static) for httpd")
	}
	lab.Start(t, n.NS(), "/bin/busybox", "httpd", "-f", "-p", "192.0.2.1:8080", "-h", httpRoot)
	lab.WaitFor(t, 10*time.Second, "busybox httpd", func() bool {
		_, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/boot.ipxe")
		return err == nil
	})
	startDnsmasq(t, n.NS(), n.Bridge(), "--dhcp-range=192.0.2.100,192.0.2.200,5m",
		"--enable-tftp", "--tftp-root="+tftpRoot,
		"--dhcp-match=set:efi,option:client-arch,7",
		"--dhcp-userclass=set:ipxe,iPXE",
		"--dhcp-boot=tag:!ipxe,tag:efi,snponly.efi",
		"--dhcp-boot=tag:!ipxe,tag:!efi,undionly.kpxe",
		"--dhcp-boot=tag:ipxe,http://192.0.2.1:8080/boot.ipxe")
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))

	for _, tc := range []struct {
		arch, file string
		want       []string
	}{
		{"efi-x64", "snponly.efi", []string{"/usr/lib/ipxe/snponly.efi"}},
		{"bios", "undionly.kpxe", []string{"/usr/lib/ipxe/undionly.kpxe"}},
		{"ipxe-bios", "boot.ipxe", []string{kernel, initrd}},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			r, code := runProbe(t, h, "--arch", tc.arch, "--fetch", "--expect-server", "192.0.2.1")
			// dnsmasq answers PXEClient with a plain DHCP offer naming a file.
			checkBoots(t, r, code, "DhcpOnly", "DhcpOnly", tc.file, tc.want...)
		})
	}
	t.Run("missing-file", func(t *testing.T) {
		if err := os.Remove(filepath.Join(tftpRoot, "snponly.efi")); err != nil {
			t.Fatal(err)
		}
		r, code := runProbe(t, h, "--arch", "efi-x64")
		if code != 1 || r.Boots || !hasWarning(r, client.WarnBootFileMissing) {
			t.Errorf("probe with snponly.efi removed: exit %d boots=%v warnings %v, want exit 1 and %s",
				code, r.Boots, r.Warnings, client.WarnBootFileMissing)
		}
	})
}

// TestProbeDnsmasqProxy probes dnsmasq in ProxyDHCP mode beside another
// dnsmasq giving addresses.
func TestProbeDnsmasqProxy(t *testing.T) {
	n := lab.NewNet(t)
	tftpRoot := ipxeFiles(t)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.100", "192.0.2.200")
	startDnsmasq(t, n.NS(), n.Bridge(), "--dhcp-range=192.0.2.0,proxy",
		"--enable-tftp", "--tftp-root="+tftpRoot,
		"--pxe-service=x86PC,Network boot,undionly.kpxe",
		"--pxe-service=X86-64_EFI,Network boot,snponly.efi")
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))
	for _, tc := range []struct{ arch, offer, file, want string }{
		// dnsmasq leaves option 43 out for UEFI (its pxe_uefi_workaround):
		// EDK II then asks port 4011, where dnsmasq names the file.
		{"efi-x64", "ProxyBinl", "snponly.efi", "/usr/lib/ipxe/snponly.efi"},
		// BIOS gets a menu with one item; its boot item names the file.
		{"bios", "ProxyPxe10", "undionly.kpxe", "/usr/lib/ipxe/undionly.kpxe"},
	} {
		t.Run(tc.arch, func(t *testing.T) {
			r, code := runProbe(t, h, "--arch", tc.arch, "--fetch")
			checkBoots(t, r, code, "DhcpOnly", tc.offer, tc.file, tc.want)
			if tc.offer == "ProxyBinl" && (r.DHCP.BootReply == nil || r.DHCP.BootReply.BootFile != tc.file) {
				t.Errorf("boot server discovery answer = %+v, want boot file %s", r.DHCP.BootReply, tc.file)
			}
		})
	}
}

// TestProbeFlagsSecondDHCPServer starts two address servers beside pxed:
// the probe still boots but warns, and names the server not expected.
func TestProbeFlagsSecondDHCPServer(t *testing.T) {
	n := lab.NewNet(t)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.100", "192.0.2.200")
	startAddressOnly(t, n, "rogue", "192.0.2.3", "192.0.2.210", "192.0.2.220")
	startPxed(t, n)
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))

	r, code := runProbe(t, h, "--arch", "efi-x64", "--expect-server", "192.0.2.1", "--expect-server", "192.0.2.2")
	if code != 0 || !r.Boots {
		t.Errorf("probe: exit %d: %s", code, r.Verdict)
	}
	if !hasWarning(r, client.WarnTwoDHCPServers) {
		t.Errorf("warnings %v lack %s", r.Warnings, client.WarnTwoDHCPServers)
	}
	found := false
	for _, w := range r.Warnings {
		found = found || w.Code == client.WarnUnexpectedServer && strings.Contains(w.Message, "192.0.2.3")
	}
	if !found {
		t.Errorf("warnings %v do not flag 192.0.2.3 as unexpected", r.Warnings)
	}
}

// TestProbeNoServer: nobody answers; the probe gives up after its (scaled)
// windows and exits 1.
func TestProbeNoServer(t *testing.T) {
	n := lab.NewNet(t)
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))
	r, code := runProbe(t, h, "--arch", "bios", "--timeout-scale", "0.05")
	if code != 1 || r.Boots || r.DHCP == nil || r.DHCP.Discovers != len(client.Windows) {
		t.Errorf("exit %d boots=%v discovers=%+v, want exit 1 after %d DISCOVERs", code, r.Boots, r.DHCP, len(client.Windows))
	}
	if !strings.Contains(r.Verdict, "PXE-E51") {
		t.Errorf("verdict %q does not name PXE-E51", r.Verdict)
	}
}

// TestProbeFlagsChainloadLoop: a dnsmasq that hands every client the iPXE
// binary, iPXE included, makes the probe as iPXE report the loop and fail.
func TestProbeFlagsChainloadLoop(t *testing.T) {
	n := lab.NewNet(t)
	tftpRoot := ipxeFiles(t)
	startDnsmasq(t, n.NS(), n.Bridge(), "--dhcp-range=192.0.2.100,192.0.2.200,5m",
		"--enable-tftp", "--tftp-root="+tftpRoot, "--dhcp-boot=undionly.kpxe")
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))
	r, code := runProbe(t, h, "--arch", "ipxe-bios")
	if code != 1 || r.Boots || !hasWarning(r, client.WarnChainloadLoop) {
		t.Errorf("exit %d boots=%v warnings %v, want exit 1 and %s", code, r.Boots, r.Warnings, client.WarnChainloadLoop)
	}
	// The same network is fine for the BIOS firmware itself.
	r, code = runProbe(t, h, "--arch", "bios")
	if code != 0 || !r.Boots {
		t.Errorf("bios: exit %d: %s", code, r.Verdict)
	}
}

// TestProbePxedHTTPBoot probes pxed as a UEFI HTTP boot client: the proxy
// offer carries an HTTPClient URL under /files/, served from --boot-dir.
// (With no --boot-dir, pxed offers the same URL and answers 404: its HTTP
// server does not fall back to --ipxe-dir as TFTP does; the probe reports
// that as an http-error warning.)
func TestProbePxedHTTPBoot(t *testing.T) {
	n := lab.NewNet(t)
	startAddressOnly(t, n, "dhcp", "192.0.2.2", "192.0.2.100", "192.0.2.200")
	startPxed(t, n, "--boot-dir", ipxeFiles(t))
	h := n.AddHost(t, "probe", mustPrefix("192.0.2.50/24"))
	r, code := runProbe(t, h, "--arch", "efi-x64-http", "--fetch")
	checkBoots(t, r, code, "DhcpOnly", "ProxyIpUri", "/files/snponly.efi", "/usr/lib/ipxe/snponly.efi")
	if b := r.DHCP.Offers[r.DHCP.Selection.Boot]; b.Kind != "proxy" || b.VendorClass != "HTTPClient" || r.Downloads[0].Proto != "http" {
		t.Errorf("HTTP boot: boot offer %+v, downloads %+v; want the proxy's HTTPClient URL fetched over HTTP", b, r.Downloads)
	}
}
