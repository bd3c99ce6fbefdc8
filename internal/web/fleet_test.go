package web

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"pxed/internal/api"
	"pxed/internal/events"
	"pxed/internal/lab"
)

var screenshots = flag.String("screenshots", "", "write the README's screenshots (PNG) to this directory (make screenshots: docs/)")

// fleet is a stand-in for the fleet API of the shared contract (issue 11:
// machines with state, profiles, approve/deny/assign/boot-once, rogues),
// so the page's actions are tested against the contract's shapes. The events
// and the stream are pxed's own.
type fleet struct {
	mu       sync.Mutex
	machines map[string]map[string]any
	calls    []string // "METHOD path auth body" of every write
	subs     map[chan api.Message]bool
	log      *events.Log
	leases   []api.Lease
	rogues   []map[string]any
}

const adminToken = "admin-secret"

func newFleet() *fleet {
	return &fleet{machines: map[string]map[string]any{}, subs: map[chan api.Message]bool{}, log: &events.Log{}}
}

func (f *fleet) add(m map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.machines[m["mac"].(string)] = m
}

func (f *fleet) changed(mac string) {
	m := f.machines[mac]
	for ch := range f.subs {
		select {
		case ch <- api.Message{Event: "machine", Data: m}:
		default:
		}
	}
}

func (f *fleet) serve(t *testing.T) string {
	mux := http.NewServeMux()
	(&api.Stream{Events: f.log, Extra: func(n int) (<-chan api.Message, func()) {
		ch := make(chan api.Message, n)
		f.mu.Lock()
		f.subs[ch] = true
		f.mu.Unlock()
		return ch, func() { f.mu.Lock(); delete(f.subs, ch); f.mu.Unlock() }
	}}).Register(mux)
	(&Handler{}).Register(mux)
	js := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /api/machines", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []map[string]any{}
		for _, m := range f.machines {
			out = append(out, m)
		}
		sort.Slice(out, func(i, j int) bool { return out[i]["mac"].(string) < out[j]["mac"].(string) })
		js(w, 200, out)
	})
	mux.HandleFunc("GET /api/machines/{mac}/timeline", func(w http.ResponseWriter, r *http.Request) {
		if tl := f.log.Timeline(strings.ReplaceAll(r.PathValue("mac"), "-", ":")); tl != nil {
			js(w, 200, tl)
			return
		}
		js(w, 404, map[string]string{"error": "no events"})
	})
	mux.HandleFunc("GET /api/machines/{mac}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if m := f.machines[strings.ReplaceAll(r.PathValue("mac"), "-", ":")]; m != nil {
			js(w, 200, m)
			return
		}
		js(w, 404, map[string]string{"error": "unknown machine"})
	})
	write := func(pattern string, apply func(m map[string]any, body map[string]any)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.calls = append(f.calls, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Authorization"), b)))
			if r.Header.Get("Authorization") != "Bearer "+adminToken {
				js(w, 401, map[string]string{"error": "an admin token is needed"})
				return
			}
			mac := strings.ReplaceAll(r.PathValue("mac"), "-", ":")
			m := f.machines[mac]
			if m == nil {
				js(w, 404, map[string]string{"error": "unknown machine"})
				return
			}
			var body map[string]any
			_ = json.Unmarshal(b, &body)
			apply(m, body)
			f.changed(mac)
			js(w, 200, m)
		})
	}
	write("POST /api/machines/{mac}/approve", func(m, _ map[string]any) { m["state"] = "approved" })
	write("POST /api/machines/{mac}/deny", func(m, _ map[string]any) { m["state"] = "denied" })
	write("PATCH /api/machines/{mac}", func(m, b map[string]any) { m["profile"] = b["profile"] })
	write("POST /api/machines/{mac}/boot-once", func(m, b map[string]any) { m["boot_once"] = b })
	mux.HandleFunc("GET /api/profiles", func(w http.ResponseWriter, r *http.Request) {
		js(w, 200, []map[string]any{{"name": "ubuntu-24.04"}, {"name": "rescue"}, {"name": "debian-13"}})
	})
	mux.HandleFunc("GET /api/rogues", func(w http.ResponseWriter, r *http.Request) { js(w, 200, f.rogues) })
	mux.HandleFunc("GET /api/leases", func(w http.ResponseWriter, r *http.Request) { js(w, 200, f.leases) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "# HELP x\npxed_events_machines %d\npxed_dhcp_replies_total 15872\npxed_dhcp_ignored_total 12\n"+
			"pxed_tftp_transfers_ok_total 7930\npxed_tftp_transfers_failed_total 3\npxed_tftp_transfers_active 4\n"+
			"pxed_tftp_bytes_total 5.6e+08\npxed_http_errors_total 0\npxed_dhcp_pool_exhausted_total 0\n", len(f.machines))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL
}

