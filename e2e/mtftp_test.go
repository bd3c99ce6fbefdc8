package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// TestMulticastOnOVMFBoots: with multicast TFTP on for every boot file (PXE
// MTFTP and RFC 2090), an OVMF machine still PXE-boots to the marker. EDK II
// discards any offer carrying option 43 sub-options 1–5, so pxed must never
// send them to it whatever the configuration says; had it sent them, the
// firmware would have found no usable offer and moved on.
func TestMulticastOnOVMFBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (~20 s under TCG); not in -short")
	}
	kernel, initrd := lab.Assets(t)
	n := lab.NewNet(t)
	startAddressServer(t, n)
	cfg := fmt.Sprintf(`interfaces: [%s]
dhcp: {mode: proxy}
data_dir: %s
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
tftp_multicast:
  enabled: true
  groups: 239.255.70.0/24
  pxe: {enabled: true, files: ["*"]}
default_profile: linux
profiles:
  linux:
    kernel: %s
    initrds: [%s]
    cmdline: console=ttyS0 panic=-1
    multicast: true
`, n.Bridge(), t.TempDir(), kernel, initrd)
	cfgFile := filepath.Join(t.TempDir(), "pxed.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, n.NS(), pxedBin, "serve", "--config", cfgFile)
	waitServing(t, n, p)

	const mac = "52:54:00:00:0a:01"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 5 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("OVMF with multicast on: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	if err := stagesInOrder(timeline(t, n, mac), "dhcp-offer", "tftp-done", "dhcp-offer", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
	if strings.Contains(p.Output(), "level=ERROR") {
		t.Errorf("pxed logged errors:\n%s", p.Output())
	}
}
