// Package httpboot serves what machines fetch over HTTP: each machine's iPXE
// script, its profile's kernel and initrds, and the files of the boot
// directory (UEFI HTTP boot NBPs among them), with Range and Content-Length.
// Every response is a boot event.
package httpboot

import (
	"context"
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
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
)

// Handler serves boot files. The zero value serves nothing; set Boot.
type Handler struct {
	Boot boot.Source // one snapshot per request
	// Dirs are served under /files/, a name looked up in each in order
	// (the boot directory, then the iPXE directory for UEFI HTTP boot
	// NBPs); none serves no files.
	Dirs     []string
	HTTPPort int             // used in script URLs; default 8080
	Events   events.Recorder // nil records nothing
	Logger   *slog.Logger    // nil discards
	// WriteTimeout ends a download whose client takes nothing for this
	// long: the write deadline moves forward with every chunk sent, so a
	// large image over a slow link is not cut while it progresses. 0
	// leaves the server's deadline alone.
	WriteTimeout time.Duration
	// Yield, when set, holds file chunks back while latency-bound
	// transfers (TFTP) run; nil never holds anything back.
	Yield *Yield

	errors        atomic.Uint64
	loaderConfigs atomic.Uint64
}

// LoaderConfigs returns the number of generated loader configurations
// served.
func (h *Handler) LoaderConfigs() uint64 { return h.loaderConfigs.Load() }

// Errors returns the number of requests answered with an error status.
func (h *Handler) Errors() uint64 { return h.errors.Load() }

// Register adds the handler's routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /boot/{mac}/{name...}", h.machineFile)
	mux.HandleFunc("HEAD /boot/{mac}/{name...}", h.machineFile)
	mux.HandleFunc("GET /files/{path...}", h.dirFile)
	mux.HandleFunc("HEAD /files/{path...}", h.dirFile)
}

func (h *Handler) record(e events.Event) {
	if h.Events != nil {
		h.Events.Record(e)
	}
}

// fail answers with an error status. mac is the machine the URL names: a
// claim, recorded as such (events attribute by the request's address).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, mac string, code int, msg string) {
	h.errors.Add(1)
	h.record(events.Event{Claimed: mac, IP: remoteIP(r), Stage: events.StageHTTPError,
		Detail: fmt.Sprintf("%s %s: %d %s", r.Method, r.URL.Path, code, msg)})
	http.Error(w, msg, code)
}

// openStatus is the status for a file that could not be opened: 404 only
// when it does not exist, 403 when it may not be read (or lies outside the
// directory), 503 when the server is out of descriptors or memory, 500 for
// other faults: never "not found" for a fault of the server.
func openStatus(err error) (int, string) {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return http.StatusNotFound, "not found"
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden, "permission denied"
	case errors.As(err, &errno) && (errno == syscall.EMFILE || errno == syscall.ENFILE || errno == syscall.ENOMEM):
		return http.StatusServiceUnavailable, "server busy, try again: " + errno.Error()
	case errors.As(err, &errno):
		return http.StatusInternalServerError, "cannot open: " + errno.Error()
	}
	return http.StatusForbidden, "refused: " + errors.Unwrap(err).Error()
}

