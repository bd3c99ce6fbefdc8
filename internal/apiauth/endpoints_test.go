package apiauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pxed/internal/api"
	"pxed/internal/apiauth"
	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

// endpoints are every API endpoint with a request that succeeds when the
// token allows it: status is what the endpoint answers then. A new
// endpoint gets a row here; TestEndpointsNeedTokens then checks it
// refuses no token (401), a bad token (401), a read token on a write
// (403), and serves the right token.
var endpoints = []struct {
	method, path, body string
	status             int
}{
	{"GET", "/api/machines", "", 200},
	{"HEAD", "/api/machines", "", 200},
	{"GET", "/api/machines/52:54:00:00:00:01/timeline", "", 200},
	{"GET", "/api/machines/52-54-00-00-00-01/timeline", "", 200},
	{"GET", "/api/leases", "", 200},
	{"GET", "/api/events", "", 503},           // the stream, closed here so it answers at once
	{"GET", "/api/no-such-endpoint", "", 404}, // guarded too: no probing without a token
	{"POST", "/api/machines", "{}", 405},      // a write: admin scope first, then the method check
	// The fleet (internal/api/fleet.go).
	{"GET", "/api/machines/52:54:00:00:00:02", "", 200},
	{"PATCH", "/api/machines/52:54:00:00:00:02", `{"labels": {"rack": "r1"}}`, 200},
	{"POST", "/api/machines/52:54:00:00:00:02/approve", "", 200},
	{"POST", "/api/machines/52:54:00:00:00:02/deny", "", 200},
	{"POST", "/api/machines/52:54:00:00:00:02/boot-once", `{"profile": "linux", "then": "local"}`, 200},
	{"DELETE", "/api/machines/52:54:00:00:00:09", "", 404},
	{"GET", "/api/profiles", "", 200},
	{"GET", "/api/profiles/linux", "", 200},
	{"DELETE", "/api/profiles/nosuch", "", 404},
}

func newAPI(t *testing.T) (*apiauth.Store, http.Handler) {
	t.Helper()
	ev := &events.Log{}
	ev.Learn(netip.MustParseAddr("192.0.2.10"), "52:54:00:00:00:01")
	ev.Record(events.Event{IP: netip.MustParseAddr("192.0.2.10"), Stage: events.StageScript})
	inv := &fleet.Fleet{Catalog: &boot.Catalog{}, Events: ev}
	base := &boot.Config{Profiles: map[string]boot.Profile{"linux": {Name: "linux", Kernel: "vmlinuz"}}, Default: "linux"}
	if err := inv.Open(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Patch("52:54:00:00:00:02", nil, nil); err != nil {
		t.Fatal(err)
	}
	h := &api.Handler{Events: ev, Fleet: inv, Leases: func(context.Context) ([]api.Lease, error) { return nil, nil }}
	mux := http.NewServeMux()
	h.Register(mux)
	st := &api.Stream{Events: ev}
	st.Close()
	st.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /boot/{path...}", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("POST /ui/approve", func(w http.ResponseWriter, r *http.Request) {})
	store := apiauth.Open(t.TempDir())
	return store, (&apiauth.Guard{Tokens: store, Exempt: []string{"/boot/", "/files/", "/healthz", "/metrics"}}).Wrap(mux)
}

func do(h http.Handler, method, path, body, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestEndpointsNeedTokens(t *testing.T) {
	store, h := newAPI(t)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	// Before any token exists the API is open (README: "API tokens").
	for _, e := range endpoints {
		if w := do(h, e.method, e.path, e.body, ""); w.Code != e.status {
			t.Errorf("no token file: %s %s = %d, want %d (open)", e.method, e.path, w.Code, e.status)
		}
	}
	read, _, err := store.Create(apiauth.ScopeRead, "dashboard", now)
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := store.Create(apiauth.ScopeAdmin, "ops", now)
	if err != nil {
		t.Fatal(err)
	}
	revoked, rt, err := store.Create(apiauth.ScopeAdmin, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := store.Revoke(rt.ID); n != 1 || err != nil {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	for _, e := range endpoints {
		write := e.method != "GET" && e.method != "HEAD"
		readWant := e.status
		if write {
			readWant = http.StatusForbidden
		}
		for _, c := range []struct {
			who, token string
			want       int
		}{
			{"no token", "", http.StatusUnauthorized},
			{"bad token", "pxed_nottoken", http.StatusUnauthorized},
			{"revoked token", revoked, http.StatusUnauthorized},
			{"read token", read, readWant},
			{"admin token", admin, e.status},
		} {
			w := do(h, e.method, e.path, e.body, c.token)
			if w.Code != c.want {
				t.Errorf("%s %s with %s = %d %s, want %d", e.method, e.path, c.who, w.Code, w.Body, c.want)
			}
			if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("%s %s with %s: 401 without WWW-Authenticate: Bearer", e.method, e.path, c.who)
			}
			if (w.Code == 401 || w.Code == 403) && !strings.Contains(w.Body.String(), `"error"`) {
				t.Errorf("%s %s with %s: body %q is not a JSON error", e.method, e.path, c.who, w.Body)
			}
		}
	}
}

// TestExempt: boot paths, health and the machine check-in need no API
// token; the web page's writes do.
func TestExempt(t *testing.T) {
	store, h := newAPI(t)
	if _, _, err := store.Create(apiauth.ScopeAdmin, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200},
		{"GET", "/boot/52-54-00-00-00-01/x/script.ipxe", 200},
		{"POST", "/api/machines/52:54:00:00:00:02/checkin", 200},
		{"POST", "/api/machines/52:54:00:00:00:01/checkin/x", 401},
		{"POST", "/ui/approve", 401},
	} {
		if w := do(h, c.method, c.path, "", ""); w.Code != c.want {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, w.Code, c.want)
		}
	}
}

// TestRequired: api_auth: required refuses everything while no token
// exists.
func TestRequired(t *testing.T) {
	for _, store := range []*apiauth.Store{nil, apiauth.Open(t.TempDir())} {
		g := &apiauth.Guard{Tokens: store, Required: true}
		h := g.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		if w := do(h, "GET", "/api/machines", "", ""); w.Code != http.StatusUnauthorized {
			t.Errorf("required, no token (store %v): %d, want 401", store != nil, w.Code)
		}
	}
}
