package config

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
)

// Security holds the security settings, at the top level of the file
// (inlined in Config): API authentication, TLS for the API and UI, HTTPS
// Boot, and per-machine secret URLs.
type Security struct {
	// APIAuth: auto (default: tokens are checked once one exists in the
	// data directory, else the API is open) or required (no token: no
	// access).
	APIAuth string `yaml:"api_auth"`
	// APIAuthExempt are path prefixes served without a token (default
	// /boot/, /files/, /healthz, /metrics). POST
	// /api/machines/{mac}/checkin is always exempt: it carries the
	// machine's own token.
	APIAuthExempt []string `yaml:"api_auth_exempt"`
	// APIAddr, when set, serves the API and the UI on a listener of
	// their own (HTTPS with APITLS); http_addr then serves only the boot
	// paths.
	APIAddr string   `yaml:"api_addr"`
	APITLS  TLSFiles `yaml:"api_tls"`
	// HTTPSBoot gives UEFI HTTP Boot clients https:// URLs on its own
	// listener.
	HTTPSBoot HTTPSBoot `yaml:"https_boot"`
	// MachineURLs: token (default: a machine's script, generated loader
	// configurations and directory are served only under its secret
	// token) or open (as before: anybody who knows a MAC).
	MachineURLs string `yaml:"machine_urls"`
}

// TLSFiles are a PEM certificate chain and its private key.
type TLSFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Set reports whether a certificate is configured.
func (t TLSFiles) Set() bool { return t.Cert != "" || t.Key != "" }

// HTTPSBoot is the https_boot section.
type HTTPSBoot struct {
	Addr string `yaml:"addr"` // HOST:PORT of the HTTPS boot listener; "" off
	// Cert and Key default to api_tls's.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Values of api_auth and machine_urls.
const (
	APIAuthAuto     = "auto"
	APIAuthRequired = "required"
	MachineURLToken = "token"
	MachineURLOpen  = "open"
)

// DefaultAPIAuthExempt are the path prefixes served without an API token.
var DefaultAPIAuthExempt = []string{"/boot/", "/files/", "/healthz", "/metrics"}

// BootTLS is the certificate of the HTTPS boot listener: https_boot's own,
// else api_tls's.
func (s Security) BootTLS() TLSFiles {
	if s.HTTPSBoot.Cert != "" || s.HTTPSBoot.Key != "" {
		return TLSFiles{Cert: s.HTTPSBoot.Cert, Key: s.HTTPSBoot.Key}
	}
	return s.APITLS
}

func (c *Config) defaultsSecurity() {
	if c.APIAuth == "" {
		c.APIAuth = APIAuthAuto
	}
	if c.APIAuthExempt == nil {
		c.APIAuthExempt = append([]string(nil), DefaultAPIAuthExempt...)
	}
	if c.MachineURLs == "" {
		c.MachineURLs = MachineURLToken
	}
}

func (c *Config) validateSecurity() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	switch c.APIAuth {
	case APIAuthAuto, APIAuthRequired:
	default:
		add(c.errorf("api_auth", "%q: write auto (tokens once one exists) or required", c.APIAuth))
	}
	switch c.MachineURLs {
	case MachineURLToken, MachineURLOpen:
	default:
		add(c.errorf("machine_urls", "%q: write token (a machine's files only under its secret URL) or open", c.MachineURLs))
	}
	for i, p := range c.APIAuthExempt {
		if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "/api") {
			add(c.errorf(fmt.Sprintf("api_auth_exempt[%d]", i), "%q: write a path prefix starting with / outside /api/, e.g. /metrics", p))
		}
	}
	for _, f := range []struct{ field, val string }{{"api_addr", c.APIAddr}, {"https_boot.addr", c.HTTPSBoot.Addr}} {
		if f.val == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.val); err != nil {
			add(c.errorf(f.field, "%q is not HOST:PORT: write e.g. \":8443\"", f.val))
		}
	}
	check := func(field string, t TLSFiles) {
		if t.Cert == "" || t.Key == "" {
			add(c.errorf(field, "give both cert and key (PEM files), e.g. {cert: /etc/pxed/tls.crt, key: /etc/pxed/tls.key}"))
			return
		}
		if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			add(c.errorf(field, "cannot load the certificate: %v", err))
		}
	}
	if c.APITLS.Set() {
		check("api_tls", c.APITLS)
		if c.APIAddr == "" {
			add(c.errorf("api_tls", "TLS needs a listener of its own: write api_addr: \":8443\" (or pass --api-addr); boot paths stay plain HTTP on http_addr"))
		}
	}
	if c.HTTPSBoot.Addr != "" {
		if bt := c.BootTLS(); bt.Set() {
			if c.HTTPSBoot.Cert != "" || c.HTTPSBoot.Key != "" {
				check("https_boot", bt)
			}
		} else {
			add(c.errorf("https_boot", "no certificate: write https_boot.cert and https_boot.key, or api_tls"))
		}
	}
	return es
}
