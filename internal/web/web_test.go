package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"pxed/internal/api"
	"pxed/internal/events"
	"pxed/internal/lab"
)

// pageTimeout bounds each wait for the page: a bound so a broken page fails
// instead of hanging, not a measure of speed.
const pageTimeout = 60 * time.Second

// servePxed serves the API, the event stream and the page as pxed does
// (today's API: GET /api/machines lists MACs), on loopback.
func servePxed(t *testing.T, l *events.Log) string {
	t.Helper()
	mux := http.NewServeMux()
	(&api.Handler{Events: l}).Register(mux)
	(&api.Stream{Events: l}).Register(mux)
	(&Handler{}).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() }) // the page's event stream stays open
	return srv.URL
}

// waitJS waits until the JavaScript expression is truthy in the page.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(pageTimeout)))
	if err != nil {
		t.Fatalf("page: waiting for %s (%s): %v", what, expr, err)
	}
}

// press clicks the element sel selects, found and clicked in one script
// run: the page redraws a machine's action buttons in place (a profile
// list or an event arrives), so a node looked up first and clicked after
// may be gone by then ("Could not find node with given id").
func press(t *testing.T, ctx context.Context, what, sel string) {
	t.Helper()
	waitJS(t, ctx, what, `(() => { const e = document.querySelector(`+strconv.Quote(sel)+`); if (!e) return false; e.click(); return true; })()`)
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("page: %s: %v", expr, err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("page: %s: %v", what, err)
	}
}

func row(mac string) string { return `#mlist .row[data-mac="` + mac + `"]:not([hidden])` }

// TestPageFollowsBootLive: with the page open, a machine that starts to boot
// appears in the list, and, its timeline open, each stage arrives as it is
// recorded, without a reload.
func TestPageFollowsBootLive(t *testing.T) {
	ctx := lab.Browser(t)
	l := &events.Log{}
	t0 := time.Now().Add(-time.Hour)
	l.Record(events.Event{Time: t0, MAC: "52:54:00:00:00:01", IP: netip.MustParseAddr("192.0.2.10"), Stage: events.StageOffer, Detail: "undionly.kpxe"})
	url := servePxed(t, l)
	do(t, ctx, "open the page", chromedp.Navigate(url+"/"))
	waitJS(t, ctx, "the machine recorded before", `document.querySelector('`+row("52:54:00:00:00:01")+`')`)
	waitJS(t, ctx, "the live stream", `document.querySelector('#live').textContent === 'live'`)
	loaded := evalJS[float64](t, ctx, `pxedState.loadedAt`)

	mac := "52:54:00:00:00:02"
	ip := netip.MustParseAddr("192.0.2.11")
	l.Record(events.Event{MAC: mac, Stage: events.StageDiscover, Detail: "PXEClient:Arch:00000"})
	waitJS(t, ctx, "the new machine's row", `document.querySelector('`+row(mac)+`')`)
	do(t, ctx, "open its timeline", chromedp.Click(chromedp.CSS(row(mac))))
	waitJS(t, ctx, "its timeline", `document.querySelector('#timeline li[data-stage="dhcp-discover"]')`)
	for _, e := range []events.Event{
		{MAC: mac, IP: ip, Stage: events.StageOffer, Detail: "undionly.kpxe"},
		{IP: ip, Stage: events.StageTFTPDone, Detail: "undionly.kpxe blksize=1432 windowsize=1", Bytes: 70000, Dur: 80 * time.Millisecond},
		{IP: ip, Stage: events.StageScript, Detail: "/boot/52-54-00-00-00-02/script.ipxe"},
		{IP: ip, Stage: events.StageKernel, Detail: "vmlinuz", Bytes: 8 << 20, Dur: time.Second},
		{IP: ip, Stage: events.StageInitrd, Detail: "initrd.img", Bytes: 2 << 20, Dur: 300 * time.Millisecond},
	} {
		l.Learn(ip, mac)
		l.Record(e)
		waitJS(t, ctx, string(e.Stage)+" on the timeline", `document.querySelector('#timeline li[data-stage="`+string(e.Stage)+`"]')`)
		waitJS(t, ctx, string(e.Stage)+" as the row's last stage", `document.querySelector('`+row(mac)+` [data-stage="`+string(e.Stage)+`"]')`)
	}
	if got := evalJS[int](t, ctx, `document.querySelectorAll('#timeline li').length`); got != 6 {
		t.Errorf("timeline shows %d events, want the 6 recorded", got)
	}
	if got := evalJS[string](t, ctx, `document.querySelector('`+row(mac)+`').children[2].textContent`); got != "192.0.2.11" {
		t.Errorf("row address %q, want 192.0.2.11 learned from the events", got)
	}
	if got := evalJS[string](t, ctx, `[...document.querySelectorAll('#detail .progress .done')].map(e => e.textContent).join(',')`); got != "DHCP,NBP,Script,Kernel,Initrd" {
		t.Errorf("progress shows %q done, want DHCP,NBP,Script,Kernel,Initrd", got)
	}
	if again := evalJS[float64](t, ctx, `pxedState.loadedAt`); again != loaded {
		t.Error("the page reloaded: stages must arrive in place")
	}

	// A machine known only by its (IPv6) address: its row opens its timeline.
	l.Record(events.Event{IP: netip.MustParseAddr("2001:db8::99"), Stage: events.StageTFTPError, Detail: "grubx64.efi: file not found"})
	waitJS(t, ctx, "the address-keyed row", `document.querySelector('`+row("2001:db8::99")+`')`)
	do(t, ctx, "open its timeline", chromedp.Click(chromedp.CSS(row("2001:db8::99"))))
	waitJS(t, ctx, "its timeline", `document.querySelector('#detail h2').textContent.startsWith('2001:db8::99') && document.querySelector('#timeline li[data-stage="tftp-error"]:not(.new)')`)
}

