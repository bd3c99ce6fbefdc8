package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// uefiHTTPOnly are the fw_cfg items that leave OVMF with its HTTP Boot
// options only: no PXE boot option over either IP version.
var uefiHTTPOnly = []string{
	"name=opt/org.tianocore/IPv4PXESupport,string=no",
	"name=opt/org.tianocore/IPv6PXESupport,string=no",
}

// systemdStub is systemd-boot's EFI stub (Debian systemd-boot-efi): with
// the kernel, initrd and command line as PE sections it is one EFI
// application that boots Linux (a unified kernel image).
const systemdStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// buildLiveISO makes an EFI-bootable ISO of the lab kernel and initramfs:
// a unified kernel image (systemd's stub + kernel + initrd + command line,
// joined with objcopy) as /EFI/BOOT/BOOTX64.EFI in a FAT image, which is
// the ISO's El Torito EFI boot image (xorriso). The firmware that boots
// the ISO from a RAM disk finds the FAT image as a partition of the CD and
// starts its default loader; the stub hands the kernel its initrd and
// command line, as a boot loader would.
func buildLiveISO(t *testing.T) string {
	t.Helper()
	for _, bin := range []string{"objcopy", "mkfs.vfat", "mmd", "mcopy", "xorriso"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("building the ISO needs %s (apt-get install binutils dosfstools mtools xorriso systemd-boot-efi)", bin)
		}
	}
	if _, err := os.Stat(systemdStub); err != nil {
		t.Skipf("building the ISO needs %s (apt-get install systemd-boot-efi)", systemdStub)
	}
	kernel, initrd := lab.Assets(t)
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("cmdline", "console=ttyS0 panic=-1")
	write("os-release", "NAME=pxed-lab\nID=pxed-lab\n")
	// Section addresses past the stub's own (it ends below 0x20000), the
	// kernel and initrd 16 MiB apart: the layout systemd's ukify uses.
	run("objcopy",
		"--add-section", ".osrel=os-release", "--change-section-vma", ".osrel=0x20000",
		"--add-section", ".cmdline=cmdline", "--change-section-vma", ".cmdline=0x30000",
		"--add-section", ".linux="+kernel, "--change-section-vma", ".linux=0x2000000",
		"--add-section", ".initrd="+initrd, "--change-section-vma", ".initrd=0x3000000",
		systemdStub, "uki.efi")
	st, err := os.Stat(filepath.Join(dir, "uki.efi"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "root"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("mkfs.vfat", "-C", "root/efiboot.img", fmt.Sprint(st.Size()/1024+1024))
	run("mmd", "-i", "root/efiboot.img", "::/EFI", "::/EFI/BOOT")
	run("mcopy", "-i", "root/efiboot.img", "uki.efi", "::/EFI/BOOT/BOOTX64.EFI")
	run("xorriso", "-as", "mkisofs", "-quiet", "-V", "PXEDLAB", "-e", "efiboot.img", "-no-emul-boot", "-o", "live.iso", "root")
	return filepath.Join(dir, "live.iso")
}

// timedEvent is a timeline entry with its time and address.
type timedEvent struct {
	Time   time.Time     `json:"time"`
	Stage  string        `json:"stage"`
	IP     string        `json:"ip"`
	Detail string        `json:"detail"`
	Bytes  int64         `json:"bytes"`
	Dur    time.Duration `json:"duration"`
}

// logTimeline logs mac's timeline with times relative to its first event.
func logTimeline(t *testing.T, n *lab.Net, mac string) []timedEvent {
	t.Helper()
	out, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/api/machines/"+mac+"/timeline")
	var evs []timedEvent
	if err != nil || json.Unmarshal([]byte(out), &evs) != nil {
		t.Fatalf("timeline of %s: %v\n%s", mac, err, out)
	}
	for _, e := range evs {
		t.Logf("  +%5.2fs %-12s %-18s %9d %8s %s", e.Time.Sub(evs[0].Time).Seconds(), e.Stage, e.IP, e.Bytes, e.Dur.Round(100*time.Microsecond), e.Detail)
	}
	return evs
}

// startServeConfig writes cfg (a YAML template: %[1]s is the lab bridge,
// %[2]s a data directory) and runs `pxed serve --config` on it; when the
// test fails, the tail of pxed's output is logged.
func startServeConfig(t *testing.T, n *lab.Net, cfg string) *lab.Proc {
	t.Helper()
	return startServeConfigAt(t, n.NS(), n.Bridge(), "192.0.2.1", cfg)
}

// startServeConfigAt is startServeConfig for a pxed in namespace ns on
// interface iface, answering HTTP on ip:8080.
func startServeConfigAt(t *testing.T, ns, iface, ip, cfg string) *lab.Proc {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(cfg, iface, t.TempDir())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, ns, pxedBin, "serve", "--config", file)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pxed output:\n%s", tail(p.Output(), 12<<10))
		}
	})
	waitServingAt(t, ns, ip, p)
	return p
}

