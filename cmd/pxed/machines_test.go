package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"pxed/internal/api"
	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

// TestMachinesCLI drives `pxed machines` and `pxed profiles` against a
// real API: each command, its output, the Bearer token from --token or
// PXED_TOKEN, and the server's errors with exit code 1.
func TestMachinesCLI(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "vmlinuz"), "k")
	f := &fleet.Fleet{Catalog: &boot.Catalog{}, Events: &events.Log{}, BootDir: dir}
	if err := f.Open(context.Background(), &boot.Config{Default: "def", Profiles: map[string]boot.Profile{"def": {Name: "def", Kernel: "/k"}}}); err != nil {
		t.Fatal(err)
	}
	f.Observe(boot.Machine{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, Firmware: boot.FirmwarePXE, Class: "bios"},
		netip.MustParseAddr("192.0.2.7"), "node1", boot.Plan{})
	mux := http.NewServeMux()
	(&api.Handler{Events: f.Events, Fleet: f}).Register(mux)
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	t.Setenv("PXED_TOKEN", "env-token")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"machines", "list"}, exitOK, "52:54:00:00:00:01  new"},
		{[]string{"profiles", "set", "rt", "--kernel", "vmlinuz", "--cmdline", "console=ttyS0"}, exitOK, `"source": "runtime"`},
		{[]string{"profiles", "set", "bad", "--kernel", "../x"}, exitFailure, "400 Bad Request: kernel \"../x\": name a file inside the boot directory"},
		{[]string{"profiles", "list"}, exitOK, "rt    runtime"},
		{[]string{"machines", "set", "52-54-00-00-00-01", "--profile", "rt", "--label", "rack=r1"}, exitOK, "effective profile  rt"},
		{[]string{"machines", "list", "--label", "rack=r1", "--json"}, exitOK, `"hostname": "node1"`},
		{[]string{"machines", "approve", "52:54:00:00:00:01"}, exitOK, "state              approved"},
		{[]string{"machines", "boot-once", "52:54:00:00:00:01", "--profile", "def", "--then", "local"}, exitOK, "boot-once          def, then local"},
		{[]string{"machines", "show", "52:54:00:00:00:01", "--token", "flag-token"}, exitOK, "boot-once"},
		{[]string{"machines", "deny", "52:54:00:00:00:01"}, exitOK, "denied"},
		{[]string{"machines", "show", "52:54:00:00:00:09"}, exitFailure, "404 Not Found"},
		{[]string{"machines", "show", "nope"}, exitUsage, "not a MAC"},
		{[]string{"machines", "forget", "52:54:00:00:00:01"}, exitOK, "forgot 52:54:00:00:00:01"},
		{[]string{"profiles", "delete", "rt"}, exitOK, "deleted rt"},
		{[]string{"machines", "frob"}, exitUsage, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append(tc.args, "--server", addr), &out, &errb)
			if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, tc.code, tc.want, out.String(), errb.String())
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if auth[0] != "Bearer env-token" {
		t.Errorf("Authorization %q, want Bearer env-token (PXED_TOKEN)", auth[0])
	}
	found := false
	for _, a := range auth {
		found = found || a == "Bearer flag-token"
	}
	if !found {
		t.Error("--token not sent")
	}
}