// quoteName quotes a name from a URL for a message, cut to a sensible length.
func quoteName(s string) string {
	const max = 128
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// localServer is the address the request arrived on: the one the machine can
// reach, used in the URLs of its script (with bc's machine tokens).
func (h *Handler) localServer(r *http.Request, bc *boot.Config) boot.Server {
	port := h.HTTPPort
	if port == 0 {
		port = 8080
	}
	s := boot.Server{HTTPPort: port, Token: bc.MachineToken, TLS: r.TLS != nil}
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
		h.fail(w, r, "", http.StatusBadRequest, fmt.Sprintf("bad MAC %s in URL (want aa-bb-cc-dd-ee-ff)", quoteName(r.PathValue("mac"))))
		return
	}
	m := boot.Normalize(mac)
	var bc *boot.Config
	if h.Boot != nil {
		bc = h.Boot.Snapshot()
	}
	if bc == nil {
		h.fail(w, r, m, http.StatusNotFound, "no boot configuration")
		return
	}
	name := r.PathValue("name")
	// The machine's directory: its script, its loader configuration, its
	// profile's files, and anything else from the boot directories
	// (loaders ask for their own files next to themselves: PXELINUX
	// chained from iPXE asks for ldlinux.c32 here).
	reqPath := boot.MachineDir(mac) + "/" + name
	res := bc.Resolve(reqPath)
	if bc.NeedsToken(res) {
		h.refuseToken(w, r, m)
		return
	}
	if res.Kind == boot.PathBootDir && res.Rel == "script.ipxe" {
		h.script(w, r, bc, mac)
		return
	}
	if res.Token {
		_, name, _ = strings.Cut(name, "/") // the name below the token
	}
	switch res.Kind {
	case boot.PathGenerated:
		p, err := bc.Expand(res.Profile, h.localServer(r, bc), mac)
		if err != nil {
			h.record(events.Event{Claimed: m, IP: remoteIP(r), Stage: events.StageTemplateError, Detail: err.Error()})
			h.fail(w, r, m, http.StatusInternalServerError, err.Error())
			return
		}
		text, err := boot.LoaderConfig(p, res.Config, reqPath)
		if err != nil {
			h.fail(w, r, m, http.StatusNotFound, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, path.Base(name), time.Time{}, strings.NewReader(text))
		h.loaderConfigs.Add(1)
		h.record(events.Event{Claimed: m, IP: remoteIP(r), Stage: events.StageLoaderConfig,
			Detail: fmt.Sprintf("%s %s (profile %s)", res.Config.Loader, name, res.Profile.Name), Bytes: int64(len(text))})
		return
	case boot.PathProfile:
		h.profileFile(w, r, res, name, m)
		return
	}
	if name := path.Clean("/" + res.Rel)[1:]; name != res.Rel || !fs.ValidPath(name) {
		h.fail(w, r, m, http.StatusBadRequest, "bad path")
		return
	}
	if _, ok := bc.ProfileFor(mac); !ok {
		h.fail(w, r, m, http.StatusNotFound, "no profile for this machine")
		return
	}
	h.fromDirs(w, r, res.Rel, m)
}

// refuseToken answers a request for machine m's files that does not carry
// m's URL token: 403, and the event joins the requester's timeline (by its
// address), not m's.
func (h *Handler) refuseToken(w http.ResponseWriter, r *http.Request, m string) {
	h.errors.Add(1)
	msg := "forbidden: this URL needs the machine's token (pxed gives each machine its own URLs)"
	h.record(events.Event{Claimed: m, IP: remoteIP(r), Stage: events.StageHTTPError,
		Detail: fmt.Sprintf("%s %s: 403 without machine %s's URL token", r.Method, quoteName(r.URL.Path), m)})
	http.Error(w, msg, http.StatusForbidden)
}

// script serves mac's iPXE script.
func (h *Handler) script(w http.ResponseWriter, r *http.Request, bc *boot.Config, mac net.HardwareAddr) {
	m := boot.Normalize(mac)
	p, ok := bc.ProfileFor(mac)
	if !ok {
		h.fail(w, r, m, http.StatusNotFound, "no profile for this machine")
		return
	}
	p, err := bc.Expand(p, h.localServer(r, bc), mac)
	if err != nil {
		// The machine learns why on its console; the timeline too.
		h.record(events.Event{Claimed: m, IP: remoteIP(r), Stage: events.StageTemplateError, Detail: err.Error()})
		h.errors.Add(1)
		text := boot.ErrorScript(mac, err.Error())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, "script.ipxe", time.Time{}, strings.NewReader(text))
		return
	}
	script, err := boot.Script(p, h.localServer(r, bc), mac)
	if err != nil {
		h.fail(w, r, m, http.StatusNotFound, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "script.ipxe", time.Time{}, strings.NewReader(script))
	h.record(events.Event{Claimed: m, IP: remoteIP(r), Stage: events.StageScript, Detail: "profile " + p.Name, Bytes: int64(len(script))})
}

// profileFile serves the kernel, an initrd or the image of a profile.
func (h *Handler) profileFile(w http.ResponseWriter, r *http.Request, res boot.Resolved, name, m string) {
	// A kernel or initrd is bytes to iPXE whatever its name
	// (initrd.img is no disk image); an image is typed by its extension.
	stage, ctype := events.StageInitrd, "application/octet-stream"
	switch res.FileKind {
	case boot.FileKernel:
		stage = events.StageKernel
	case boot.FileImage:
		stage, ctype = events.StageImage, ContentType(name)
	}
	f, err := os.Open(res.File)
	if err != nil {
		code, msg := openStatus(err)
		h.fail(w, r, m, code, fmt.Sprintf("open %s: %s", name, msg))
		return
	}
	defer f.Close()
	h.serveFile(w, r, f, name, ctype, m, stage)
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
	h.fromDirs(w, r, rel, "")
}

// fromDirs serves rel from the first of h.Dirs that has it; mac is the
// machine the URL names ("" for none).
func (h *Handler) fromDirs(w http.ResponseWriter, r *http.Request, rel, mac string) {
	code, msg := http.StatusNotFound, "not found"
	for _, dir := range h.Dirs {
		f, err := openIn(dir, rel)
		if err == nil {
			defer f.Close()
			h.serveFile(w, r, f, rel, ContentType(rel), mac, events.StageHTTP)
			return
		}
		if c, m := openStatus(err); c != http.StatusNotFound {
			code, msg = c, m // the first real fault is the answer, not "not found"
			break
		}
	}
	h.fail(w, r, mac, code, fmt.Sprintf("%s: %s", quoteName(rel), msg))
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

func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, f *os.File, name, ctype, mac string, stage events.Stage) {
	st, err := f.Stat()
	if err != nil {
		h.fail(w, r, mac, http.StatusInternalServerError, fmt.Sprintf("%s: stat: %v", quoteName(name), errors.Unwrap(err)))
		return
	}
	if st.IsDir() {
		h.fail(w, r, mac, http.StatusNotFound, fmt.Sprintf("%s: not a file", quoteName(name)))
		return
	}
	start := time.Now()
	cw := &countingWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: h.WriteTimeout, yield: h.Yield, ctx: r.Context()}
	w.Header().Set("Content-Type", ctype)
	http.ServeContent(cw, r, name, st.ModTime(), f)
	detail := name
	if rg := r.Header.Get("Range"); rg != "" {
		detail += " " + rg
	}
	if cw.status >= 400 {
		h.errors.Add(1)
		h.record(events.Event{Claimed: mac, IP: remoteIP(r), Stage: events.StageHTTPError, Detail: fmt.Sprintf("%s: %d", detail, cw.status)})
		return
	}
	if cw.status == http.StatusOK && r.Method == http.MethodGet && cw.n < st.Size() {
		h.errors.Add(1)
		h.record(events.Event{Claimed: mac, IP: remoteIP(r), Stage: events.StageHTTPError, Bytes: cw.n, Dur: time.Since(start),
			Detail: fmt.Sprintf("%s: sent %d of %d bytes: the client stopped reading or the connection broke", detail, cw.n, st.Size())})
		return
	}
	h.record(events.Event{Claimed: mac, IP: remoteIP(r), Stage: stage, Detail: detail, Bytes: cw.n, Dur: time.Since(start)})
}

