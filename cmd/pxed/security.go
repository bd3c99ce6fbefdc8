package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"pxed/internal/apiauth"
	"pxed/internal/boot"
	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/machinekey"
)

// security is the wiring of the API tokens, the per-machine secret URLs,
// the API's own (TLS) listener and the HTTPS boot listener.
type security struct {
	cfg   *config.Config
	log   *slog.Logger
	guard *apiauth.Guard
	// Key derives each machine's URL and check-in tokens: Key.CheckinToken
	// (mac) for the check-in URL a machine is given, Key.VerifyCheckin
	// (mac, token) in the check-in handler.
	Key *machinekey.Key

	apiLn, bootLn net.Listener
	servers       []*http.Server
}

// newSecurity loads the server key (DATA_DIR/secret, made on first use)
// and the token store, and sets bc's machine token and HTTPS port.
func newSecurity(cfg *config.Config, bc *boot.Config, log *slog.Logger) (*security, error) {
	s := &security{cfg: cfg, log: log}
	var err error
	if cfg.DataDir != "" {
		s.Key, err = machinekey.Load(cfg.DataDir)
	} else {
		s.Key, err = machinekey.New()
		log.Warn("no data_dir: machines' secret URL tokens change when pxed restarts (a machine booting across a restart starts again)")
	}
	if err != nil {
		return nil, err
	}
	if cfg.MachineURLs == config.MachineURLToken {
		bc.MachineToken = s.Key.URLToken
	}
	s.guard = &apiauth.Guard{Required: cfg.APIAuth == config.APIAuthRequired, Exempt: cfg.APIAuthExempt, Logger: log.With("proto", "api")}
	if cfg.DataDir != "" {
		s.guard.Tokens = apiauth.Open(cfg.DataDir)
		ts, err := s.guard.Tokens.List()
		if err != nil {
			return nil, err
		}
		if len(ts) == 0 && !s.guard.Required {
			log.Warn("the API is open: no API token exists; create one with `pxed tokens create --scope admin --data-dir " + cfg.DataDir + "` (or set api_auth: required)")
		}
	} else if !s.guard.Required {
		log.Warn("the API is open: no data_dir to keep API tokens in")
	}
	if cfg.HTTPSBoot.Addr != "" {
		_, p, _ := net.SplitHostPort(cfg.HTTPSBoot.Addr)
		bc.HTTPSPort, _ = strconv.Atoi(p)
		if bc.HTTPSPort == 0 {
			bc.HTTPSPort = 443
		}
	}
	return s, nil
}

// listen opens the API and HTTPS boot listeners that are configured.
func (s *security) listen() error {
	if s.cfg.APIAddr != "" {
		ln, err := listenMaybeTLS(s.cfg.APIAddr, s.cfg.APITLS, nil)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		s.apiLn = ln
	}
	if s.cfg.HTTPSBoot.Addr != "" {
		ln, err := listenMaybeTLS(s.cfg.HTTPSBoot.Addr, s.cfg.BootTLS(), firmwareCipherSuites())
		if err != nil {
			s.close()
			return fmt.Errorf("https boot: %w", err)
		}
		s.bootLn = ln
	}
	return nil
}

// firmwareCipherSuites are the TLS 1.2 cipher suites of the HTTPS boot
// listener: Go's default ones (ECDHE, forward secret) first, then AES-GCM
// with RSA key exchange, which Go no longer offers by default but is all
// that EDK II's HTTPS Boot has in common with Go as Debian 12's OVMF
// (edk2-stable202211) builds it: its OpenSSL has no elliptic curves, and
// it offers only DHE and RSA key exchange (Go has no DHE).
func firmwareCipherSuites() []uint16 {
	var out []uint16
	for _, c := range tls.CipherSuites() {
		out = append(out, c.ID)
	}
	return append(out, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384)
}

// listenMaybeTLS listens on addr, with TLS when files are set; suites
// nil: Go's default cipher suites.
func listenMaybeTLS(addr string, files config.TLSFiles, suites []uint16) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if !files.Set() {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("certificate %s: %w", files.Cert, err)
	}
	// TLS 1.2 is the newest EDK II's HTTPS Boot (TlsDxe) speaks.
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, CipherSuites: suites}), nil
}

