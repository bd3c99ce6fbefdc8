package httpboot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
)

const (
	knownMAC   = "52:54:00:12:34:56"
	knownPath  = "/boot/52-54-00-12-34-56"
	clientAddr = "192.0.2.50:40000"
)

var clientIP = netip.MustParseAddr("192.0.2.50")

type fixture struct {
	h       *Handler
	mux     *http.ServeMux
	log     *events.Log
	dir     string // holds kernel, initrd, boot/ and a secret outside boot/
	kernel  []byte
	initrd  []byte
	nbp     []byte
	bootDir string
}

func newFixture(t *testing.T, withDefault bool) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{dir: dir, bootDir: filepath.Join(dir, "boot"), log: &events.Log{}}
	f.kernel = bytes.Repeat([]byte("KERNEL0123456789"), 4096) // 64 KiB
	f.initrd = []byte("initramfs contents")
	f.nbp = []byte("MZ snponly.efi")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(f.bootDir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "vmlinuz"), f.kernel, 0o644))
	must(os.WriteFile(filepath.Join(dir, "initrd.img"), f.initrd, 0o644))
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte("SECRET"), 0o644))
	must(os.WriteFile(filepath.Join(f.bootDir, "snponly.efi"), f.nbp, 0o644))
	must(os.WriteFile(filepath.Join(f.bootDir, "sub", "grubx64.efi"), []byte("grub"), 0o644))
	must(os.Symlink(filepath.Join(dir, "secret"), filepath.Join(f.bootDir, "escape-abs")))
	must(os.Symlink("../secret", filepath.Join(f.bootDir, "escape-rel")))
	must(os.Symlink("snponly.efi", filepath.Join(f.bootDir, "inside")))
	cfg := &boot.Config{
		Profiles: map[string]boot.Profile{
			"linux":   {Kernel: filepath.Join(dir, "vmlinuz"), Initrds: []string{filepath.Join(dir, "initrd.img")}, Cmdline: "console=ttyS0"},
			"gone":    {Kernel: filepath.Join(dir, "missing-vmlinuz")},
			"scripty": {Script: "chain ${base}/menu"},
		},
		Machines: map[string]string{
			knownMAC:            "linux",
			"52:54:00:00:00:02": "gone",
			"52:54:00:00:00:03": "scripty",
		},
	}
	if withDefault {
		cfg.Default = "linux"
	}
	f.h = &Handler{Boot: cfg, Dirs: []string{f.bootDir}, HTTPPort: 8080, Events: f.log}
	f.mux = http.NewServeMux()
	f.h.Register(f.mux)
	return f
}

// do serves one request synchronously, as if it arrived on 192.0.2.1:8080
// from 192.0.2.50.
func (f *fixture) do(t *testing.T, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	// The machine the URL names got clientIP by DHCP first, as it would:
	// events are attributed by the address DHCP taught, not by the URL.
	if rest, ok := strings.CutPrefix(target, "/boot/"); ok {
		if mac, err := net.ParseMAC(strings.ReplaceAll(strings.SplitN(rest, "/", 2)[0], "-", ":")); err == nil {
			f.log.Learn(clientIP, mac.String())
		}
	}
	return f.doAs(t, clientAddr, method, target, hdr)
}

// doAs sends a request from remote without teaching the event log anything.
func (f *fixture) doAs(t *testing.T, remote, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = remote
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8080}))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.mux.ServeHTTP(w, r)
	return w
}

func lastEvent(t *testing.T, l *events.Log, key string) events.Event {
	t.Helper()
	tl := l.Timeline(key)
	if len(tl) == 0 {
		t.Fatalf("no event for %q (machines %v)", key, l.Machines())
	}
	return tl[len(tl)-1]
}