func (f *fleet) lastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

// TestPageActions: against the fleet API of the contract, the token typed
// once is kept and sent as a Bearer token; approve, assign profile and
// boot-once call their endpoints and the row shows the new state in place.
func TestPageActions(t *testing.T) {
	ctx := lab.Browser(t)
	f := newFleet()
	mac := "52:54:00:aa:00:01"
	f.add(map[string]any{"mac": mac, "state": "pending", "arch": "x86-64", "firmware": "uefi", "address": "192.0.2.20"})
	f.log.Record(events.Event{MAC: mac, Stage: "machine-held", Detail: "unknown machine held for approval"})
	url := f.serve(t)
	do(t, ctx, "open the page", chromedp.Navigate(url+"/#"+mac))
	waitJS(t, ctx, "the held machine's actions", `document.querySelector('#detail [data-action="approve"]')`)
	waitJS(t, ctx, "the state", `document.querySelector('`+row(mac)+` .badge').textContent === 'pending'`)
	waitJS(t, ctx, "the pending count", `document.querySelector('#pending').textContent === '1 pending approval'`)

	// Without a token the API refuses, and the page asks for one.
	press(t, ctx, "approve without a token", `#detail [data-action="approve"]`)
	waitJS(t, ctx, "the token dialog", `document.querySelector('#token-dlg').open`)
	do(t, ctx, "type the token", chromedp.SendKeys(chromedp.CSS("#token-in"), adminToken),
		chromedp.Click(chromedp.CSS(`#token-dlg button[value="save"]`)))
	waitJS(t, ctx, "the token kept", `localStorage.getItem('pxed.token') === '`+adminToken+`'`)

	press(t, ctx, "approve", `#detail [data-action="approve"]`)
	waitJS(t, ctx, "the row approved in place", `document.querySelector('`+row(mac)+` .badge').textContent === 'approved'`)
	waitJS(t, ctx, "no pending count", `document.querySelector('#pending').hidden`)
	if got, want := f.lastCall(), "POST /api/machines/52-54-00-aa-00-01/approve Bearer "+adminToken; got != want {
		t.Errorf("approve called %q, want %q", got, want)
	}

	evalJS[bool](t, ctx, `(s => { s.value = 'rescue'; return true })(document.querySelector('#detail select[title="profile"]'))`)
	press(t, ctx, "assign", `#detail [data-action="assign"]`)
	waitJS(t, ctx, "the profile on the row", `document.querySelector('`+row(mac)+`').children[6].textContent === 'rescue'`)
	if got, want := f.lastCall(), `PATCH /api/machines/52-54-00-aa-00-01 Bearer `+adminToken+` {"profile":"rescue"}`; got != want {
		t.Errorf("assign called %q, want %q", got, want)
	}

	evalJS[bool](t, ctx, `(d => { d.querySelector('select[title="boot once"]').value = 'ubuntu-24.04'; d.querySelector('select[title="then"]').value = 'local'; return true })(document.querySelector('#detail'))`)
	press(t, ctx, "boot once", `#detail [data-action="boot-once"]`)
	waitJS(t, ctx, "boot-once in the facts", `document.querySelector('#detail .facts').textContent.includes('ubuntu-24.04 → then local')`)
	if got, want := f.lastCall(), `POST /api/machines/52-54-00-aa-00-01/boot-once Bearer `+adminToken+` {"profile":"ubuntu-24.04","then":"local"}`; got != want {
		t.Errorf("boot-once called %q, want %q", got, want)
	}

	// A change made elsewhere (another operator, the CLI) arrives as an
	// `event: machine` message and updates the row in place.
	f.mu.Lock()
	f.machines[mac]["state"] = "denied"
	f.changed(mac)
	f.mu.Unlock()
	waitJS(t, ctx, "the row denied from the stream", `document.querySelector('`+row(mac)+` .badge').textContent === 'denied'`)
}