// ContentType is the media type a file is served with, by its extension.
// UEFI HTTP Boot decides from it what it downloaded (UEFI 2.10 §24.7.2;
// EDK II compares the whole header value, so no parameters):
// application/efi runs as an EFI application, application/vnd.efi-iso
// and application/vnd.efi-img are booted as a RAM disk (a CD image, a
// disk image). Anything else is application/octet-stream (the firmware
// then goes by the URL's extension).
func ContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".efi":
		return "application/efi"
	case ".iso":
		return "application/vnd.efi-iso"
	case ".img":
		return "application/vnd.efi-img"
	}
	return "application/octet-stream"
}

type countingWriter struct {
	http.ResponseWriter
	n      int64
	status int
	rc     *http.ResponseController
	idle   time.Duration // per-chunk write deadline; 0: none
	yield  *Yield        // nil: chunks go at once
	ctx    context.Context
}

// sendChunk is how much of a file goes out under one write deadline.
const sendChunk = 4 << 20

func (c *countingWriter) extend() {
	if c.idle > 0 {
		_ = c.rc.SetWriteDeadline(time.Now().Add(c.idle))
	}
}

func (c *countingWriter) WriteHeader(code int) {
	c.status = code
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.extend()
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// ReadFrom passes large files to the ResponseWriter's own ReadFrom, which
// uses sendfile(2), a chunk at a time, each under a fresh write deadline
// and each after its turn at the Yield gate.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	rf, ok := c.ResponseWriter.(io.ReaderFrom)
	if !ok {
		c.extend()
		n, err := io.Copy(c.ResponseWriter, r)
		c.n += n
		return n, err
	}
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		lr = &io.LimitedReader{R: r, N: 1<<63 - 1}
	}
	var total int64
	for lr.N > 0 {
		size, done, err := c.yield.acquire(c.ctx)
		if err != nil {
			return total, err
		}
		// One level of LimitedReader over the *os.File keeps sendfile.
		chunk := &io.LimitedReader{R: lr.R, N: min(lr.N, size)}
		want := chunk.N
		c.extend()
		n, err := rf.ReadFrom(chunk)
		done()
		lr.N -= n
		total += n
		c.n += n
		if err != nil || n < want {
			return total, err
		}
	}
	return total, nil
}
