// Package httpboot serves what machines fetch over HTTP: each machine's iPXE
// script, its profile's kernel and initrds, and the files of the boot
// directory (UEFI HTTP boot NBPs among them), with Range and Content-Length.
// Every response is a boot event.
package httpboot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
)

// Handler serves boot files. The zero value serves nothing; set Boot.
type Handler struct {
	Boot *boot.Config
	// Dirs are served under /files/, a name looked up in each in order
	// (the boot directory, then the iPXE directory for UEFI HTTP boot
	// NBPs); none serves no files.
	Dirs     []string
	HTTPPort int             // used in script URLs; default 8080
	Events   events.Recorder // nil records nothing
	Logger   *slog.Logger    // nil discards

	errors atomic.Uint64
}

// Errors returns the number of requests answered with an error status.
func (h *Handler) Errors() uint64 { return h.errors.Load() }

// Register adds the handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /boot/{mac}/{name}", h.machineFile)
	mux.HandleFunc("HEAD /boot/{mac}/{name}", h.machineFile)
	mux.HandleFunc("GET /files/{path...}", h.dirFile)
	mux.HandleFunc("HEAD /files/{path...}", h.dirFile)
}

func (h *Handler) record(e events.Event) {
	if h.Events != nil {
		h.Events.Record(e)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, mac string, code int, msg string) {
	h.errors.Add(1)
	h.record(events.Event{MAC: mac, IP: remoteIP(r), Stage: events.StageHTTPError,
		Detail: fmt.Sprintf("%s %s: %d %s", r.Method, r.URL.Path, code, msg)})
	http.Error(w, msg, code)
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// localServer is the address the request arrived on: the one the machine can
// reach, used in the URLs of its script.
func (h *Handler) localServer(r *http.Request) boot.Server {
	port := h.HTTPPort
	if port == 0 {
		port = 8080
	}
	s := boot.Server{HTTPPort: port}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			s.IP = ap.Addr().Unmap()
			s.HTTPPort = int(ap.Port())
		}
	}
	return s
}

func parseMAC(s string) (net.HardwareAddr, error) {
	return net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
}

func (h *Handler) machineFile(w http.ResponseWriter, r *http.Request) {
	mac, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		h.fail(w, r, "", http.StatusBadRequest, fmt.Sprintf("bad MAC %q in URL (want aa-bb-cc-dd-ee-ff)", r.PathValue("mac")))
		return
	}
	m := boot.Normalize(mac)
	if h.Boot == nil {
		h.fail(w, r, m, http.StatusNotFound, "no boot configuration")
		return
	}
	p, ok := h.Boot.ProfileFor(mac)
	if !ok {
		h.fail(w, r, m, http.StatusNotFound, "no profile for this machine")
		return
	}
	name := r.PathValue("name")
	if name == "script.ipxe" {
		script, err := boot.Script(p, h.localServer(r), mac)
		if err != nil {
			h.fail(w, r, m, http.StatusNotFound, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, name, time.Time{}, strings.NewReader(script))
		h.record(events.Event{MAC: m, IP: remoteIP(r), Stage: events.StageScript, Detail: "profile " + p.Name, Bytes: int64(len(script))})
		return
	}
	file, kernel, ok := boot.ResolveFile(p, name)
	if !ok {
		h.fail(w, r, m, http.StatusNotFound, fmt.Sprintf("profile %q has no file %q", p.Name, name))
		return
	}
	stage := events.StageInitrd
	if kernel {
		stage = events.StageKernel
	}
	f, err := os.Open(file)
	if err != nil {
		h.fail(w, r, m, http.StatusNotFound, fmt.Sprintf("open %s: %v", name, errors.Unwrap(err)))
		return
	}
	defer f.Close()
	h.serveFile(w, r, f, name, m, stage)
}

func (h *Handler) dirFile(w http.ResponseWriter, r *http.Request) {
	if len(h.Dirs) == 0 {
		h.fail(w, r, "", http.StatusNotFound, "no boot directory configured")
		return
	}
	rel := path.Clean("/" + r.PathValue("path"))[1:]
	if rel == "" || !fs.ValidPath(rel) {
		h.fail(w, r, "", http.StatusBadRequest, "bad path")
		return
	}
	code := http.StatusNotFound
	for _, dir := range h.Dirs {
		f, err := openIn(dir, rel)
		if err == nil {
			defer f.Close()
			h.serveFile(w, r, f, rel, "", events.StageHTTP)
			return
		}
		if errors.Is(err, fs.ErrPermission) {
			code = http.StatusForbidden
		}
	}
	h.fail(w, r, "", code, fmt.Sprintf("%s: not found", rel))
}

// openIn opens rel inside dir; os.Root refuses "..", absolute names and
// symlinks that lead out of dir.
func openIn(dir, rel string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Open(rel)
}

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, f *os.File, name, mac string, stage events.Stage) {
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		h.fail(w, r, mac, http.StatusNotFound, fmt.Sprintf("%s: not a file", name))
		return
	}
	start := time.Now()
	cw := &countingWriter{ResponseWriter: w}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(cw, r, name, st.ModTime(), f)
	detail := name
	if rg := r.Header.Get("Range"); rg != "" {
		detail += " " + rg
	}
	if cw.status >= 400 {
		h.errors.Add(1)
		h.record(events.Event{MAC: mac, IP: remoteIP(r), Stage: events.StageHTTPError, Detail: fmt.Sprintf("%s: %d", detail, cw.status)})
		return
	}
	h.record(events.Event{MAC: mac, IP: remoteIP(r), Stage: stage, Detail: detail, Bytes: cw.n, Dur: time.Since(start)})
}

type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// ReadFrom passes large files to the ResponseWriter's own ReadFrom, which
// uses sendfile(2).
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(c.ResponseWriter, r)
	}
	c.n += n
	return n, err
}