func TestScript(t *testing.T) {
	f := newFixture(t, false)
	w := f.do(t, "GET", knownPath+"/script.ipxe", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store (the script changes with the config)", cc)
	}
	body := w.Body.String()
	for _, want := range []string{
		"#!ipxe\n",
		"kernel http://192.0.2.1:8080/boot/52-54-00-12-34-56/vmlinuz initrd=initrd.img console=ttyS0 || goto failed\n",
		"initrd http://192.0.2.1:8080/boot/52-54-00-12-34-56/initrd.img || goto failed\n",
		"boot || goto failed\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("script lacks %q:\n%s", want, body)
		}
	}
	if w.Header().Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Errorf("Content-Length %q, body %d bytes", w.Header().Get("Content-Length"), len(body))
	}
	e := lastEvent(t, f.log, knownMAC)
	if e.Stage != events.StageScript || e.IP != clientIP || e.Bytes != int64(len(body)) || e.Detail != "profile linux" {
		t.Errorf("event %+v, want script from %v with %d bytes", e, clientIP, len(body))
	}
}

func TestMachineFiles(t *testing.T) {
	f := newFixture(t, true)
	kl := strconv.Itoa(len(f.kernel))
	tests := []struct {
		name    string
		method  string
		path    string
		hdr     map[string]string
		code    int
		body    []byte // nil: not checked
		length  string // Content-Length; "" not checked
		stage   events.Stage
		key     string // event log key
		ctRange string // Content-Range
	}{
		{"kernel download", "GET", knownPath + "/vmlinuz", nil, 200, f.kernel, kl, events.StageKernel, knownMAC, ""},
		{"initrd download", "GET", knownPath + "/initrd.img", nil, 200, f.initrd, strconv.Itoa(len(f.initrd)), events.StageInitrd, knownMAC, ""},
		{"MAC with colons in the URL", "GET", "/boot/52:54:00:12:34:56/initrd.img", nil, 200, f.initrd, "", events.StageInitrd, knownMAC, ""},
		{"HEAD kernel: length, no body", "HEAD", knownPath + "/vmlinuz", nil, 200, []byte{}, kl, events.StageKernel, knownMAC, ""},
		{"RFC 9110 §14.2 Range → 206 with the right bytes", "GET", knownPath + "/vmlinuz", map[string]string{"Range": "bytes=16-47"}, 206,
			f.kernel[16:48], "32", events.StageKernel, knownMAC, "bytes 16-47/" + kl},
		{"suffix Range", "GET", knownPath + "/vmlinuz", map[string]string{"Range": "bytes=-5"}, 206,
			f.kernel[len(f.kernel)-5:], "5", events.StageKernel, knownMAC, "bytes " + strconv.Itoa(len(f.kernel)-5) + "-" + strconv.Itoa(len(f.kernel)-1) + "/" + kl},
		{"unsatisfiable Range → 416", "GET", knownPath + "/vmlinuz", map[string]string{"Range": "bytes=999999-"}, 416, nil, "", events.StageHTTPError, knownMAC, ""},
		{"unknown machine gets the default profile", "GET", "/boot/52-54-00-99-99-99/initrd.img", nil, 200, f.initrd, "", events.StageInitrd, "52:54:00:99:99:99", ""},
		{"file not in the profile", "GET", knownPath + "/passwd", nil, 404, nil, "", events.StageHTTPError, knownMAC, ""},
		{"profile file missing on disk", "GET", "/boot/52-54-00-00-00-02/missing-vmlinuz", nil, 404, nil, "", events.StageHTTPError, "52:54:00:00:00:02", ""},
		{"script-only profile has no kernel", "GET", "/boot/52-54-00-00-00-03/vmlinuz", nil, 404, nil, "", events.StageHTTPError, "52:54:00:00:00:03", ""},
		{"custom script", "GET", "/boot/52-54-00-00-00-03/script.ipxe", nil, 200, []byte("#!ipxe\nchain http://192.0.2.1:8080/boot/52-54-00-00-00-03/menu"), "", events.StageScript, "52:54:00:00:00:03", ""},
		{"script of a profile with a missing kernel still renders", "GET", "/boot/52-54-00-00-00-02/script.ipxe", nil, 200, nil, "", events.StageScript, "52:54:00:00:00:02", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, tc.method, tc.path, tc.hdr)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if tc.body != nil && !bytes.Equal(w.Body.Bytes(), tc.body) {
				t.Fatalf("body %d bytes %q…, want %d bytes", w.Body.Len(), w.Body.Bytes()[:min(w.Body.Len(), 32)], len(tc.body))
			}
			if tc.length != "" && w.Header().Get("Content-Length") != tc.length {
				t.Errorf("Content-Length %q, want %s", w.Header().Get("Content-Length"), tc.length)
			}
			if tc.ctRange != "" && w.Header().Get("Content-Range") != tc.ctRange {
				t.Errorf("Content-Range %q, want %q", w.Header().Get("Content-Range"), tc.ctRange)
			}
			e := lastEvent(t, f.log, tc.key)
			if e.Stage != tc.stage || e.IP != clientIP {
				t.Fatalf("event %+v, want stage %s from %v", e, tc.stage, clientIP)
			}
			if tc.code < 300 && tc.method == "GET" && tc.stage != events.StageScript && e.Bytes != int64(len(tc.body)) {
				t.Errorf("event bytes %d, want %d", e.Bytes, len(tc.body))
			}
			if tc.hdr["Range"] != "" && !strings.Contains(e.Detail, tc.hdr["Range"]) {
				t.Errorf("event detail %q does not name the range", e.Detail)
			}
		})
	}
}

