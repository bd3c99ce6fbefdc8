// Package api is pxed's JSON API: the machines pxed has seen and each one's
// boot timeline.
package api

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"

	"pxed/internal/events"
)

// Handler serves the API from an event log.
type Handler struct {
	Events *events.Log
}

// Register adds the API routes to mux:
//
//	GET /api/machines                  → ["aa:bb:…", …]
//	GET /api/machines/{mac}/timeline   → [{time, mac, stage, detail, bytes, duration}, …]
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/machines", h.machines)
	mux.HandleFunc("GET /api/machines/{mac}/timeline", h.timeline)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (h *Handler) machines(w http.ResponseWriter, r *http.Request) {
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
