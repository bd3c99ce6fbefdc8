package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// startFleetPxed runs `pxed serve` as ProxyDHCP with two profiles that
// differ in their command line (pxed.profile=NAME, printed by the kernel)
// and the fleet settings in extra.
func startFleetPxed(t *testing.T, n *lab.Net, extra string) *lab.Proc {
	t.Helper()
	kernel, initrd := lab.Assets(t)
	p := startServeConfig(t, n, `interfaces: [%[1]s]
data_dir: %[2]s
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
default_profile: linux
profiles:
  linux:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
    cmdline: console=ttyS0 panic=-1 pxed.profile=linux
  install:
    kernel: `+kernel+`
    initrds: [`+initrd+`]
    cmdline: console=ttyS0 panic=-1 pxed.profile=install pxed.host={{.Hostname}} pxed.checkin={{.CheckinURL}}
`+extra)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pxed output:\n%s", tail(p.Output(), 8<<10))
		}
	})
	return p
}

// api calls pxed's API from the lab namespace and returns the body.
func api(t *testing.T, n *lab.Net, method, path, body string) string {
	t.Helper()
	args := []string{"-sS", "--fail-with-body", "-X", method, "http://192.0.2.1:8080" + path}
	if body != "" {
		args = append(args, "-H", "Content-Type: application/json", "-d", body)
	}
	out, err := lab.Run(t, n.NS(), "curl", args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, out)
	}
	return out
}

type apiMachine struct {
	State            string `json:"state"`
	EffectiveProfile string `json:"effective_profile"`
	BootOnce         *struct {
		Profile, Then string
	} `json:"boot_once"`
	Firmware string `json:"firmware"`
}

func machine(t *testing.T, n *lab.Net, mac string) apiMachine {
	t.Helper()
	var m apiMachine
	if err := json.Unmarshal([]byte(api(t, n, "GET", "/api/machines/"+mac, "")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBootOnceThenCheckin: a machine set to boot the install profile once
// boots it (its command line carries its check-in URL); the check-in
// switches it, and its next boot gets the other profile.
func TestBootOnceThenCheckin(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU twice (30-40 s each under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startFleetPxed(t, n, "")
	const mac = "52:54:00:00:11:01"
	// Set up before the machine ever booted: the inventory takes it.
	api(t, n, "POST", "/api/machines/"+mac+"/boot-once", `{"profile":"install","then":"linux"}`)

	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac})
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	if got := cmdlineProfile(vm.Serial()); got != "install" {
		t.Fatalf("first boot: profile %q, want install (boot-once)", got)
	}
	m := regexp.MustCompile(`pxed\.checkin=http://192\.0\.2\.1:8080(/api/machines/` + mac + `/checkin\?token=\S+)`).FindStringSubmatch(vm.Serial())
	if m == nil {
		t.Fatalf("the install command line lacks its check-in URL with its token (template .CheckinURL)")
	}
	vm.Proc.Stop()
	// Without the machine's token nobody checks it in.
	if out, err := lab.Run(t, n.NS(), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
		"http://192.0.2.1:8080/api/machines/"+mac+"/checkin"); err != nil || out != "401" {
		t.Errorf("check-in without the token: %v %s, want 401", err, out)
	}
	// What the installed system does when done, with the URL it was given
	// (the lab initramfs has no network client, so the test does it).
	api(t, n, "POST", m[1], "")
	if got := machine(t, n, mac); got.BootOnce != nil || got.EffectiveProfile != "linux" {
		t.Fatalf("after check-in: %+v, want no boot-once and profile linux", got)
	}

	vm2 := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac})
	vm2.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	if got := cmdlineProfile(vm2.Serial()); got != "linux" {
		t.Errorf("second boot: profile %q, want linux (then)", got)
	}
	if err := stagesInOrder(timeline(t, n, mac), "boot-once", "script", "kernel", "checkin", "script", "kernel"); err != nil {
		t.Error(err)
	}
}

// TestHoldThenApprove: with unknown_machines hold, a new machine boots
// into the waiting script and polls; approved through the API, it boots
// its profile to the marker.
func TestHoldThenApprove(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startFleetPxed(t, n, "unknown_machines: hold\n")
	const mac = "52:54:00:00:11:02"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac})
	// It polls: the waiting script fetches itself again every few
	// seconds (iPXE writes to the screen, not the serial console, here).
	lab.WaitFor(t, 3*time.Minute, "the held machine to poll its script", func() bool {
		out, err := lab.Run(t, n.NS(), "curl", "-sf", "http://192.0.2.1:8080/api/machines/"+mac+"/timeline")
		var evs []event
		if err != nil || json.Unmarshal([]byte(out), &evs) != nil {
			return false // not seen yet
		}
		k := 0
		for _, e := range evs {
			if e.Stage == "script" {
				k++
			}
		}
		return k >= 2
	})
	if m := machine(t, n, mac); m.State != "pending" {
		t.Fatalf("held machine state %q, want pending", m.State)
	}
	if strings.Contains(vm.Serial(), lab.BootMarker) {
		t.Fatal("a held machine booted before approval")
	}
	api(t, n, "POST", "/api/machines/"+mac+"/approve", "")
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	if got := cmdlineProfile(vm.Serial()); got != "linux" {
		t.Errorf("approved machine booted %q, want linux", got)
	}
	if err := stagesInOrder(timeline(t, n, mac), "machine-held", "script", "machine-approved", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
}