func TestBadMAC(t *testing.T) {
	f := newFixture(t, true)
	w := f.do(t, "GET", "/boot/not-a-mac/script.ipxe", nil)
	if w.Code != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", w.Code)
	}
	// No MAC in the URL: the event is keyed by the client's address.
	if e := lastEvent(t, f.log, "192.0.2.50"); e.Stage != events.StageHTTPError || !strings.Contains(e.Detail, "400") {
		t.Fatalf("event %+v, want http-error 400", e)
	}
}

func TestNoProfile(t *testing.T) {
	f := newFixture(t, false)
	for _, name := range []string{"script.ipxe", "vmlinuz"} {
		t.Run(name, func(t *testing.T) {
			before := f.h.Errors()
			w := f.do(t, "GET", "/boot/52-54-00-99-99-99/"+name, nil)
			if w.Code != http.StatusNotFound {
				t.Fatalf("unknown MAC, no default profile: status %d, want 404", w.Code)
			}
			e := lastEvent(t, f.log, "52:54:00:99:99:99")
			if e.Stage != events.StageHTTPError || !strings.Contains(e.Detail, "404") {
				t.Fatalf("event %+v, want http-error 404", e)
			}
			if f.h.Errors() != before+1 {
				t.Fatalf("Errors() = %d, want %d", f.h.Errors(), before+1)
			}
		})
	}
	t.Run("no boot config", func(t *testing.T) {
		h := &Handler{}
		mux := http.NewServeMux()
		h.Register(mux)
		for _, p := range []string{knownPath + "/script.ipxe", "/files/snponly.efi"} {
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
			if w.Code != http.StatusNotFound {
				t.Errorf("zero Handler GET %s: status %d, want 404", p, w.Code)
			}
		}
	})
}

