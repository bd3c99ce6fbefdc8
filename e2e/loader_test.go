package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// The tests here boot real loaders that pxed configures from one profile:
// Debian's signed shim and GRUB under Secure Boot, and PXELINUX.

// loaderLab runs `pxed serve` as the lab's only DHCP server (mode server:
// GRUB takes its TFTP server from the ACK) with Debian's loaders as the
// boot directory and one profile per loader. The %%[1]s and %%[2]s of
// startServeConfig are the bridge and a data directory.
func loaderLab(t *testing.T, n *lab.Net) *lab.Proc {
	t.Helper()
	return loaderLabRole(t, n, "dhcp:\n  mode: server\n  range: 192.0.2.100-192.0.2.200\n")
}

// loaderLabRole is loaderLab with dhcp, the dhcp: section of the config.
func loaderLabRole(t *testing.T, n *lab.Net, dhcp string) *lab.Proc {
	t.Helper()
	kernel, initrd := lab.Assets(t)
	loaders := lab.LoaderAssets(t)
	profile := func(loader string, extra string) string {
		return fmt.Sprintf("    kernel: %s\n    initrds: [%s]\n    cmdline: console=ttyS0 panic=-1\n    loader: %s\n%s", kernel, initrd, loader, extra)
	}
	pxed := startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: %[2]s
`+dhcp+`boot_dir: `+loaders+`
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
profiles:
  secure:
`+profile("grub", "    secure_boot: true\n")+`  pxelinux:
`+profile("pxelinux", "")+`  grub:
`+profile("grub", "    boot_files: {bios: grub/i386-pc/core.0}\n")+`  grubhttp:
`+profile("grub", "    boot_files: {efi-x64: grubx64-http.efi}\n")+`machines:
  "52:54:00:00:10:01": secure
  "52:54:00:00:10:02": pxelinux
  "52:54:00:00:10:03": grub
  "52:54:00:00:10:04": grubhttp
`)
	return pxed
}

// TestLoaderGRUBSecureBoot boots OVMF with Secure Boot on and Microsoft's
// keys enrolled: EDK II loads Debian's shim (signed by Microsoft's UEFI
// CA) over TFTP from the machine's directory, shim loads Debian's signed
// grubnetx64 next to it (grubx64.efi, from the boot directory), GRUB reads
// the configuration pxed generates and loads Debian's signed kernel, whose
// initramfs reports what the kernel saw: Secure Boot enabled.
func TestLoaderGRUBSecureBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about a minute under TCG); not in -short")
	}
	if b, err := os.ReadFile(lab.LoaderAssets(t) + "/../.kernel-origin"); err == nil && strings.Contains(string(b), "unsigned") {
		t.Skipf("the lab kernel is unsigned (%s): Secure Boot needs Debian's signed linux-image", strings.TrimSpace(string(b)))
	}
	n := lab.NewNet(t)
	pxed := loaderLab(t, n)
	const mac = "52:54:00:00:10:01"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, SecureBoot: true, MAC: mac, Timeout: 5 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("Secure Boot: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	serial := vm.Serial()
	if !strings.Contains(serial, "pxed-lab: Secure boot enabled") {
		var lines []string
		for _, l := range strings.Split(serial, "\n") {
			if strings.Contains(l, "pxed-lab") || strings.Contains(strings.ToLower(l), "secure boot") || strings.Contains(l, lab.BootMarker) {
				lines = append(lines, l)
			}
		}
		t.Errorf("the initramfs did not see Secure Boot enabled; serial lines about it:\n%s", strings.Join(lines, "\n"))
	}
	evs := logTimeline(t, n, mac)
	var seq []event
	for _, e := range evs {
		seq = append(seq, event{Stage: e.Stage, Detail: e.Detail})
	}
	if err := stagesInOrder(seq, "dhcp-ack", "tftp-done", "loader-config", "tftp-done"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	log := pxed.Output()
	for _, f := range []string{"boot/52-54-00-00-10-01/shimx64.efi", "boot/52-54-00-00-10-01/grubx64.efi", "grub/grub.cfg-01-52-54-00-00-10-01", "/boot/52-54-00-00-10-01/vmlinuz"} {
		if !strings.Contains(log, f) {
			t.Errorf("pxed never served %s", f)
		}
	}
}

// TestLoaderPXELINUXFromIPXE boots a BIOS machine (SeaBIOS and the NIC's
// iPXE ROM): iPXE's script chains pxelinux.0 over HTTP from the machine's
// directory (/boot/<mac>/, where the name falls back to the boot
// directory), PXELINUX asks for ldlinux.c32 and its configuration next to
// its own URL, gets ldlinux.c32 from the boot directory and the
// pxelinux.cfg/01-<mac> pxed generates, and boots the kernel it names.
func TestLoaderPXELINUXFromIPXE(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about 30 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	pxed := loaderLab(t, n)
	const mac = "52:54:00:00:10:02"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 5 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("PXELINUX: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := logTimeline(t, n, mac)
	var seq []event
	for _, e := range evs {
		seq = append(seq, event{Stage: e.Stage, Detail: e.Detail})
	}
	if err := stagesInOrder(seq, "dhcp-ack", "script", "http", "http", "loader-config", "kernel", "initrd"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	log := pxed.Output()
	for _, f := range []string{"pxelinux.0", "ldlinux.c32", "pxelinux.cfg/01-52-54-00-00-10-02"} {
		if !strings.Contains(log, f) {
			t.Errorf("pxed never served %s", f)
		}
	}
}

// TestLoaderPXELINUXFromPXEROM boots a BIOS machine whose PXE ROM loads
// pxelinux.0 itself, over TFTP, with no iPXE script in between: the iPXE
// NIC ROM is a PXE ROM that announces itself as iPXE (user class), which
// pxed would hand its script, so the boot file comes from a boot menu
// item (timeout 0: taken at once), as a boot server would give any PXE
// ROM. PXELINUX, loaded from the TFTP root and running on the ROM's PXE
// API, gets ldlinux.c32 from the boot directory and pxelinux.cfg/01-<mac>,
// which pxed generates from the machine's profile naming the kernel and
// initrd by their root path (::boot/<mac>/…), and boots them.
func TestLoaderPXELINUXFromPXEROM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about 30 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	pxed := loaderLabRole(t, n, `dhcp:
  mode: server
  range: 192.0.2.100-192.0.2.200
menu:
  timeout: 0
  items:
    - {name: pxelinux, description: "PXELINUX", boot_file: pxelinux.0}
`)
	const mac = "52:54:00:00:10:02"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("PXELINUX from the PXE ROM: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := logTimeline(t, n, mac)
	var seq []event
	for _, e := range evs {
		seq = append(seq, event{Stage: e.Stage, Detail: e.Detail})
	}
	if err := stagesInOrder(seq, "dhcp-ack", "pxe-menu-item", "tftp-done", "tftp-done", "loader-config", "tftp-done", "tftp-done"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	for _, e := range seq {
		if e.Stage == "script" || e.Stage == "http" {
			t.Errorf("the PXE ROM went through iPXE's HTTP path: %s %s", e.Stage, e.Detail)
		}
	}
	log := pxed.Output()
	for _, f := range []string{"pxelinux.0", "ldlinux.c32", "pxelinux.cfg/01-52-54-00-00-10-02", "boot/52-54-00-00-10-02/vmlinuz", "boot/52-54-00-00-10-02/initrd.img"} {
		if !strings.Contains(log, "tftp: transfer done\" proto=tftp file="+f+" ") {
			t.Errorf("pxed never served %s over TFTP", f)
		}
	}
}

// TestLoaderGRUBHTTPBoot boots OVMF through UEFI HTTP Boot only (no PXE
// boot option) into GRUB: the firmware loads grubx64-http.efi (GRUB for
// x86_64-efi with the http module and no prefix, built by `make assets`
// from Debian's grub-efi-amd64-bin) over HTTP from the machine's
// directory. GRUB takes its network and root, (http,192.0.2.1:8080), from
// the firmware's device path and its prefix from the directory it was
// loaded from, so it asks for grub.cfg there: pxed's generated
// configuration, which loads the kernel and initrd over HTTP. Debian's
// signed grubnetx64 cannot do this: it has no http module (see README).
func TestLoaderGRUBHTTPBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about 25 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	loaderLab(t, n)
	const mac = "52:54:00:00:10:04"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, FwCfg: uefiHTTPOnly, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("GRUB over UEFI HTTP Boot: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	if !strings.Contains(vm.Serial(), `starting Boot0001 "UEFI HTTPv4`) {
		t.Errorf("OVMF did not boot its HTTPv4 boot option:\n%s", tail(vm.Serial(), 3<<10))
	}
	evs := logTimeline(t, n, mac)
	var seq []event
	for _, e := range evs {
		seq = append(seq, event{Stage: e.Stage, Detail: e.Detail})
		if e.Stage == "tftp-start" {
			t.Errorf("UEFI HTTP Boot used TFTP: %s", e.Detail)
		}
	}
	if err := stagesInOrder(seq, "dhcp-ack", "http", "loader-config", "kernel", "initrd"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	if d := menuDetail(seq, "loader-config"); d != "grub grub.cfg (profile grubhttp)" {
		t.Errorf("loader-config %q, want GRUB's grub.cfg in the machine's directory over HTTP", d)
	}
}