// TestPageWithoutInventoryHidesActions: against the API without the fleet
// endpoints (MACs only) the page shows no action buttons, no rogue banner
// until a rogue-server event, and the leases tab says why it is empty.
func TestPageWithoutInventoryHidesActions(t *testing.T) {
	ctx := lab.Browser(t)
	l := &events.Log{}
	l.Record(events.Event{MAC: "52:54:00:00:00:09", Stage: events.StageOffer})
	url := servePxed(t, l)
	do(t, ctx, "open the page", chromedp.Navigate(url+"/#52:54:00:00:00:09"))
	waitJS(t, ctx, "the detail", `document.querySelector('#detail .actions .hint')`)
	if n := evalJS[int](t, ctx, `document.querySelectorAll('#detail [data-action]').length`); n != 0 {
		t.Errorf("%d action buttons without the inventory API, want none", n)
	}
	if hidden := evalJS[bool](t, ctx, `document.querySelector('#rogues').hidden`); !hidden {
		t.Error("rogue banner shown with no rogue")
	}
	// No GET /api/rogues here: a rogue-server event alone raises the warning,
	// and makes no machine row.
	l.Record(events.Event{IP: netip.MustParseAddr("192.0.2.254"), Stage: "rogue-server", Detail: "dhcp+pxe offer to 52:54:00:00:00:09: file rogue.efi"})
	waitJS(t, ctx, "the rogue warning", `!document.querySelector('#rogues').hidden && document.querySelector('#rogues').textContent.includes('192.0.2.254')`)
	if n := evalJS[int](t, ctx, `pxedState.machines.size`); n != 1 {
		t.Errorf("%d machines after a rogue-server event, want the 1 machine (a rogue server is no machine)", n)
	}
	do(t, ctx, "leases tab", chromedp.Click(chromedp.CSS(`.tabs button[data-tab="leases"]`)))
	waitJS(t, ctx, "the leases note (not the DHCP server)", `!document.querySelector('#lnote').hidden`)
}