// TestPage5000Machines: with 5,000 machines the list holds all of them
// (count, the last one after scrolling, one found by search) while only the
// visible rows are in the DOM, and an event updates its row in place.
func TestPage5000Machines(t *testing.T) {
	ctx := lab.Browser(t)
	const n = 5000
	l := &events.Log{}
	t0 := time.Now().Add(-2 * time.Hour)
	macOf := func(i int) string { return fmt.Sprintf("52:54:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff) }
	for i := 0; i < n; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		at := t0.Add(time.Duration(i) * time.Millisecond)
		l.Learn(ip, macOf(i))
		l.Record(events.Event{Time: at, MAC: macOf(i), IP: ip, Stage: events.StageOffer, Detail: "ipxe.efi"})
		l.Record(events.Event{Time: at.Add(time.Millisecond), IP: ip, Stage: events.StageTFTPDone, Detail: "ipxe.efi"})
		l.Record(events.Event{Time: at.Add(2 * time.Millisecond), IP: ip, Stage: events.StageScript})
	}
	url := servePxed(t, l)
	start := time.Now()
	do(t, ctx, "open the page", chromedp.Navigate(url+"/"))
	waitJS(t, ctx, "5000 machines counted", `document.querySelector('#count').textContent === '5000 machines'`)
	t.Logf("5000 machines listed %v after the navigation started (a figure, not a bound)", time.Since(start).Round(time.Millisecond))
	waitJS(t, ctx, "the live stream", `document.querySelector('#live').textContent === 'live'`)
	if got := evalJS[int](t, ctx, `pxedState.view.length`); got != n {
		t.Fatalf("list holds %d machines, want %d", got, n)
	}
	if rows := evalJS[int](t, ctx, `document.querySelectorAll('#mlist .row').length`); rows == 0 || rows > 200 {
		t.Errorf("%d row elements in the DOM: want the visible rows only (virtualized list)", rows)
	}
	last := evalJS[string](t, ctx, `pxedState.view[pxedState.view.length-1].mac`)
	evalJS[int](t, ctx, `document.querySelector('#mlist').scrollTop = 1e9`)
	waitJS(t, ctx, "the last machine after scrolling to the end", `document.querySelector('`+row(last)+`')`)

	target := macOf(1234)
	do(t, ctx, "search", chromedp.SendKeys(chromedp.CSS("#q"), strings.ReplaceAll(target, ":", "-")))
	waitJS(t, ctx, "one machine found", `document.querySelector('#count').textContent === '1 of 5000 machines'`)
	waitJS(t, ctx, "its row", `document.querySelector('`+row(target)+`')`)
	l.Record(events.Event{MAC: target, Stage: events.StageKernel, Detail: "vmlinuz"})
	waitJS(t, ctx, "the row updated in place", `document.querySelector('`+row(target)+` [data-stage="kernel"]')`)
	evalJS[bool](t, ctx, `(q => { q.value = ''; return q.dispatchEvent(new Event('input')) })(document.querySelector('#q'))`)
	waitJS(t, ctx, "all machines again", `document.querySelector('#count').textContent === '5000 machines'`)
	// The list is sorted by last seen, newest first: the machine that just
	// booted is on top.
	waitJS(t, ctx, "the booting machine on top", `pxedState.view[0].mac === '`+target+`'`)

	// A burst: one event for each machine, recorded as fast as the log
	// takes them. Whatever the stream could not send is counted and the
	// page told to resync; the page stays usable (a search still answers).
	start = time.Now()
	for i := 0; i < n; i++ {
		l.Record(events.Event{MAC: macOf(i), Stage: events.StageInitrd})
	}
	waitJS(t, ctx, "the burst's last event, or a resync", `pxedState.machines.get('`+macOf(n-1)+`').last_stage === 'initrd' || pxedState.resyncs > 0`)
	got := evalJS[int](t, ctx, `[...pxedState.machines.values()].filter(m => m.last_stage === 'initrd').length`)
	t.Logf("burst of %d events: %d applied by the page %v after the first was recorded, %d resync(s)", n, got,
		time.Since(start).Round(time.Millisecond), evalJS[int](t, ctx, `pxedState.resyncs`))
	do(t, ctx, "search after the burst", chromedp.SendKeys(chromedp.CSS("#q"), "initrd"))
	waitJS(t, ctx, "the search after the burst", `/^\d+ of 5000 machines$/.test(document.querySelector('#count').textContent) || document.querySelector('#count').textContent === '5000 machines'`)
}