func TestFiles(t *testing.T) {
	f := newFixture(t, true)
	tests := []struct {
		name  string
		path  string
		codes []int // acceptable status codes
		body  string
	}{
		{"NBP from the boot dir", "/files/snponly.efi", []int{200}, string(f.nbp)},
		{"nested file", "/files/sub/grubx64.efi", []int{200}, "grub"},
		{"symlink inside the boot dir", "/files/inside", []int{200}, string(f.nbp)},
		{"dot segments inside stay inside", "/files/sub/../snponly.efi", []int{200, 307}, ""},
		{"directory is not a file", "/files/sub", []int{404}, ""},
		{"missing file", "/files/nope.efi", []int{404}, ""},
		{"empty path", "/files/", []int{400}, ""},
		// Nothing outside the boot dir, however the name is spelled.
		{"traversal ..", "/files/../secret", []int{307, 400, 403, 404}, ""},
		{"traversal %2e%2e", "/files/%2e%2e/secret", []int{307, 400, 403, 404}, ""},
		{"traversal ..%2f", "/files/..%2fsecret", []int{400, 403, 404}, ""},
		{"traversal deep", "/files/sub/..%2f..%2f..%2fsecret", []int{400, 403, 404}, ""},
		{"absolute path", "/files/%2fetc%2fpasswd", []int{400, 403, 404}, ""},
		{"absolute secret", "/files/" + strings.ReplaceAll(filepath.Join(f.dir, "secret"), "/", "%2f"), []int{400, 403, 404}, ""},
		{"double slash", "/files//etc/passwd", []int{307, 400, 403, 404}, ""},
		{"symlink out of the boot dir (absolute)", "/files/escape-abs", []int{403, 404}, ""},
		{"symlink out of the boot dir (relative)", "/files/escape-rel", []int{403, 404}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, "GET", tc.path, nil)
			ok := false
			for _, c := range tc.codes {
				ok = ok || w.Code == c
			}
			if !ok {
				t.Fatalf("status %d, want one of %v: %s", w.Code, tc.codes, w.Body)
			}
			if strings.Contains(w.Body.String(), "SECRET") || strings.Contains(w.Body.String(), "root:") {
				t.Fatalf("served a file outside the boot dir: %q", w.Body)
			}
			if tc.body != "" && w.Body.String() != tc.body {
				t.Fatalf("body %q, want %q", w.Body, tc.body)
			}
			if w.Code == http.StatusTemporaryRedirect {
				return // ServeMux cleaned the path; nothing was served
			}
			e := lastEvent(t, f.log, "192.0.2.50")
			want := events.StageHTTP
			if w.Code >= 400 {
				want = events.StageHTTPError
			}
			if e.Stage != want {
				t.Fatalf("event %+v, want %s", e, want)
			}
		})
	}
	t.Run("no boot dir", func(t *testing.T) {
		f.h.Dirs = nil
		defer func() { f.h.Dirs = []string{f.bootDir} }()
		if w := f.do(t, "GET", "/files/snponly.efi", nil); w.Code != http.StatusNotFound {
			t.Fatalf("status %d, want 404", w.Code)
		}
	})
	t.Run("event names the machine learned from DHCP", func(t *testing.T) {
		f.log.Learn(clientIP, knownMAC)
		if w := f.do(t, "GET", "/files/snponly.efi", nil); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
		e := lastEvent(t, f.log, knownMAC)
		if e.Stage != events.StageHTTP || e.Detail != "snponly.efi" || e.Bytes != int64(len(f.nbp)) {
			t.Fatalf("event %+v, want http snponly.efi %d bytes", e, len(f.nbp))
		}
	})
}