func (s *security) close() {
	for _, ln := range []net.Listener{s.apiLn, s.bootLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// plainHandler is what http_addr serves: everything behind the token
// guard, or, when the API has its own listener, only the boot paths and
// the machines' check-in.
func (s *security) plainHandler(mux http.Handler) http.Handler {
	guarded := s.guard.Wrap(mux)
	if s.cfg.APIAddr == "" {
		return guarded
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.bootPath(r.URL.Path) || (r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/checkin") && strings.HasPrefix(r.URL.Path, "/api/machines/")) {
			guarded.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "the API and the web page are served on api_addr " + s.cfg.APIAddr + ", not here"})
	})
}

func (s *security) bootPath(p string) bool {
	for _, e := range s.cfg.APIAuthExempt {
		if strings.HasPrefix(p, e) {
			return true
		}
	}
	return false
}

// serve starts the servers of the listeners listen opened, with base's
// timeouts, reporting their end on errc.
func (s *security) serve(base *http.Server, mux http.Handler, ev events.Recorder, errc chan<- error) {
	start := func(ln net.Listener, h http.Handler, what string) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: base.ReadHeaderTimeout, ReadTimeout: base.ReadTimeout,
			WriteTimeout: base.WriteTimeout, IdleTimeout: base.IdleTimeout, MaxHeaderBytes: base.MaxHeaderBytes, ErrorLog: base.ErrorLog}
		if ln == s.bootLn && base.ErrorLog != nil {
			// Failed handshakes become events of the machine (handshake.go).
			srv.ErrorLog = log.New(handshakeLog{out: base.ErrorLog.Writer(), ev: ev}, base.ErrorLog.Prefix(), base.ErrorLog.Flags())
		}
		s.servers = append(s.servers, srv)
		s.log.Info("listening", "what", what, "addr", ln.Addr().String())
		go func() { errc <- srv.Serve(ln) }()
	}
	if s.apiLn != nil {
		what := "api and web page (plain HTTP)"
		if s.cfg.APITLS.Set() {
			what = "api and web page (HTTPS)"
		}
		start(s.apiLn, s.guard.Wrap(mux), what)
	}
	if s.bootLn != nil {
		// Only the boot paths: the API stays where api_addr says.
		boot := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/boot/") || strings.HasPrefix(r.URL.Path, "/files/") {
				mux.ServeHTTP(w, r)
				return
			}
			http.NotFound(w, r)
		})
		start(s.bootLn, boot, "https boot (UEFI HTTP Boot over TLS)")
	}
}

func (s *security) shutdown(ctx context.Context) {
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
}

// securityFlags are the security settings' flags (serve and boot).
type securityFlags struct {
	apiAddr, apiCert, apiKey, apiAuth, httpsBootAddr, machineURLs string
}

func (f *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.apiAddr, "api-addr", "", "serve the API and web page on their own listener HOST:PORT, e.g. :8443 (HTTPS with --api-tls-cert/--api-tls-key); http_addr then serves only boot paths")
	fs.StringVar(&f.apiCert, "api-tls-cert", "", "PEM certificate (chain) for the API listener and HTTPS boot")
	fs.StringVar(&f.apiKey, "api-tls-key", "", "PEM private key of --api-tls-cert")
	fs.StringVar(&f.apiAuth, "api-auth", "", "auto (default: API tokens are checked once one exists) or required")
	fs.StringVar(&f.httpsBootAddr, "https-boot-addr", "", "give UEFI HTTP Boot clients https:// URLs served on HOST:PORT, e.g. :4433 (certificate: --api-tls-cert)")
	fs.StringVar(&f.machineURLs, "machine-urls", "", "token (default: a machine's script and files only under its secret URL) or open")
}

func (f *securityFlags) apply(c *config.Config) {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.APIAddr, f.apiAddr)
	set(&c.APITLS.Cert, f.apiCert)
	set(&c.APITLS.Key, f.apiKey)
	set(&c.APIAuth, f.apiAuth)
	set(&c.HTTPSBoot.Addr, f.httpsBootAddr)
	set(&c.MachineURLs, f.machineURLs)
}

// securityFlagNames are the flags of the security settings, by field, for
// errors of `pxed boot` (flagNames).
var securityFlagNames = map[string]string{
	"api_addr": "--api-addr", "api_tls": "--api-tls-cert/--api-tls-key", "api_auth": "--api-auth",
	"https_boot": "--https-boot-addr/--api-tls-cert", "https_boot.addr": "--https-boot-addr", "machine_urls": "--machine-urls",
}
