package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"pxed/internal/events"
)

func newAPI(t *testing.T) (*http.ServeMux, *events.Log) {
	t.Helper()
	l := &events.Log{}
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	l.Record(events.Event{Time: t0, MAC: "52:54:00:ab:cd:56", IP: netip.MustParseAddr("192.0.2.50"), Stage: events.StageOffer, Detail: "snponly.efi"})
	l.Record(events.Event{Time: t0.Add(time.Second), MAC: "52:54:00:ab:cd:56", Stage: events.StageKernel, Detail: "vmlinuz", Bytes: 1234, Dur: 2 * time.Second})
	l.Record(events.Event{Time: t0, IP: netip.MustParseAddr("192.0.2.99"), Stage: events.StageTFTPError, Detail: "file not found"})
	mux := http.NewServeMux()
	(&Handler{Events: l}).Register(mux)
	return mux, l
}

func get(t *testing.T, mux *http.ServeMux, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q, want application/json", path, ct)
	}
	return w
}

func TestMachines(t *testing.T) {
	mux, _ := newAPI(t)
	w := get(t, mux, "/api/machines")
	var got []string
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("status %d, %v: %s", w.Code, err, w.Body)
	}
	if len(got) != 2 || got[0] != "192.0.2.99" || got[1] != "52:54:00:ab:cd:56" {
		t.Fatalf("machines %v, want the address-keyed and the MAC-keyed machine, sorted", got)
	}

	empty := http.NewServeMux()
	(&Handler{Events: &events.Log{}}).Register(empty)
	if w := get(t, empty, "/api/machines"); w.Code != 200 || w.Body.String() != "[]\n" {
		t.Fatalf("empty log: status %d body %q, want []", w.Code, w.Body)
	}
}

func TestTimeline(t *testing.T) {
	mux, _ := newAPI(t)
	tests := []struct {
		name   string
		path   string
		code   int
		stages []events.Stage
	}{
		{"MAC with dashes (as in boot URLs)", "/api/machines/52-54-00-ab-cd-56/timeline", 200, []events.Stage{events.StageOffer, events.StageKernel}},
		{"MAC with colons", "/api/machines/52:54:00:ab:cd:56/timeline", 200, []events.Stage{events.StageOffer, events.StageKernel}},
		{"upper-case MAC", "/api/machines/52-54-00-AB-CD-56/timeline", 200, []events.Stage{events.StageOffer, events.StageKernel}},
		{"machine known by address only", "/api/machines/192.0.2.99/timeline", 200, []events.Stage{events.StageTFTPError}},
		{"unknown MAC → 404", "/api/machines/52-54-00-ff-ff-ff/timeline", 404, nil},
		{"garbage → 404", "/api/machines/nothing/timeline", 404, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := get(t, mux, tc.path)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if tc.code == 404 {
				var e map[string]string
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e["error"] == "" {
					t.Fatalf("404 body %q is not {\"error\": …}", w.Body)
				}
				return
			}
			var tl []map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &tl); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if len(tl) != len(tc.stages) {
				t.Fatalf("%d events, want %d: %s", len(tl), len(tc.stages), w.Body)
			}
			for i, st := range tc.stages {
				if tl[i]["stage"] != string(st) {
					t.Fatalf("event %d stage %v, want %s", i, tl[i]["stage"], st)
				}
				if _, ok := tl[i]["time"].(string); !ok {
					t.Fatalf("event %d has no time: %v", i, tl[i])
				}
			}
		})
	}
	t.Run("fields of a download event", func(t *testing.T) {
		w := get(t, mux, "/api/machines/52-54-00-ab-cd-56/timeline")
		var tl []events.Event
		if err := json.Unmarshal(w.Body.Bytes(), &tl); err != nil {
			t.Fatal(err)
		}
		k := tl[1]
		if k.MAC != "52:54:00:ab:cd:56" || k.Detail != "vmlinuz" || k.Bytes != 1234 || k.Dur != 2*time.Second ||
			!k.Time.Equal(time.Date(2026, 11, 1, 10, 0, 1, 0, time.UTC)) {
			t.Fatalf("kernel event %+v", k)
		}
		if tl[0].IP != netip.MustParseAddr("192.0.2.50") {
			t.Fatalf("offer event ip %v, want 192.0.2.50", tl[0].IP)
		}
	})
}

func TestLeases(t *testing.T) {
	// Not the DHCP server: 404 with a reason.
	mux, _ := newAPI(t)
	if w := get(t, mux, "/api/leases"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "not the DHCP server") {
		t.Errorf("proxy mode: status %d body %s, want 404 saying pxed is not the DHCP server", w.Code, w.Body)
	}

	exp := time.Date(2026, 11, 1, 11, 0, 0, 0, time.UTC)
	want := []Lease{
		{Address: "192.0.2.100", State: "bound", Client: "01:52:54:00:ab:cd:56", MAC: "52:54:00:ab:cd:56", Hostname: "node1", Expires: exp, Updated: exp.Add(-time.Hour)},
		{Address: "192.0.2.101", State: "offered", Client: "01:52:54:00:ab:cd:57", MAC: "52:54:00:ab:cd:57", Expires: exp, Updated: exp},
	}
	var fail error
	srv := http.NewServeMux()
	(&Handler{Events: &events.Log{}, Leases: func(context.Context) ([]Lease, error) { return want, fail }}).Register(srv)
	w := get(t, srv, "/api/leases")
	var got []Lease
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != 200 {
		t.Fatalf("status %d, %v: %s", w.Code, err, w.Body)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leases = %+v, want %+v", got, want)
	}

	want = nil
	if w := get(t, srv, "/api/leases"); w.Code != 200 || w.Body.String() != "[]\n" {
		t.Errorf("no leases: status %d body %q, want []", w.Code, w.Body)
	}
	fail = errors.New("lease: list 192.0.2.0/24: database is locked")
	if w := get(t, srv, "/api/leases"); w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "database is locked") {
		t.Errorf("store error: status %d body %s, want 500 with the error", w.Code, w.Body)
	}
}
