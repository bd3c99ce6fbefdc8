// Package api is pxed's JSON API: the machines inventory (approve, deny,
// profile, labels, boot-once, check-in), the runtime profiles, each
// machine's boot timeline, and the leases of the DHCP server.
package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"time"

	"pxed/internal/events"
)

// Handler serves the API from an event log.
type Handler struct {
	Events *events.Log
	// Leases lists the DHCP server's leases, outstanding offers included;
	// nil when pxed is not the DHCP server (GET /api/leases answers 404).
	Leases func(context.Context) ([]Lease, error)
	// Rogues lists other DHCP servers seen answering boot clients
	// (rogues.go); nil when rogue detection is off (404).
	Rogues func() []Rogue
	// Fleet is the machines inventory and runtime profiles (fleet.go);
	// nil: GET /api/machines lists the MACs with a timeline, the other
	// machines and profiles endpoints answer 404.
	Fleet Fleet
	// CheckinAuth checks the token of a check-in (POST
	// /api/machines/{mac}/checkin?token=T) for mac (normalized); nil
	// accepts any.
	CheckinAuth func(mac, token string) bool
}

// Lease is one address of the DHCP server, as GET /api/leases and
// `pxed leases --json` show it.
type Lease struct {
	Address  string    `json:"address"`
	State    string    `json:"state"`  // offered, bound, expired, released, declined
	Client   string    `json:"client"` // client key: option 61, else 01:chaddr
	MAC      string    `json:"mac"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
	Updated  time.Time `json:"updated"`
}

// Register adds the API routes to mux:
//
//	GET /api/machines                  → [{mac, uuid, arch, …}, …] (?state=, ?label=k=v)
//	GET /api/machines/{mac}/timeline   → [{time, mac, stage, detail, bytes, duration}, …]
//	GET /api/leases                    → [{address, state, client, mac, hostname, expires, updated}, …]
//	GET /api/rogues                    → [{server, mac, interface, first_seen, last_seen, count, offered: {…}}, …]
//
// and the machines and profiles endpoints of fleet.go.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/machines", h.machines)
	h.registerFleet(mux)
	mux.HandleFunc("GET /api/machines/{mac}/timeline", h.timeline)
	mux.HandleFunc("GET /api/leases", h.leases)
	mux.HandleFunc("GET /api/rogues", h.rogues) // rogues.go
}

func (h *Handler) leases(w http.ResponseWriter, r *http.Request) {
	if h.Leases == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "pxed is not the DHCP server here (dhcp mode is not server): no leases"})
		return
	}
	ls, err := h.Leases(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if ls == nil {
		ls = []Lease{}
	}
	writeJSON(w, http.StatusOK, ls)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (h *Handler) machines(w http.ResponseWriter, r *http.Request) {
	if h.Fleet != nil {
		h.machineList(w, r)
		return
	}
	writeJSON(w, http.StatusOK, h.Events.Machines())
}

func (h *Handler) timeline(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("mac")
	mac, err := net.ParseMAC(strings.ReplaceAll(raw, "-", ":"))
	key := raw
	if err == nil {
		key = strings.ToLower(mac.String())
	}
	tl := h.Events.Timeline(key)
	if tl == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no events for machine " + raw})
		return
	}
	writeJSON(w, http.StatusOK, tl)
}
