package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"pxed/internal/lab"
)

// The web page in a real browser (headless Chromium) against the pxed
// binary in a lab: a machine that boots while the page is open appears, and
// its stages arrive on its open timeline, without a reload.

// pageWait bounds each wait for the page (a bound, not a measure).
const pageWait = 3 * time.Minute

func openPage(t *testing.T, n *lab.Net) context.Context {
	t.Helper()
	addr := lab.Forward(t, n.NS(), "192.0.2.1:8080") // the browser runs outside the lab
	ctx := lab.Browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	pageJS(t, ctx, "the live event stream", `document.querySelector('#live').textContent === 'live'`)
	return ctx
}

func pageJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(pageWait)))
	if err != nil {
		t.Fatalf("page: waiting for %s (%s): %v", what, expr, err)
	}
}

func pageEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("page: %s: %v", expr, err)
	}
	return v
}

func machineRow(mac string) string { return `#mlist .row[data-mac="` + mac + `"]:not([hidden])` }

// TestWebUIFollowsProbe: our PXE client (pxed probe) boots twice as UEFI
// from pxed as the DHCP server while the page is open: the machine appears
// with the first boot; with its timeline open, the second boot's stages are
// appended live; the leases tab lists its lease.
func TestWebUIFollowsProbe(t *testing.T) {
	n := lab.NewNet(t)
	startServerMode(t, n, t.TempDir())
	h := n.AddHost(t, "probe", netip.Prefix{})
	const mac = "52:54:00:00:0b:01"
	if out, err := lab.Run(t, h.NS, "ip", "link", "set", h.Iface, "address", mac); err != nil {
		t.Fatalf("set the probe's MAC: %v\n%s", err, out)
	}
	ctx := openPage(t, n)
	loaded := pageEval[float64](t, ctx, `pxedState.loadedAt`)
	probe := func() {
		t.Helper()
		if out, err := lab.Run(t, h.NS, pxedBin, "probe", "--interface", h.Iface, "--arch", "efi-x64", "--fetch",
			"--timeout-scale", probeScale); err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
	}

	probe()
	pageJS(t, ctx, "the machine's row", `document.querySelector('`+machineRow(mac)+`')`)
	pageJS(t, ctx, "its last stage", `document.querySelector('`+machineRow(mac)+` [data-stage="tftp-done"]')`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(machineRow(mac)))); err != nil {
		t.Fatalf("open the timeline: %v", err)
	}
	pageJS(t, ctx, "its timeline", `document.querySelector('#timeline li[data-stage="tftp-done"]')`)

	probe()
	for _, stage := range []string{"dhcp-offer", "tftp-done"} {
		pageJS(t, ctx, stage+" of the second boot, appended live", `document.querySelector('#timeline li.new[data-stage="`+stage+`"]')`)
	}
	if again := pageEval[float64](t, ctx, `pxedState.loadedAt`); again != loaded {
		t.Error("the page reloaded: the machine and its stages must arrive in place")
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`.tabs button[data-tab="leases"]`))); err != nil {
		t.Fatalf("leases tab: %v", err)
	}
	pageJS(t, ctx, "the probe's lease", `[...document.querySelectorAll('#llist .row:not([hidden])')].some(r => r.textContent.includes('`+mac+`') && r.textContent.includes('192.0.2.1'))`)
}

// TestWebUIFollowsQEMUBoot: a BIOS machine (SeaBIOS + iPXE) PXE-boots to
// the lab marker while the page is open; the page shows it appear and its
// script, kernel and initrd arrive on its open timeline as they are served.
func TestWebUIFollowsQEMUBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startPxed(t, n)
	ctx := openPage(t, n)
	loaded := pageEval[float64](t, ctx, `pxedState.loadedAt`)

	const mac = "52:54:00:00:0b:02"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 5 * time.Minute})
	pageJS(t, ctx, "the booting machine's row", `document.querySelector('`+machineRow(mac)+`')`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(machineRow(mac)))); err != nil {
		t.Fatalf("open the timeline: %v", err)
	}
	pageJS(t, ctx, "its timeline", `document.querySelector('#timeline li[data-stage="dhcp-offer"]')`)
	// The timeline was opened at the first DHCP offer; iPXE fetches the
	// script, the kernel and the initrd seconds later under TCG, so each
	// must be appended live (li.new) rather than loaded with the timeline.
	for _, stage := range []string{"kernel", "initrd"} {
		pageJS(t, ctx, stage+" appended live", `document.querySelector('#timeline li.new[data-stage="`+stage+`"]')`)
	}
	pageJS(t, ctx, "the row's last stage", `['kernel', 'initrd'].includes(document.querySelector('`+machineRow(mac)+` [data-stage]').dataset.stage)`)
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	if again := pageEval[float64](t, ctx, `pxedState.loadedAt`); again != loaded {
		t.Error("the page reloaded: the machine and its stages must arrive in place")
	}
}

