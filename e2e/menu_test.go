package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// startMenuPxed runs `pxed serve` as ProxyDHCP with two profiles that
// differ in their kernel command line (pxed.profile=NAME, which the
// kernel prints on the serial console) and a boot menu.
func startMenuPxed(t *testing.T, n *lab.Net, menu string) *lab.Proc {
	t.Helper()
	return startServeConfigAt(t, n.NS(), n.Bridge(), "192.0.2.1", menuPxedConfig(t, "192.0.2.1", menu))
}

// menuPxedConfig is startMenuPxed's configuration for a pxed serving TFTP
// and HTTP on ip (interface and data dir left to startServeConfigAt).
func menuPxedConfig(t *testing.T, ip, menu string) string {
	kernel, initrd := lab.Assets(t)
	return `interfaces: [%[1]s]
data_dir: %[2]s
tftp_addr: "` + ip + `:69"
http_addr: "` + ip + `:8080"
log_level: debug
default_profile: linux
profiles:
  linux:
    kernel: ` + kernel + `
    initrds: [` + initrd + `]
    cmdline: console=ttyS0 panic=-1 pxed.profile=linux
  rescue:
    kernel: ` + kernel + `
    initrds: [` + initrd + `]
    cmdline: console=ttyS0 panic=-1 pxed.profile=rescue
` + menu
}

// twoItemMenu lists Rescue first but makes Linux the default, so pxed
// sends Linux first: the item firmware boots when the prompt times out.
func twoItemMenu(timeout int) string {
	return fmt.Sprintf(`menu:
  prompt: "Press F8 for the pxed menu"
  timeout: %d
  default: linux
  items:
    - name: rescue
      description: "pxed rescue shell"
      profile: rescue
    - name: linux
      description: "pxed linux"
      profile: linux
    - description: "Local disk"
      local: true
`, timeout)
}

// cmdlineProfile is the pxed.profile= of the kernel command line the
// booted kernel printed.
func cmdlineProfile(serial string) string {
	m := regexp.MustCompile(`Command line:[^\n]*pxed\.profile=(\w+)`).FindStringSubmatch(serial)
	if m == nil {
		// Say what the console showed instead, for the failure message.
		lines := regexp.MustCompile(`[^\n]*ommand line[^\n]*`).FindAllString(serial, 3)
		return fmt.Sprintf("none (command lines on the serial console: %q)", lines)
	}
	return m[1]
}

func menuDetail(evs []event, stage string) string {
	for _, e := range evs {
		if e.Stage == stage {
			return e.Detail
		}
	}
	return ""
}

// TestMenuDefaultOnTimeout boots SeaBIOS with the iPXE NIC ROM and OVMF
// (EDK II's own PXE) through a two-item menu: each shows the prompt, lets
// it time out and boots the default item (Linux, sent first), asking
// pxed's boot server for it by unicast on port 4011 (the offer lists
// pxed as the boot server and turns broadcast and multicast off).
func TestMenuDefaultOnTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (30-60 s each under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startMenuPxed(t, n, twoItemMenu(3))
	for _, tc := range []struct {
		fw  lab.Firmware
		mac string
	}{
		{lab.UEFI, "52:54:00:00:0c:01"},
		{lab.BIOS, "52:54:00:00:0c:02"},
	} {
		t.Run(tc.fw.String(), func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: tc.fw, MAC: tc.mac, SerialInput: true, Timeout: 5 * time.Minute})
			vm.WaitSerial(t, "Press F8 for the pxed menu", 3*time.Minute)
			vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
			t.Logf("%s: %s after %v", tc.fw, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			if got := cmdlineProfile(vm.Serial()); got != "linux" {
				t.Errorf("booted profile %q, want the default linux", got)
			}
			evs := timeline(t, n, tc.mac)
			if err := stagesInOrder(evs, "pxe-menu", "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
				t.Error(err)
			}
			if d := menuDetail(evs, "pxe-menu-item"); !strings.Contains(d, `"pxed linux" type 32770 layer 0`) || !strings.Contains(d, "profile linux") ||
				!strings.Contains(d, "request by unicast to port 4011") {
				t.Errorf("pxe-menu-item %q, want the linux item (type 32770, layer 0) asked by unicast to port 4011", d)
			}
		})
	}
}

