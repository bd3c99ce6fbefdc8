// Package web is pxed's web page: the machines and their state, each
// machine's boot timeline updating live (from GET /api/events), the actions
// of the fleet API, the leases, rogue DHCP servers and the counters that
// matter. It is one html/template page and plain JavaScript and CSS embedded
// in the binary: no external resource, no build step. The page reads the
// same JSON API as scripts do (internal/api); it holds no state of its own.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// version is a hash of the assets, appended to their URLs so a new binary's
// page never runs with a cached script of an old one.
var version = func() string {
	h := sha256.New()
	_ = fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return err
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// Handler serves the page at / and /ui/ and its assets under /ui/assets/.
type Handler struct {
	// Title is the page title; "" means "pxed".
	Title string
}

// Register adds the page's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /ui/{$}", h.index)
	sub, _ := fs.Sub(assets, "assets")
	files := http.StripPrefix("/ui/assets/", http.FileServerFS(sub))
	mux.Handle("GET /ui/assets/", secure(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui/assets/index.html" { // the template, not a page
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400") // URLs carry ?v=version
		files.ServeHTTP(w, r)
	}))
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	title := h.Title
	if title == "" {
		title = "pxed"
	}
	var b bytes.Buffer
	if err := page.Execute(&b, struct{ Title, Version string }{title, version}); err != nil {
		http.Error(w, "web page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	secure(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(b.Bytes())
	})(w, r)
}

// secure sets the headers that keep the page to its own origin: no inline
// or foreign script, no framing.
func secure(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		f(w, r)
	}
}