// TestOverHTTP downloads through a real loopback server: the sendfile path
// (countingWriter.ReadFrom) and the URLs built from the local address.
func TestOverHTTP(t *testing.T) {
	f := newFixture(t, true)
	srv := httptest.NewServer(f.mux)
	defer srv.Close()
	f.log.Learn(netip.MustParseAddr("127.0.0.1"), knownMAC) // as DHCP would
	res, err := http.Get(srv.URL + knownPath + "/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !bytes.Equal(b, f.kernel) || res.ContentLength != int64(len(f.kernel)) {
		t.Fatalf("GET kernel: %v status %d, %d bytes, Content-Length %d; want %d", err, res.StatusCode, len(b), res.ContentLength, len(f.kernel))
	}
	res, err = http.Get(srv.URL + knownPath + "/script.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if want := "kernel " + srv.URL + knownPath + "/vmlinuz"; !strings.Contains(string(b), want) {
		t.Fatalf("script does not point at the address it was fetched from (%q):\n%s", want, b)
	}
	// The handler records after the response is written: poll with a deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var kernel *events.Event
		for _, e := range f.log.Timeline(knownMAC) {
			if e.Stage == events.StageKernel {
				kernel = &e
			}
		}
		if kernel != nil {
			if kernel.Bytes != int64(len(f.kernel)) {
				t.Fatalf("kernel event %+v, want %d bytes", kernel, len(f.kernel))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no kernel event; timeline %+v", f.log.Timeline(knownMAC))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClaimedMACDoesNotAttribute is finding 4 of issue 13: a request naming
// a victim's MAC from another address joins the requester's timeline (or
// its address's), never the victim's.
func TestClaimedMACDoesNotAttribute(t *testing.T) {
	f := newFixture(t, true)
	f.do(t, "GET", knownPath+"/script.ipxe", nil) // the victim boots from clientIP
	before := len(f.log.Timeline(knownMAC))
	const attacker = "192.0.2.66:40000"
	for _, p := range []string{knownPath + "/vmlinuz", knownPath + "/nothing", knownPath + "/script.ipxe"} {
		f.doAs(t, attacker, "GET", p, nil)
	}
	if n := len(f.log.Timeline(knownMAC)); n != before {
		t.Fatalf("victim's timeline grew from %d to %d events: %+v", before, n, f.log.Timeline(knownMAC))
	}
	// The victim is known at clientIP: each request is followed by a
	// claim-mismatch on the attacker's address.
	tl := f.log.Timeline("192.0.2.66")
	if len(tl) != 6 || tl[2].Stage != events.StageHTTPError || tl[2].Claimed != knownMAC || tl[3].Stage != events.StageClaimMismatch {
		t.Fatalf("attacker's address timeline %+v, want 3 events claiming %s, each with a claim-mismatch", tl, knownMAC)
	}
	// Once DHCP taught the attacker's address, its requests and the
	// mismatch go on its own machine's timeline.
	f.log.Learn(netip.MustParseAddr("192.0.2.66"), "02:00:00:00:00:66")
	f.doAs(t, attacker, "GET", knownPath+"/vmlinuz", nil)
	if got := lastEvent(t, f.log, "02:00:00:00:00:66"); got.Stage != events.StageClaimMismatch {
		t.Fatalf("last event %+v, want claim-mismatch", got)
	}
	if f.log.Stats().ClaimMismatch != 4 {
		t.Fatalf("ClaimMismatch = %d, want 4", f.log.Stats().ClaimMismatch)
	}
}

func TestOpenStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code int
	}{
		{"missing file is 404", &fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, 404},
		{"unreadable file is 403", &fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, 403},
		{"out of descriptors is 503, never 404", &fs.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}, 503},
		{"system out of descriptors is 503", &fs.PathError{Op: "open", Path: "x", Err: syscall.ENFILE}, 503},
		{"I/O error is 500", &fs.PathError{Op: "open", Path: "x", Err: syscall.EIO}, 500},
		{"escape from the root is 403", &fs.PathError{Op: "openat", Path: "x", Err: errors.New("path escapes from parent")}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, msg := openStatus(tc.err); code != tc.code || msg == "" {
				t.Fatalf("openStatus = %d %q, want %d", code, msg, tc.code)
			}
		})
	}
}

// TestWriteTimeoutEndsStalledDownload: a client that stops reading holds
// its connection for WriteTimeout, not forever, and the timeline says the
// download was cut.
func TestWriteTimeoutEndsStalledDownload(t *testing.T) {
	f := newFixture(t, true)
	big := filepath.Join(f.bootDir, "big.img")
	if err := os.WriteFile(big, bytes.Repeat([]byte{7}, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	f.h.WriteTimeout = 200 * time.Millisecond
	srv := httptest.NewServer(f.mux)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := io.WriteString(c, "GET /files/big.img HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Read nothing: the server's writes stall once the socket buffers fill.
	deadline := time.Now().Add(20 * time.Second)
	for {
		tl := f.log.Timeline("127.0.0.1")
		if len(tl) > 0 {
			e := tl[len(tl)-1]
			if e.Stage != events.StageHTTPError || !strings.Contains(e.Detail, "stopped reading") || e.Bytes >= 64<<20 {
				t.Fatalf("event %+v, want an http-error for a cut download", e)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled download was still running after 20 s (WriteTimeout 200ms)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
