package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"pxed/internal/boot"
	"pxed/internal/fleet"
)

// Fleet is what the machines and profiles endpoints need of the
// inventory (fleet.Fleet).
type Fleet interface {
	List(fleet.Filter) []fleet.Machine
	Get(mac string) (fleet.Machine, error)
	Patch(mac string, profile *string, labels map[string]string) (fleet.Machine, error)
	Approve(mac string) (fleet.Machine, error)
	Deny(mac string) (fleet.Machine, error)
	SetBootOnce(mac string, b boot.BootOnce) (fleet.Machine, error)
	Checkin(mac string) (fleet.Machine, error)
	Forget(mac string) error
	Profiles() []fleet.ProfileView
	Profile(name string) (fleet.ProfileView, error)
	PutProfile(p fleet.Profile) (fleet.ProfileView, error)
	DeleteProfile(name string) error
}

// MaxBody is the largest request body the API reads.
const MaxBody = 1 << 20

// status maps an error to its HTTP status: the one place that does.
func status(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, fleet.ErrInvalid), errors.As(err, &mbe), errors.Is(err, errBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, fleet.ErrConflict):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

var errBadRequest = errors.New("bad request")

func writeError(w http.ResponseWriter, err error) {
	var mbe *http.MaxBytesError
	msg := err.Error()
	if errors.As(err, &mbe) {
		msg = fmt.Sprintf("request body larger than %d bytes", mbe.Limit)
	}
	writeJSON(w, status(err), map[string]string{"error": msg})
}

// decode reads a JSON body of at most MaxBody bytes into v: unknown
// fields, trailing data and malformed JSON are errors (400).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %v: %w", err, errBadRequest)
	}
	if dec.More() {
		return fmt.Errorf("body: data after the JSON value: %w", errBadRequest)
	}
	return nil
}

func (h *Handler) registerFleet(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/machines/{mac}", h.machine)
	mux.HandleFunc("PATCH /api/machines/{mac}", h.patchMachine)
	mux.HandleFunc("DELETE /api/machines/{mac}", h.forget)
	mux.HandleFunc("POST /api/machines/{mac}/approve", h.approve)
	mux.HandleFunc("POST /api/machines/{mac}/deny", h.deny)
	mux.HandleFunc("POST /api/machines/{mac}/boot-once", h.bootOnce)
	mux.HandleFunc("POST /api/machines/{mac}/checkin", h.checkin)
	mux.HandleFunc("GET /api/profiles", h.profiles)
	mux.HandleFunc("GET /api/profiles/{name}", h.profile)
	mux.HandleFunc("PUT /api/profiles/{name}", h.putProfile)
	mux.HandleFunc("DELETE /api/profiles/{name}", h.deleteProfile)
}

func (h *Handler) machineList(w http.ResponseWriter, r *http.Request) {
	var f fleet.Filter
	q := r.URL.Query()
	if s := q.Get("state"); s != "" {
		if !boot.ValidState(boot.State(s)) {
			writeError(w, fmt.Errorf("state %q: write new, pending, approved or denied: %w", s, errBadRequest))
			return
		}
		f.State = boot.State(s)
	}
	if l := q.Get("label"); l != "" {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			writeError(w, fmt.Errorf("label %q: write label=KEY=VALUE: %w", l, errBadRequest))
			return
		}
		f.LabelKey, f.LabelValue = k, v
	}
	ms := h.Fleet.List(f)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(appendMachines(make([]byte, 0, 400*len(ms)+3), ms))
}

func (h *Handler) fleetOr404(w http.ResponseWriter) bool {
	if h.Fleet == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no machines inventory"})
		return false
	}
	return true
}

func (h *Handler) answer(w http.ResponseWriter, m fleet.Machine, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func (h *Handler) machine(w http.ResponseWriter, r *http.Request) {
	if h.fleetOr404(w) {
		m, err := h.Fleet.Get(r.PathValue("mac"))
		h.answer(w, m, err)
	}
}

func (h *Handler) patchMachine(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	var body struct {
		Profile json.RawMessage   `json:"profile"`
		Labels  map[string]string `json:"labels"`
	}
	if err := decode(w, r, &body); err != nil {
		writeError(w, err)
		return
	}
	var profile *string
	switch p := bytes.TrimSpace(body.Profile); {
	case len(p) == 0: // absent: unchanged
	case string(p) == "null":
		profile = new(string)
	default:
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			writeError(w, fmt.Errorf("profile: a profile name or null: %w", errBadRequest))
			return
		}
		profile = &s
	}
	if profile == nil && body.Labels == nil {
		writeError(w, fmt.Errorf("nothing to change: give profile and/or labels: %w", errBadRequest))
		return
	}
	m, err := h.Fleet.Patch(r.PathValue("mac"), profile, body.Labels)
	h.answer(w, m, err)
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request) {
	if h.fleetOr404(w) {
		m, err := h.Fleet.Approve(r.PathValue("mac"))
		h.answer(w, m, err)
	}
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request) {
	if h.fleetOr404(w) {
		m, err := h.Fleet.Deny(r.PathValue("mac"))
		h.answer(w, m, err)
	}
}

func (h *Handler) bootOnce(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	var b boot.BootOnce
	if err := decode(w, r, &b); err != nil {
		writeError(w, err)
		return
	}
	m, err := h.Fleet.SetBootOnce(r.PathValue("mac"), b)
	h.answer(w, m, err)
}

// checkin is called by the booted system, with the per-machine token of
// its check-in URL (CheckinAuth), not an API token.
func (h *Handler) checkin(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	mac := r.PathValue("mac")
	if h.CheckinAuth != nil {
		key, err := fleet.Key(mac)
		if err != nil {
			writeError(w, err)
			return
		}
		if !h.CheckinAuth(key, r.URL.Query().Get("token")) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "bad or missing check-in token"})
			return
		}
	}
	m, err := h.Fleet.Checkin(mac)
	h.answer(w, m, err)
}

func (h *Handler) forget(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	if err := h.Fleet.Forget(r.PathValue("mac")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) profiles(w http.ResponseWriter, r *http.Request) {
	if h.fleetOr404(w) {
		ps := h.Fleet.Profiles()
		if ps == nil {
			ps = []fleet.ProfileView{}
		}
		writeJSON(w, http.StatusOK, ps)
	}
}

func (h *Handler) profile(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	p, err := h.Fleet.Profile(r.PathValue("name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) putProfile(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	var p fleet.Profile
	if err := decode(w, r, &p); err != nil {
		writeError(w, err)
		return
	}
	name := r.PathValue("name")
	if p.Name != "" && p.Name != name {
		writeError(w, fmt.Errorf("body names profile %q, the URL %q: %w", p.Name, name, errBadRequest))
		return
	}
	p.Name = name
	v, err := h.Fleet.PutProfile(p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *Handler) deleteProfile(w http.ResponseWriter, r *http.Request) {
	if !h.fleetOr404(w) {
		return
	}
	if err := h.Fleet.DeleteProfile(r.PathValue("name")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