// TestLoaderGRUBBIOS boots a BIOS machine into GRUB's i386-pc network
// image (grub/i386-pc/core.0 with prefix /grub, laid out as grub-mknetdir
// does and built by `make assets` from Debian's grub-pc-bin): the NIC's
// iPXE ROM gets pxed's script, which chains core.0 over HTTP from the
// machine's directory; GRUB, on the ROM's PXE API, asks the TFTP server
// of the DHCP ACK for grub.cfg-<uuid> (not generated), then
// grub.cfg-01-<mac>, which pxed generates, and loads the kernel and
// initrd it names over TFTP.
func TestLoaderGRUBBIOS(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (about 40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	pxed := loaderLab(t, n)
	const mac = "52:54:00:00:10:03"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("GRUB on BIOS: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := logTimeline(t, n, mac)
	var seq []event
	for _, e := range evs {
		seq = append(seq, event{Stage: e.Stage, Detail: e.Detail})
	}
	if err := stagesInOrder(seq, "dhcp-ack", "script", "http", "loader-config", "tftp-done", "tftp-done"); err != nil {
		t.Errorf("timeline: %v", err)
	}
	log := pxed.Output()
	for _, f := range []string{"/grub/grub.cfg-01-52-54-00-00-10-03", "/boot/52-54-00-00-10-03/vmlinuz", "/boot/52-54-00-00-10-03/initrd.img"} {
		if !strings.Contains(log, "tftp: transfer done\" proto=tftp file="+f+" ") {
			t.Errorf("pxed never served %s over TFTP", f)
		}
	}
}