// TestHTTPBootOVMF boots OVMF machines whose only network boot options are
// UEFI HTTP Boot (PXE off over IPv4 and IPv6) through pxed's ProxyDHCP
// beside an address-only dnsmasq: EDK II takes its address from dnsmasq's
// offer and the URL from pxed's (HTTPClient, no address: a ProxyIpUri
// offer). One machine loads snponly.efi over HTTP, whose iPXE then gets
// its script; the other boots an ISO built from the lab kernel and
// initramfs as a RAM disk.
func TestHTTPBootOVMF(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (30-45 s each under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	httpBoots(t, n, false, "nbp", "iso")
}

// TestHTTPBootOVMFv6 boots the ISO over IPv6 on a segment without a
// DHCPv4 server (the lab of TestProxyDHCPv6BootsOVMF): EDK II Solicits,
// takes its address from dnsmasq's Advertise and the URL
// http://[2001:db8::1]:8080/… from pxed's (HTTPClient, no IA_NA).
func TestHTTPBootOVMFv6(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about 100 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer6(t, n)
	captureIfAsked(t, n.NS(), n.Bridge(), "segment")
	// The ISO only: the NBP path adds iPXE's IPv6 script exchange, which
	// TestProxyDHCPv6BootsOVMF covers, and ~15 s of iPXE's DHCPv4 wait.
	httpBoots(t, n, true, "iso")
}

// httpBoots runs pxed on n with a kernel profile and an ISO profile and
// HTTP-boots one OVMF machine into each of cases ("nbp", "iso"), over
// IPv6 when v6 (else IPv4).
func httpBoots(t *testing.T, n *lab.Net, v6 bool, cases ...string) {
	t.Helper()
	kernel, initrd := lab.Assets(t)
	iso := buildLiveISO(t)
	addr, option := "192.0.2.1", `"UEFI HTTPv4`
	if v6 {
		// OVMF tries HTTPv4 first: with no DHCPv4 address server it
		// waits ~64 s (pxed's proxy offers alone are not selectable),
		// then boots HTTPv6. Dropping the IPv4 stack
		// (opt/org.tianocore/IPv4Support=no) would skip that wait, but
		// Debian 12's OVMF (edk2-stable202211) then fails HTTPv6 before
		// it sends a Solicit ("Could not retrieve NBP file size from
		// HTTP server", "Unexpected network error").
		addr, option = "", `"UEFI HTTPv6`
	}
	pxed := startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: %[2]s
tftp_addr: "`+addr+`:69"
http_addr: "`+addr+`:8080"
log_level: debug
default_profile: linux
profiles:
  linux:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
    cmdline: console=ttyS0 panic=-1
  live:
    image: `+iso+`
machines:
  "52:54:00:00:09:02": live
  "52:54:00:00:09:12": live
`)
	isoSize := fileSize(t, iso)
	mac := func(v4, v6mac string) string {
		if v6 {
			return v6mac
		}
		return v4
	}

	for _, tc := range []struct {
		name   string
		mac    string
		stages []string
		check  func(t *testing.T, evs []timedEvent)
	}{
		{"nbp", mac("52:54:00:00:09:01", "52:54:00:00:09:11"), []string{"dhcp-offer", "http", "script", "kernel", "initrd"}, func(t *testing.T, evs []timedEvent) {
			if e := first(evs, "http"); e == nil || !strings.HasPrefix(e.Detail, "snponly.efi") {
				t.Errorf("the firmware did not load snponly.efi over HTTP: %+v", e)
			}
		}},
		{"iso", mac("52:54:00:00:09:02", "52:54:00:00:09:12"), []string{"dhcp-offer", "image"}, func(t *testing.T, evs []timedEvent) {
			// EDK II asks HEAD (size and type), then GETs the whole image.
			var got int64
			for _, e := range evs {
				if e.Stage == "image" {
					got = max(got, e.Bytes)
				}
			}
			if got != isoSize {
				t.Errorf("largest image download %d bytes, want the whole ISO (%d)", got, isoSize)
			}
			if e := first(evs, "script"); e != nil {
				t.Errorf("the ISO machine ran iPXE: %+v", e)
			}
		}},
	} {
		if !slices.Contains(cases, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: tc.mac, Timeout: 5 * time.Minute, FwCfg: uefiHTTPOnly})
			vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
			t.Logf("uefi %s %s: %s after %v", strings.Trim(option, `"`), tc.name, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			// OVMF falls back to its next boot option silently: the boot
			// must be the one this test means.
			line := bootLine(vm.Serial())
			if !strings.Contains(line, option) {
				t.Errorf("the boot option started was not %s: %q\n%s", option, line, tail(vm.Serial(), 3<<10))
			}
			evs := logTimeline(t, n, tc.mac)
			if len(evs) > 0 {
				t.Logf("%s; first event %.1fs after QEMU started", line, evs[0].Time.Sub(vm.Started).Seconds())
			}
			var stages []event
			for _, e := range evs {
				stages = append(stages, event{Stage: e.Stage, Detail: e.Detail, Bytes: e.Bytes})
				switch e.Stage {
				case "http", "image", "script", "kernel", "initrd":
					if a, err := netip.ParseAddr(e.IP); err != nil || a.Is6() != v6 {
						t.Errorf("%s from %q: wrong IP version", e.Stage, e.IP)
					}
				}
			}
			if err := stagesInOrder(stages, tc.stages...); err != nil {
				t.Error(err)
			}
			if e := first(evs, "dhcp-offer"); e == nil || !strings.Contains(e.Detail, "uefi-http") {
				t.Errorf("first offer was not for UEFI HTTP boot: %+v", e)
			}
			tc.check(t, evs)
		})
	}
	if strings.Contains(pxed.Output(), "level=ERROR") {
		t.Errorf("pxed logged errors:\n%s", pxed.Output())
	}
}

