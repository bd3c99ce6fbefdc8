package boot

import (
	"crypto/subtle"
	"net"
	"strings"
)

// Per-machine secret URLs. A machine's script, its generated loader
// configurations and the files of its directory carry what only that
// machine should see (a kernel command line with credentials, an install
// answer file). With Config.MachineToken set, the URLs a machine is given
// put its token after its MAC: /boot/<mac>/<token>/script.ipxe. The token
// is a secret of the server for that MAC (pxed's machinekey package), so
// knowing a MAC is not enough to fetch that machine's files. Resolve
// strips a valid token and says so (Resolved.Token); the HTTP and TFTP
// servers refuse what names a machine without it. The decision stays
// pure: the token is a function passed in.

// serverFor fills what s takes from c for machine m: the machine token
// function, and for UEFI HTTP Boot the HTTPS port.
func (c *Config) serverFor(m Machine, s Server) Server {
	if s.Token == nil {
		s.Token = c.MachineToken
	}
	if m.Firmware == FirmwareHTTP && c.HTTPSPort != 0 {
		// UEFI 2.10 §24.7: HTTP Boot over TLS is an https:// boot URL;
		// the firmware checks the server against the CA certificates
		// enrolled in it (EDK II: the TlsCaCertificate variable).
		s.TLS, s.HTTPPort = true, c.HTTPSPort
	}
	return s
}

// tokenSegment is "/<token>" for mac, "" when there is no token function.
func tokenSegment(token func(net.HardwareAddr) string, mac net.HardwareAddr) string {
	if token == nil {
		return ""
	}
	if t := token(mac); t != "" {
		return "/" + t
	}
	return ""
}

// stripToken removes a machine's valid token from boot/<mac>/<token>/rest
// and returns the path without it and the token; name unchanged and ""
// when the path carries no valid token (or c has no token function).
func (c *Config) stripToken(name string) (string, string) {
	if c.MachineToken == nil {
		return name, ""
	}
	rest, ok := strings.CutPrefix(name, "boot/")
	if !ok {
		return name, ""
	}
	dir, after, ok := strings.Cut(rest, "/")
	if !ok {
		return name, ""
	}
	seg, file, ok := strings.Cut(after, "/")
	if !ok || file == "" {
		return name, ""
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(dir, "-", ":"))
	if err != nil {
		return name, ""
	}
	want := c.MachineToken(mac)
	if want == "" || subtle.ConstantTimeCompare([]byte(seg), []byte(want)) != 1 {
		return name, ""
	}
	return "boot/" + dir + "/" + file, seg
}

// NeedsToken reports whether res names a machine whose files are served
// only with its token, and the path did not carry it.
func (c *Config) NeedsToken(res Resolved) bool {
	return c.MachineToken != nil && res.MAC != nil && !res.Token
}
