package api

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"pxed/internal/events"
)

func TestRogues(t *testing.T) {
	off := http.NewServeMux()
	(&Handler{Events: &events.Log{}}).Register(off)
	if w := get(t, off, "/api/rogues"); w.Code != http.StatusNotFound {
		t.Errorf("detection off: status %d, want 404", w.Code)
	}

	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	row := Rogue{Server: "192.0.2.2", MAC: "02:00:00:00:00:02", Interface: "br0", Family: 4, FirstSeen: t0, LastSeen: t0,
		Count: 2, Kind: "dhcp+pxe", Type: "offer", Offered: Offered{YIAddr: "192.0.2.150", SIAddr: "192.0.2.2", File: "pxelinux.0", VendorClass: "PXEClient"}}
	mux := http.NewServeMux()
	(&Handler{Events: &events.Log{}, Rogues: func() []Rogue { return []Rogue{row} }}).Register(mux)
	w := get(t, mux, "/api/rogues")
	var raw []map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil || w.Code != 200 || len(raw) != 1 {
		t.Fatalf("status %d, %v: %s", w.Code, err, w.Body)
	}
	// The contract's fields (issue 11).
	for _, k := range []string{"server", "mac", "interface", "first_seen", "last_seen", "count", "offered"} {
		if _, ok := raw[0][k]; !ok {
			t.Errorf("no %q in %s", k, w.Body)
		}
	}
	off2, _ := raw[0]["offered"].(map[string]any)
	for _, k := range []string{"yiaddr", "siaddr", "file", "vendor_class"} {
		if _, ok := off2[k]; !ok {
			t.Errorf("no offered.%q in %s", k, w.Body)
		}
	}

	none := http.NewServeMux()
	(&Handler{Events: &events.Log{}, Rogues: func() []Rogue { return nil }}).Register(none)
	if w := get(t, none, "/api/rogues"); w.Code != 200 || w.Body.String() != "[]\n" {
		t.Errorf("no rogue: status %d body %q, want []", w.Code, w.Body)
	}
}