// bootLine is the serial log's last `BdsDxe: starting Boot…` line: the
// boot option the firmware ran.
func bootLine(serial string) string {
	var line string
	for _, l := range strings.Split(serial, "\n") {
		if strings.Contains(l, "BdsDxe: starting Boot") {
			line = strings.TrimSpace(l)
		}
	}
	return line
}

func first(evs []timedEvent, stage string) *timedEvent {
	for i := range evs {
		if evs[i].Stage == stage {
			return &evs[i]
		}
	}
	return nil
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestHTTPBootOVMFServerRole HTTP-Boots the ISO with pxed as the segment's
// only DHCPv4 server: EDK II takes address and URL from one offer (its
// "HttpIpUri" offer: yiaddr, vendor class HTTPClient, the URL in the
// file field) and boots the image over HTTP.
func TestHTTPBootOVMFServerRole(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about 40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	iso := buildLiveISO(t)
	data := t.TempDir()
	startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: `+data+`
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
dhcp:
  mode: server
  range: 192.0.2.100-192.0.2.200
  probe_timeout: "off"
profiles:
  live:
    image: `+iso+`
`)
	const mac = "52:54:00:00:09:21"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 5 * time.Minute, FwCfg: uefiHTTPOnly})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("uefi HTTPv4, pxed the DHCP server: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	if line := bootLine(vm.Serial()); !strings.Contains(line, `"UEFI HTTPv4`) {
		t.Errorf("the boot option started was not UEFI HTTPv4: %q", line)
	}
	evs := logTimeline(t, n, mac)
	var stages []event
	var got int64
	for _, e := range evs {
		stages = append(stages, event{Stage: e.Stage, Detail: e.Detail, Bytes: e.Bytes})
		if e.Stage == "image" {
			got = max(got, e.Bytes)
			if a, err := netip.ParseAddr(e.IP); err != nil || !a.Is4() || !strings.HasPrefix(e.IP, "192.0.2.1") || e.IP == "192.0.2.1" {
				t.Errorf("image fetched from %q, want an address pxed leased", e.IP)
			}
		}
	}
	if err := stagesInOrder(stages, "dhcp-offer", "dhcp-ack", "image"); err != nil {
		t.Error(err)
	}
	if got != fileSize(t, iso) {
		t.Errorf("largest image download %d bytes, want the whole ISO (%d)", got, fileSize(t, iso))
	}
	if e := first(evs, "dhcp-offer"); e == nil || !strings.Contains(e.Detail, "uefi-http") {
		t.Errorf("the offer was not for UEFI HTTP boot: %+v", e)
	}
	found := false
	for _, l := range leases(t, data) {
		found = found || l.MAC == mac
	}
	if !found {
		t.Errorf("no lease of %s in pxed leases: %v", mac, leases(t, data))
	}
}