// TestWebUIApproveHeldMachine: with `unknown_machines: hold` a new machine
// (SeaBIOS + iPXE) appears on the page as pending while it polls the
// waiting script; clicking Approve on the page lets it boot to the marker
// with its profile, and the page shows the approval and the boot live.
func TestWebUIApproveHeldMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU machine (30-40 s under TCG); not in -short")
	}
	n := lab.NewNet(t)
	startAddressServer(t, n)
	startFleetPxed(t, n, "unknown_machines: hold\n")
	ctx := openPage(t, n)

	const mac = "52:54:00:00:0b:04"
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.BIOS, MAC: mac, Timeout: 5 * time.Minute})
	pageJS(t, ctx, "the held machine's row", `document.querySelector('`+machineRow(mac)+`')`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(machineRow(mac)))); err != nil {
		t.Fatalf("open the machine: %v", err)
	}
	pageJS(t, ctx, "the machine pending approval", `pxedState.machines.get('`+mac+`') && pxedState.machines.get('`+mac+`').state === 'pending'`)
	// It waits: the script it polls says so; no kernel before approval.
	lab.WaitFor(t, 3*time.Minute, "the held machine to poll its script twice", func() bool {
		k := 0
		for _, e := range timeline(t, n, mac) {
			if e.Stage == "script" {
				k++
			}
		}
		return k >= 2
	})
	if strings.Contains(vm.Serial(), lab.BootMarker) {
		t.Fatal("a held machine booted before approval")
	}
	// Found and clicked in one script run: the page redraws the action
	// buttons in place as events arrive.
	pageJS(t, ctx, "a click on the Approve button",
		`(() => { const b = document.querySelector('#detail [data-action="approve"]'); if (!b) return false; b.click(); return true; })()`)
	pageJS(t, ctx, "the approval on the page", `pxedState.machines.get('`+mac+`').state === 'approved'`)
	vm.WaitSerial(t, lab.BootMarker, 3*time.Minute)
	t.Logf("%s after %v, approved from the page", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	pageJS(t, ctx, "the kernel of the approved boot, live", `document.querySelector('#timeline li.new[data-stage="kernel"]')`)
	if err := stagesInOrder(timeline(t, n, mac), "machine-held", "script", "machine-approved", "script", "kernel", "initrd"); err != nil {
		t.Error(err)
	}
}

// TestWebUIWithToken: once pxed has API tokens, the page asks for one
// (the API answers 401), shows the machines and follows the stream with a
// read token typed once, and keeps it across a reload.
func TestWebUIWithToken(t *testing.T) {
	n := lab.NewNet(t)
	dataDir := t.TempDir()
	out, err := lab.Run(t, "", pxedBin, "tokens", "create", "--data-dir", dataDir, "--scope", "read", "--name", "webui")
	if err != nil {
		t.Fatalf("pxed tokens create: %v\n%s", err, out)
	}
	token := strings.Fields(out)[0]
	startServerMode(t, n, dataDir)
	h := n.AddHost(t, "probe", netip.Prefix{})
	const mac = "52:54:00:00:0b:03"
	if out, err := lab.Run(t, h.NS, "ip", "link", "set", h.Iface, "address", mac); err != nil {
		t.Fatalf("set the probe's MAC: %v\n%s", err, out)
	}
	if out, err := lab.Run(t, h.NS, pxedBin, "probe", "--interface", h.Iface, "--arch", "efi-x64", "--timeout-scale", probeScale); err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}

	addr := lab.Forward(t, n.NS(), "192.0.2.1:8080")
	ctx := lab.Browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+addr+"/")); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	pageJS(t, ctx, "the token dialog", `document.querySelector('#token-dlg').open`)
	if n := pageEval[int](t, ctx, `pxedState.machines.size`); n != 0 {
		t.Errorf("%d machines shown without a token, want none", n)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token-in"), token),
		chromedp.Click(chromedp.CSS(`#token-dlg button[value="save"]`))); err != nil {
		t.Fatalf("type the token: %v", err)
	}
	pageJS(t, ctx, "the machine with the token", `document.querySelector('`+machineRow(mac)+`')`)
	pageJS(t, ctx, "the live event stream", `document.querySelector('#live').textContent === 'live'`)
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	pageJS(t, ctx, "the machine after a reload, with the kept token", `document.querySelector('`+machineRow(mac)+`') && !document.querySelector('#token-dlg').open`)
}
