package config

import (
	"fmt"
	"net/netip"
	"path"
	"time"
)

// TFTPMulticast is the tftp_multicast section: many machines fetch one file
// in one multicast stream (RFC 2090 and PXE 2.1 MTFTP). Off by default.
type TFTPMulticast struct {
	Enabled bool `yaml:"enabled"`
	// Groups: IPv4 multicast addresses for the streams, one per file being
	// sent (default 239.255.70.0/24, administratively scoped, RFC 2365).
	Groups string `yaml:"groups"`
	// Port RFC 2090 clients receive on (default 1758).
	Port int `yaml:"port"`
	// TTL of the multicast datagrams (default 1: the boot segment only).
	TTL int `yaml:"ttl"`
	// Files (path.Match patterns on the root-relative name) RFC 2090
	// clients may get by multicast; empty: every file. A profile with
	// `multicast: true` adds its boot files.
	Files []string `yaml:"files"`
	// PXE: PXE 2.1 MTFTP for BIOS PXE ROMs (never offered to EDK II).
	PXE PXEMTFTP `yaml:"pxe"`
}

// PXEMTFTP configures PXE 2.1 MTFTP: the offers to BIOS PXE ROMs carry
// option 43 sub-options 1–5 for these files.
type PXEMTFTP struct {
	Enabled bool `yaml:"enabled"`
	// Files offered by MTFTP (patterns as above); empty: the boot files of
	// profiles with `multicast: true`.
	Files      []string `yaml:"files"`
	ClientPort int      `yaml:"client_port"` // MTFTP_CPORT, default 1758
	ServerPort int      `yaml:"server_port"` // MTFTP_SPORT, default 1759
	Listen     Duration `yaml:"listen"`      // MTFTP_TMOUT, default 2s (1s..255s)
	Delay      Duration `yaml:"delay"`       // MTFTP_DELAY, default 2s (1s..255s)
}

// Multicast defaults.
const (
	DefaultMulticastGroups = "239.255.70.0/24"
	DefaultMulticastPort   = 1758
	DefaultMTFTPServerPort = 1759
	DefaultMTFTPWait       = 2 * time.Second
)

// MulticastGroups returns the groups prefix (call after Validate).
func (m TFTPMulticast) MulticastGroups() netip.Prefix {
	s := m.Groups
	if s == "" {
		s = DefaultMulticastGroups
	}
	p, _ := netip.ParsePrefix(s)
	return p.Masked()
}

// MTFTPPorts returns the PXE MTFTP client and server ports.
func (m TFTPMulticast) MTFTPPorts() (client, server uint16) {
	client, server = uint16(m.PXE.ClientPort), uint16(m.PXE.ServerPort)
	if client == 0 {
		client = DefaultMulticastPort
	}
	if server == 0 {
		server = DefaultMTFTPServerPort
	}
	return client, server
}

// MTFTPWaits returns MTFTP_TMOUT and MTFTP_DELAY in seconds.
func (m TFTPMulticast) MTFTPWaits() (listen, delay uint8) {
	sec := func(d Duration) uint8 {
		if d == 0 {
			return uint8(DefaultMTFTPWait / time.Second)
		}
		return uint8(d.D() / time.Second)
	}
	return sec(m.PXE.Listen), sec(m.PXE.Delay)
}

// multicastProfileFiles are the boot files of profiles with multicast: true
// (or the global ones they fall back to).
func (c *Config) multicastProfileFiles() []string {
	var out []string
	for _, p := range c.Profiles {
		if !p.Multicast {
			continue
		}
		files := p.BootFiles
		if len(files) == 0 {
			files = c.BootFiles
		}
		if len(files) == 0 {
			files = DefaultBootFiles
		}
		for _, f := range files {
			out = append(out, f)
		}
	}
	return out
}

func matcher(patterns []string) func(string) bool {
	return func(name string) bool {
		for _, p := range patterns {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
		return false
	}
}

// MulticastFiles returns which files RFC 2090 requests may get by multicast
// and which are offered by PXE MTFTP (nil: none), or both nil when the
// section is off.
func (c *Config) MulticastFiles() (rfc2090, pxe func(string) bool) {
	m := c.TFTPMulticast
	if !m.Enabled {
		return nil, nil
	}
	prof := c.multicastProfileFiles()
	if len(m.Files) == 0 {
		rfc2090 = func(string) bool { return true }
	} else {
		rfc2090 = matcher(append(append([]string(nil), m.Files...), prof...))
	}
	if m.PXE.Enabled {
		pats := m.PXE.Files
		if len(pats) == 0 {
			pats = prof
		}
		pxe = matcher(pats)
	}
	return rfc2090, pxe
}

func (c *Config) validateMulticast() Errors {
	var es Errors
	m := c.TFTPMulticast
	if m.Groups != "" {
		p, err := netip.ParsePrefix(m.Groups)
		if err != nil || !p.Addr().Is4() || !p.Masked().Addr().IsMulticast() || p.Bits() < 4 {
			es = append(es, c.errorf("tftp_multicast.groups", "%q is not an IPv4 multicast prefix: write e.g. %s", m.Groups, DefaultMulticastGroups))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"tftp_multicast.port", m.Port}, {"tftp_multicast.pxe.client_port", m.PXE.ClientPort}, {"tftp_multicast.pxe.server_port", m.PXE.ServerPort}} {
		if f.v < 0 || f.v > 65535 {
			es = append(es, c.errorf(f.name, "%d is not a UDP port: write 1..65535", f.v))
		}
	}
	if m.TTL < 0 || m.TTL > 255 {
		es = append(es, c.errorf("tftp_multicast.ttl", "%d is out of range: write 1..255", m.TTL))
	}
	for _, f := range []struct {
		name string
		d    Duration
	}{{"tftp_multicast.pxe.listen", m.PXE.Listen}, {"tftp_multicast.pxe.delay", m.PXE.Delay}} {
		if f.d != 0 && (f.d.D() < time.Second || f.d.D() > 255*time.Second || f.d.D()%time.Second != 0) {
			es = append(es, c.errorf(f.name, "%v: PXE carries whole seconds 1..255: write e.g. 2s", f.d.D()))
		}
	}
	for i, p := range append(append([]string(nil), m.Files...), m.PXE.Files...) {
		if _, err := path.Match(p, ""); err != nil {
			es = append(es, c.errorf("tftp_multicast.files", "pattern %d %q: %v: write a path.Match pattern such as \"*.wim\"", i, p, err))
		}
	}
	if !m.Enabled {
		for name, p := range c.Profiles {
			if p.Multicast {
				es = append(es, c.errorf(fmt.Sprintf("profiles.%s.multicast", name),
					"multicast is on for the profile but tftp_multicast is off: write `tftp_multicast: {enabled: true}`"))
			}
		}
	}
	if m.Enabled && c.TFTPAddr == "off" {
		es = append(es, c.errorf("tftp_multicast.enabled", "TFTP is off (tftp_addr: off): remove tftp_multicast or serve TFTP"))
	}
	return es
}