// TestMenuTypedChoice picks the menu's second item by typing on the serial
// console: on OVMF "m" at EDK II's prompt shows the menu (PxeBcSelectBootPrompt),
// "d" moves down and Enter chooses (PxeBcSelectBootMenu); on the iPXE ROM
// F8 (ESC [19~, which SeaBIOS's serial console turns into the F8 key) shows
// the menu and "B" chooses item B (pxe_menu_select). The machine then boots
// the rescue profile.
func TestMenuTypedChoice(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (30-60 s each under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startMenuPxed(t, n, twoItemMenu(30))
	for _, tc := range []struct {
		fw         lab.Firmware
		mac        string
		show, pick string
	}{
		{lab.UEFI, "52:54:00:00:0c:11", "m", "d\r"},
		{lab.BIOS, "52:54:00:00:0c:12", "\x1b[19~", "B"},
	} {
		t.Run(tc.fw.String(), func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: tc.fw, MAC: tc.mac, SerialInput: true, Timeout: 5 * time.Minute})
			vm.WaitSerial(t, "Press F8 for the pxed menu", 3*time.Minute)
			vm.Type(t, tc.show)
			vm.WaitSerial(t, "pxed rescue shell", time.Minute)
			vm.Type(t, tc.pick)
			vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
			t.Logf("%s: %s after %v", tc.fw, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			if got := cmdlineProfile(vm.Serial()); got != "rescue" {
				t.Errorf("booted profile %q, want rescue (the item typed)", got)
			}
			evs := timeline(t, n, tc.mac)
			if err := stagesInOrder(evs, "pxe-menu", "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
				t.Error(err)
			}
			if d := menuDetail(evs, "pxe-menu-item"); !strings.Contains(d, `"pxed rescue shell" type 32769 layer 0`) || !strings.Contains(d, "profile rescue") {
				t.Errorf("pxe-menu-item %q, want the rescue item (type 32769, layer 0)", d)
			}
		})
	}
}

// TestMenuLocalBoot gives OVMF a menu whose default is local boot with
// timeout 0: EDK II picks it without a prompt, cancels the network boot
// (PxeBcDiscoverBootFile returns EFI_ABORTED for type 0, "PXE-E21") and
// its boot manager moves on to the next boot option (the boot manager
// reports the PXEv4 option "Not Found"). pxed sees no boot server request
// and serves no file over TFTP.
func TestMenuLocalBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-60 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startMenuPxed(t, n, `menu:
  timeout: 0
  default: local
  items:
    - name: linux
      description: "pxed linux"
      profile: linux
    - name: local
      description: "Local disk"
      local: true
`)
	const mac = "52:54:00:00:0c:21"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, SerialInput: true, Timeout: 5 * time.Minute})
	vm.WaitSerial(t, "PXE-E21: Remote boot cancelled", 3*time.Minute)
	next := regexp.MustCompile(`BdsDxe: loading (Boot[0-9A-F]{4} "[^"]*")`)
	lab.WaitFor(t, 2*time.Minute, "OVMF to load its next boot option", func() bool {
		for _, m := range next.FindAllStringSubmatch(vm.Serial(), -1) {
			if !strings.Contains(m[1], "PXEv4") {
				return true
			}
		}
		return false
	})
	s := vm.Serial()
	if !regexp.MustCompile(`PXE-E21: Remote boot cancelled.\s+BdsDxe: failed to load Boot[0-9A-F]{4} "UEFI PXEv4`).MatchString(s) {
		t.Errorf("no failed PXEv4 boot option on the serial console:\n%s", tail(s, 3<<10))
	}
	t.Logf("moved on after %v: %v", time.Since(vm.Started).Round(100*time.Millisecond), next.FindAllStringSubmatch(s, -1))
	evs := timeline(t, n, mac)
	if err := stagesInOrder(evs, "pxe-menu"); err != nil {
		t.Error(err)
	}
	for _, e := range evs {
		if e.Stage == "pxe-menu-item" || e.Stage == "tftp-start" {
			t.Errorf("local boot reached pxed: %s %s", e.Stage, e.Detail)
		}
	}
}

