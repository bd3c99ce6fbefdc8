package apiauth

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
)

// Guard is the HTTP middleware that checks API tokens.
type Guard struct {
	Tokens *Store // nil: no token file (open unless Required)
	// Required refuses every guarded request while no token exists
	// (api_auth: required); false leaves the API open until the first
	// token is created.
	Required bool
	// Exempt are path prefixes served without a token (boot files,
	// health, metrics). POST /api/machines/{mac}/checkin is always
	// exempt: it carries the machine's own token, checked by its handler.
	Exempt []string
	Logger *slog.Logger // nil discards
}

// Decision is what Check says of a request.
type Decision int

// Decisions.
const (
	Allow        Decision = iota
	Unauthorized          // 401: no token, or not a valid one
	Forbidden             // 403: a read token on a write
	Failed                // 500: the token file cannot be read
)

// Check decides about r: pure but for reading the token file.
func (g *Guard) Check(r *http.Request) (Decision, string) {
	if g.exempt(r) {
		return Allow, ""
	}
	tok := bearer(r)
	if g.Tokens == nil {
		if g.Required {
			return Unauthorized, "api_auth is required and no token exists: create one with `pxed tokens create --scope admin`"
		}
		return Allow, ""
	}
	t, ok, any, err := g.Tokens.Lookup(tok)
	if err != nil {
		return Failed, err.Error()
	}
	if !any && !g.Required {
		return Allow, "" // no token yet: open, as README says
	}
	if tok == "" {
		return Unauthorized, "this request needs a token: send Authorization: Bearer <token> (pxed tokens create)"
	}
	if !ok {
		return Unauthorized, "the token is not valid (revoked, or never created here)"
	}
	if t.Scope != ScopeAdmin && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return Forbidden, "token " + t.ID + " has read scope; " + r.Method + " needs an admin token"
	}
	return Allow, ""
}

// exempt reports whether r needs no token.
func (g *Guard) exempt(r *http.Request) bool {
	p := r.URL.Path
	if r.Method == http.MethodPost && isCheckin(p) {
		return true
	}
	if strings.HasPrefix(p, "/api/") || p == "/api" {
		return false
	}
	for _, e := range g.Exempt {
		if strings.HasPrefix(p, e) {
			return true
		}
	}
	// Outside /api/ (the web page): reading is open, writing is guarded.
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// isCheckin reports whether p is /api/machines/{mac}/checkin.
func isCheckin(p string) bool {
	rest, ok := strings.CutPrefix(p, "/api/machines/")
	if !ok {
		return false
	}
	mac, tail, ok := strings.Cut(rest, "/")
	return ok && mac != "" && tail == "checkin"
}

// bearer is the request's token: the Authorization: Bearer header, or
// for GET and HEAD the pxed_token cookie (a browser's EventSource cannot
// send headers); "" when none.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if c, err := r.Cookie("pxed_token"); err == nil {
			return c.Value
		}
	}
	return ""
}

// Wrap returns next behind the guard.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	log := g.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, msg := g.Check(r)
		switch d {
		case Allow:
			next.ServeHTTP(w, r)
			return
		case Unauthorized:
			v := `Bearer realm="pxed"`
			if bearer(r) != "" {
				v += `, error="invalid_token"` // RFC 6750 §3
			}
			w.Header().Set("WWW-Authenticate", v)
			log.Info("api request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", 401, "why", msg)
			writeError(w, http.StatusUnauthorized, msg)
		case Forbidden:
			log.Info("api request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "status", 403, "why", msg)
			writeError(w, http.StatusForbidden, msg)
		default:
			log.Error("api token check failed", "err", msg)
			writeError(w, http.StatusInternalServerError, msg)
		}
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