// TestScreenshots renders the page with a small realistic fleet and checks
// the PNGs README shows; with -screenshots DIR it writes them there
// (`go test ./internal/web -run Screenshots -screenshots ../../docs`).
func TestScreenshots(t *testing.T) {
	ctx := lab.Browser(t)
	f := newFleet()
	now := time.Now()
	archs := []string{"x86-64", "x86-64", "x86-64", "arm64", "x86"}
	fws := []string{"uefi", "uefi", "ipxe", "uefi", "bios"}
	states := []string{"approved", "approved", "approved", "approved", "pending", "approved", "new", "approved", "denied", "approved"}
	profiles := []string{"ubuntu-24.04", "debian-13", "", "ubuntu-24.04", "rescue"}
	stages := []events.Stage{events.StageInitrd, events.StageKernel, events.StageScript, events.StageTFTPDone, events.StageOffer, "machine-held", events.StageTFTPError}
	for i := 0; i < 48; i++ {
		mac := fmt.Sprintf("52:54:00:%02x:%02x:%02x", 0x10+i%3, i*7%256, i*13%256)
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(20 + i)})
		st := states[i%len(states)]
		stage := stages[i%len(stages)]
		if st == "pending" {
			stage = "machine-held"
		}
		seen := now.Add(-time.Duration(i*i*17) * time.Second)
		m := map[string]any{"mac": mac, "state": st, "arch": archs[i%5], "firmware": fws[i%5], "address": ip.String(),
			"hostname": fmt.Sprintf("node%02d", i), "profile": profiles[i%5], "last_stage": string(stage),
			"last_seen": seen.UTC().Format(time.RFC3339Nano), "first_seen": seen.Add(-72 * time.Hour).UTC().Format(time.RFC3339Nano),
			"uuid": fmt.Sprintf("4c4c4544-0042-3510-8051-%012x", 0xb2c04f000000+i), "labels": map[string]string{"rack": fmt.Sprintf("r%d", i%4+1)}}
		if profiles[i%5] == "" {
			m["effective_profile"] = "ubuntu-24.04"
		}
		f.add(m)
		f.leases = append(f.leases, api.Lease{Address: ip.String(), State: "bound", Client: "01:" + mac, MAC: mac, Hostname: fmt.Sprintf("node%02d", i),
			Expires: now.Add(time.Hour), Updated: now})
		if i%3 == 0 {
			f.leases = append(f.leases, api.Lease{Address: fmt.Sprintf("2001:db8::%x", 0x100+i), State: "bound", Client: "00:04:" + mac, MAC: mac,
				Expires: now.Add(time.Hour), Updated: now})
		}
	}
	f.rogues = []map[string]any{{"server": "192.0.2.254", "mac": "02:00:5e:10:00:fe", "interface": "br0", "count": 7,
		"first_seen": now.Add(-10 * time.Minute), "last_seen": now.Add(-20 * time.Second),
		"offered": map[string]any{"yiaddr": "192.0.2.199", "siaddr": "192.0.2.254", "file": "pxelinux.0"}}}
	// One machine booting now, with a full timeline.
	mac := "52:54:00:10:00:00"
	ip := netip.MustParseAddr("192.0.2.20")
	t0 := now.Add(-9 * time.Second)
	f.log.Learn(ip, mac)
	for i, e := range []events.Event{
		{MAC: mac, Stage: events.StageDiscover, Detail: "PXEClient:Arch:00007:UNDI:003016"},
		{MAC: mac, IP: ip, Stage: events.StageOffer, Detail: "snponly.efi"},
		{MAC: mac, IP: ip, Stage: events.StageAck, Detail: "snponly.efi"},
		{IP: ip, Stage: events.StageTFTPStart, Detail: "snponly.efi blksize=1468 tsize=0 windowsize=4"},
		{IP: ip, Stage: events.StageTFTPDone, Detail: "snponly.efi blksize=1468 windowsize=4", Bytes: 216064, Dur: 142 * time.Millisecond},
		{MAC: mac, IP: ip, Stage: events.StageDiscover, Detail: "iPXE"},
		{MAC: mac, IP: ip, Stage: events.StageAck, Detail: "http://192.0.2.1:8080/boot/52-54-00-10-00-00/script.ipxe"},
		{IP: ip, Stage: events.StageScript, Detail: "/boot/52-54-00-10-00-00/script.ipxe"},
		{IP: ip, Stage: events.StageKernel, Detail: "vmlinuz", Bytes: 11_386_848, Dur: 610 * time.Millisecond},
		{IP: ip, Stage: events.StageInitrd, Detail: "initrd.img", Bytes: 72_941_612, Dur: 2900 * time.Millisecond},
	} {
		e.Time = t0.Add(time.Duration(i) * 800 * time.Millisecond)
		f.log.Record(e)
	}
	f.machines[mac]["last_stage"] = "initrd"
	f.machines[mac]["last_seen"] = now.UTC().Format(time.RFC3339Nano)
	url := f.serve(t)
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	shotIn := func(dir, name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if len(png) < 10<<10 || len(png) > 300<<10 {
			t.Errorf("screenshot %s is %d bytes: want a real page and < 300 KB", name, len(png))
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d KB", filepath.Join(dir, name), len(png)>>10)
	}
	shot := func(name string) { t.Helper(); shotIn(dir, name) }
	do(t, ctx, "open the page", chromedp.EmulateViewport(1600, 860), chromedp.Navigate(url+"/"))
	waitJS(t, ctx, "48 machines", `document.querySelector('#count').textContent === '48 machines'`)
	waitJS(t, ctx, "the counters", `document.querySelectorAll('#metrics .metric').length >= 8`)
	waitJS(t, ctx, "the rogue banner", `!document.querySelector('#rogues').hidden`)
	shot("webui-machines.png")
	do(t, ctx, "open a timeline", chromedp.Click(chromedp.CSS(row(mac))))
	waitJS(t, ctx, "the timeline", `document.querySelectorAll('#timeline li').length === 10`)
	evalJS[bool](t, ctx, `document.activeElement.blur(), true`)
	shot("webui-timeline.png")
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatalf("dark mode: %v", err)
	}
	waitJS(t, ctx, "the dark theme", `getComputedStyle(document.body).backgroundColor === 'rgb(15, 20, 27)'`)
	shotIn(t.TempDir(), "webui-dark.png") // checked, not kept: README shows the light theme
}