// oneItemMenu is a menu whose only network item boots the linux profile
// at once (timeout 0: no prompt), with discovery (a YAML flow list) and
// extra lines (multicast_address:) as given.
func oneItemMenu(discovery, extra string) string {
	return `menu:
  timeout: 0
  discovery: ` + discovery + `
` + extra + `  items:
    - name: linux
      description: "pxed linux"
      profile: linux
    - description: "Local disk"
      local: true
`
}

// TestMenuDiscoveryBroadcast gives OVMF a menu with broadcast discovery
// only (discovery control: no multicast, no boot server list): EDK II
// (PxeBcDiscoverBootFile: multicast if allowed, else broadcast, else the
// list) broadcasts its boot server request to port 67
// (PxeBcDhcp4Discover with no destination: 255.255.255.255,
// PXEBC_DHCP4_S_PORT), pxed answers it there and the machine boots the
// item.
func TestMenuDiscoveryBroadcast(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startMenuPxed(t, n, oneItemMenu("[broadcast]", ""))
	const mac = "52:54:00:00:0c:31"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("broadcast discovery: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := timeline(t, n, mac)
	if err := stagesInOrder(evs, "pxe-menu", "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
	if d := menuDetail(evs, "pxe-menu-item"); !strings.Contains(d, `"pxed linux" type 32769 layer 0`) || !strings.Contains(d, "request by broadcast to port 67") {
		t.Errorf("pxe-menu-item %q, want the linux item (type 32769, layer 0) asked by broadcast to port 67", d)
	}
}

// TestMenuDiscoveryMulticast gives SeaBIOS's iPXE NIC ROM a menu with
// multicast discovery only: iPXE (start_pxebs: the multicast address
// unless discovery control forbids it, then broadcast, then the list)
// sends its boot server request to 239.0.2.1:4011, which pxed joined on
// the lab interface, and boots the item.
func TestMenuDiscoveryMulticast(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startMenuPxed(t, n, oneItemMenu("[multicast]", "  multicast_address: 239.0.2.1\n"))
	const mac = "52:54:00:00:0c:32"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("multicast discovery: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := timeline(t, n, mac)
	if err := stagesInOrder(evs, "pxe-menu", "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
	if d := menuDetail(evs, "pxe-menu-item"); !strings.Contains(d, `"pxed linux" type 32769 layer 0`) || !strings.Contains(d, "request by multicast to 239.0.2.1:4011") {
		t.Errorf("pxe-menu-item %q, want the linux item (type 32769, layer 0) asked by multicast to 239.0.2.1:4011", d)
	}
}

// TestMenuBootServerOtherHost spreads boot servers over two hosts: the
// item's boot servers are other machines (PXE 2.1 sub-option 8 lists
// two for its type: 192.0.2.9, where nothing answers, then 192.0.2.3,
// running pxed with the same configuration). The SeaBIOS iPXE ROM gets
// the menu (from either server's ProxyDHCP offer), asks the first
// listed server on port 4011 by unicast, gives up on it after 3 s and
// asks the next (iPXE net/udp/dhcp.c: dhcp_pxebs_expired moves
// pxe_attempt to the next address after PXEBS_MAX_TIMEOUT), and boots
// what 192.0.2.3 answers: that host's script, kernel and initrd.
//
// The firmware is the iPXE ROM, which boots the answer itself; the OVMF
// case, where an iPXE NBP DHCPs again after the choice, is
// TestMenuBootServerOnlyOVMF.
func TestMenuBootServerOtherHost(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	const menu = `menu:
  timeout: 0
  items:
    - name: linux
      description: "pxed linux"
      profile: linux
      servers: [192.0.2.9, 192.0.2.3]
`
	startMenuPxed(t, n, menu)
	h := n.AddHost(t, "bootsrv", mustPrefix("192.0.2.3/24"))
	startServeConfigAt(t, h.NS, h.Iface, "192.0.2.3", menuPxedConfig(t, "192.0.2.3", menu))
	const mac = "52:54:00:00:0c:33"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("boot server on another host: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := timelineAt(t, h.NS, "192.0.2.3", mac)
	if d := menuDetail(evs, "pxe-menu-item"); !strings.Contains(d, `"pxed linux" type 32769 layer 0`) || !strings.Contains(d, "request by unicast to port 4011") {
		t.Errorf("the second server's pxe-menu-item %q, want the linux item asked of it by unicast to port 4011", d)
	}
	if err := stagesInOrder(evs, "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
		t.Errorf("the second server did not serve the item's boot: %v", err)
	}
	for _, e := range timeline(t, n, mac) {
		if e.Stage == "pxe-menu-item" {
			t.Errorf("the first server answered the item it does not serve: %+v", e)
		}
	}
}

// TestMenuBootServerOnlyOVMF spreads boot servers over two hosts for
// OVMF (EDK II's own PXE): the first pxed (ProxyDHCP) offers the menu,
// whose default item, rescue, is served by the second host
// (servers: [192.0.2.3]), a pxed in dhcp mode boot-server that sends no
// ProxyDHCP offers. The prompt times out, EDK II asks the second host on
// port 4011 for the item and loads snponly.efi from it; that iPXE DHCPs
// again and only the first server offers: it does not know the choice,
// sends no menu (iPXE would run its own) and names the second host's
// script, which boots the rescue profile (the machine's own profile,
// linux, would be the wrong one).
func TestMenuBootServerOnlyOVMF(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	const menu = `menu:
  prompt: "Press F8 for the pxed menu"
  timeout: 3
  default: rescue
  items:
    - name: linux
      description: "pxed linux"
      profile: linux
    - name: rescue
      description: "pxed rescue shell"
      profile: rescue
      servers: [192.0.2.3]
`
	h := startBootServerHosts(t, n, menu, "192.0.2.3")["192.0.2.3"]
	const mac = "52:54:00:00:0c:35"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, SerialInput: true, Timeout: 5 * time.Minute})
	vm.WaitSerial(t, "Press F8 for the pxed menu", 3*time.Minute)
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("OVMF, boot-server-only second host: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	if got := cmdlineProfile(vm.Serial()); got != "rescue" {
		t.Errorf("booted profile %q, want rescue, the default item's (served by the second host)", got)
	}
	second := timelineAt(t, h.NS, "192.0.2.3", mac)
	if d := menuDetail(second, "pxe-menu-item"); !strings.Contains(d, `"pxed rescue shell" type 32770 layer 0`) || !strings.Contains(d, "snponly.efi") ||
		!strings.Contains(d, "request by unicast to port 4011") {
		t.Errorf("the second server's pxe-menu-item %q, want the rescue item (type 32770) asked by EDK II by unicast to port 4011", d)
	}
	if err := stagesInOrder(second, "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
		t.Errorf("the second server did not serve the item's boot: %v", err)
	}
	for _, e := range second {
		if e.Stage == "pxe-menu" || e.Stage == "dhcp-offer" {
			t.Errorf("the boot-server-only host made a ProxyDHCP offer: %s %s", e.Stage, e.Detail)
		}
	}
	first := timeline(t, n, mac)
	if err := stagesInOrder(first, "pxe-menu"); err != nil {
		t.Error(err)
	}
	ipxeOffer := false
	for _, e := range first {
		switch {
		case e.Stage == "pxe-menu-item" || e.Stage == "script" || e.Stage == "kernel":
			t.Errorf("the first server served what the second serves: %s %s", e.Stage, e.Detail)
		case e.Stage == "dhcp-offer" && strings.HasPrefix(e.Detail, "ipxe "):
			ipxeOffer = true
			if !regexp.MustCompile(`→ http://192\.0\.2\.3:8080/boot/52-54-00-00-0c-35/\w+/script\.ipxe \(`).MatchString(e.Detail) {
				t.Errorf("the first server's offer to iPXE %q, want the second host's script (with the machine's token)", e.Detail)
			}
		}
	}
	if !ipxeOffer {
		t.Errorf("the first server made iPXE no offer: %+v", first)
	}
}

// TestMenuBootServersOVMF is TestMenuBootServerOnlyOVMF with two boot
// servers on other hosts for the default item, rescue (servers:
// [192.0.2.3, 192.0.2.4], both pxed in dhcp mode boot-server). EDK II
// asks them on port 4011 and loads snponly.efi from one (in every run so
// far from 192.0.2.4: it asked 192.0.2.3 first, then 192.0.2.4 a second
// later, and took that answer). That iPXE DHCPs again and only the first
// server offers: it cannot tell which boot server answered, so it hands
// iPXE the rescue item's boot servers (sub-option 8) and a script that
// runs iPXE's pxebs command for the item's type: iPXE asks 192.0.2.3
// (listed first, alive) by unicast to 4011 and boots its answer, that
// host's script of the rescue profile, whichever host EDK II used.
func TestMenuBootServersOVMF(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (20-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	const menu = `menu:
  prompt: "Press F8 for the pxed menu"
  timeout: 2
  default: rescue
  items:
    - name: linux
      description: "pxed linux"
      profile: linux
    - name: rescue
      description: "pxed rescue shell"
      profile: rescue
      servers: [192.0.2.3, 192.0.2.4]
`
	servers := []string{"192.0.2.3", "192.0.2.4"}
	hosts := startBootServerHosts(t, n, menu, servers...)
	const mac = "52:54:00:00:0c:36"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, SerialInput: true, Timeout: 5 * time.Minute})
	vm.WaitSerial(t, "Press F8 for the pxed menu", 3*time.Minute)
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("OVMF, two boot-server-only hosts: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	if got := cmdlineProfile(vm.Serial()); got != "rescue" {
		t.Errorf("booted profile %q, want rescue, the default item's (served by the other hosts)", got)
	}
	if !strings.Contains(vm.Serial(), "pxed: boot server 192.0.2.3 answered: http://192.0.2.3:8080/boot/52-54-00-00-0c-36/") {
		t.Error("iPXE's discovery script did not print that 192.0.2.3 answered with its script")
	}
	// Who served: EDK II's request (snponly.efi) went to one of them,
	// iPXE's (the script) to 192.0.2.3, which served script, kernel and
	// initrd; the other served no script.
	edk2 := ""
	for _, ip := range servers {
		evs := timelineOrNone(t, hosts[ip].NS, ip, mac)
		ipxe := false
		for _, e := range evs {
			if e.Stage != "pxe-menu-item" {
				continue
			}
			if !strings.Contains(e.Detail, `"pxed rescue shell" type 32770 layer 0`) || !strings.Contains(e.Detail, "request by unicast to port 4011") {
				t.Errorf("%s's pxe-menu-item %q, want the rescue item asked by unicast to port 4011", ip, e.Detail)
			}
			if strings.Contains(e.Detail, "snponly.efi") && stagesInOrder(evs, "pxe-menu-item", "tftp-done") == nil {
				edk2 = ip
			}
			if strings.Contains(e.Detail, "/script.ipxe (profile rescue)") {
				ipxe = stagesInOrder(evs, "pxe-menu-item", "script", "kernel", "initrd") == nil
			}
		}
		if want := ip == "192.0.2.3"; ipxe != want {
			t.Errorf("%s served iPXE's discovery and the rescue boot: %v, want %v: %+v", ip, ipxe, want, evs)
		}
	}
	if edk2 == "" {
		t.Error("neither boot server served EDK II snponly.efi")
	}
	t.Logf("EDK II loaded snponly.efi from %s; iPXE asked 192.0.2.3", edk2)
	var menus []string
	for _, e := range timeline(t, n, mac) {
		switch e.Stage {
		case "pxe-menu":
			menus = append(menus, e.Detail)
		case "pxe-menu-item", "script", "kernel":
			t.Errorf("the first server served what the boot servers serve: %s %s", e.Stage, e.Detail)
		}
	}
	if len(menus) != 2 || !strings.HasPrefix(menus[1], `discovery of "pxed rescue shell" by iPXE`) || !strings.Contains(menus[1], "type 32770: [192.0.2.3 192.0.2.4]") {
		t.Errorf("the first server's pxe-menu events %q, want the menu for EDK II, then the rescue item's boot servers for iPXE", menus)
	}
}

// timelineOrNone is timelineAt for a pxed that may not know mac at all
// (HTTP 404): then no events.
func timelineOrNone(t *testing.T, ns, addr, mac string) []event {
	t.Helper()
	code, err := lab.Run(t, ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+addr+":8080/api/machines/"+mac+"/timeline")
	if err != nil {
		t.Fatalf("timeline of %s at %s: %v\n%s", mac, addr, err, code)
	}
	if strings.TrimSpace(code) == "404" {
		return nil
	}
	return timelineAt(t, ns, addr, mac)
}

// withServerKey gives cfg (a startServeConfigAt configuration) a data
// directory of its own holding key as the server key (DATA_DIR/secret).
// startBootServerHosts starts pxed with menu on the segment (192.0.2.1)
// and, on a host of its own at each of ips, a pxed in dhcp mode
// boot-server (no ProxyDHCP offers) with the same menu; it returns those
// hosts by address. All share one server key (DATA_DIR/secret), as README
// asks: the first server names another's script with the machine's token.
func startBootServerHosts(t *testing.T, n *lab.Net, menu string, ips ...string) map[string]*lab.Host {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	startServeConfigAt(t, n.NS(), n.Bridge(), "192.0.2.1", withServerKey(t, menuPxedConfig(t, "192.0.2.1", menu), key))
	hosts := map[string]*lab.Host{}
	for _, ip := range ips {
		h := n.AddHost(t, "bs"+ip[strings.LastIndexByte(ip, '.')+1:], mustPrefix(ip+"/24"))
		startServeConfigAt(t, h.NS, h.Iface, ip, withServerKey(t, menuPxedConfig(t, ip, "dhcp:\n  mode: boot-server\n"+menu), key))
		hosts[ip] = h
	}
	return hosts
}

func withServerKey(t *testing.T, cfg string, key []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	const placeholder = "data_dir: %[2]s\n"
	if !strings.Contains(cfg, placeholder) {
		t.Fatalf("configuration without %q", placeholder)
	}
	// startServeConfigAt fills in %[2]s: keep it, in a comment.
	return strings.Replace(cfg, placeholder, "data_dir: "+dir+"\n# %[2]s\n", 1)
}

// TestMenuDiscoveryBroadcastServerRole is TestMenuDiscoveryBroadcast with
// pxed the segment's DHCP server (no dnsmasq): the offer carries address
// and menu, and EDK II's broadcast boot server request (a DHCPREQUEST
// with sub-option 71 from a client that already has its address) is
// answered as the item's boot server, not taken for a lease request.
func TestMenuDiscoveryBroadcastServerRole(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	kernel, initrd := lab.Assets(t)
	startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: %[2]s
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
dhcp:
  mode: server
  range: 192.0.2.100-192.0.2.200
  probe_timeout: "off"
default_profile: linux
profiles:
  linux:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
    cmdline: console=ttyS0 panic=-1 pxed.profile=linux
`+oneItemMenu("[broadcast]", ""))
	const mac = "52:54:00:00:0c:34"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 4 * time.Minute})
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("broadcast discovery, server role: %s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	evs := timeline(t, n, mac)
	if err := stagesInOrder(evs, "pxe-menu", "pxe-menu-item", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
	if d := menuDetail(evs, "pxe-menu-item"); !strings.Contains(d, `"pxed linux" type 32769 layer 0`) || !strings.Contains(d, "request by broadcast to port 67") {
		t.Errorf("pxe-menu-item %q, want the linux item (type 32769, layer 0) asked by broadcast to port 67", d)
	}
}
