package client

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Config is what Probe simulates and where.
type Config struct {
	Interface string  // required unless Transport is set; sockets bind to it
	Profile   Profile // the firmware
	// MAC is the client's hardware address; nil means the interface's.
	MAC net.HardwareAddr
	// UUID is option 97; zero means UUIDFromMAC(MAC).
	UUID [16]byte
	// DUID is the DHCPv6 client identifier kind (DUIDUUID, DUIDLLT) of an
	// IPv6 probe; "" means DUIDUUID.
	DUID string
	// Fetch downloads the boot file (and, for iPXE, the script's files);
	// otherwise the probe only checks that they exist.
	Fetch bool
	// ExpectServers, when not empty, are the only servers that should answer.
	ExpectServers []netip.Addr
	Scale         float64   // timeout scale, see Exchange.Scale
	Transport     Transport // nil opens a UDPTransport on Interface
	Progress      Progress
	Logger        *slog.Logger
}

// Result is everything a probe found, for people (cmd/pxed formats it) and
// scripts (as JSON).
type Result struct {
	Interface   string      `json:"interface,omitempty"`
	Firmware    string      `json:"firmware"` // profile name
	Description string      `json:"description"`
	MAC         string      `json:"mac"`
	UUID        string      `json:"uuid"`
	VendorClass string      `json:"vendor_class"`
	DHCP        *DHCPResult `json:"dhcp"`
	// DHCP6 is the DHCPv6 exchange of an IPv6 probe (Probe6); DHCP is
	// then nil.
	DHCP6  *DHCP6Result `json:"dhcp6,omitempty"`
	Script *Script      `json:"script,omitempty"` // iPXE script, when one was loaded
	// Configured says which leased address the probe put on the interface
	// for the downloads, when it had none.
	Configured string     `json:"configured,omitempty"`
	Downloads  []Download `json:"downloads,omitempty"`
	Warnings   []Warning  `json:"warnings,omitempty"`
	// Boots is true when this firmware would boot: it got an address and a
	// boot file, and every file it loads exists (and, with Fetch, arrived).
	Boots   bool    `json:"boots"`
	Verdict string  `json:"verdict"` // why it would or would not boot
	Seconds float64 `json:"seconds"`
}

// Probe runs one simulated boot. It always returns a Result; Boots and
// Verdict say how it went.
func Probe(ctx context.Context, cfg Config) *Result {
	start := time.Now()
	p := cfg.Profile
	res := &Result{Interface: cfg.Interface, Firmware: p.Name, Description: p.Firmware, VendorClass: p.VendorClass()}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	fail := func(format string, args ...any) *Result {
		res.Verdict = fmt.Sprintf(format, args...)
		return res
	}
	mac := cfg.MAC
	if mac == nil {
		var err error
		if mac, err = InterfaceMAC(cfg.Interface); err != nil {
			return fail("%v", err)
		}
	}
	uuid := cfg.UUID
	if uuid == ([16]byte{}) {
		uuid = UUIDFromMAC(mac)
	}
	res.MAC, res.UUID = mac.String(), formatUUID(uuid)
	tr := cfg.Transport
	if tr == nil {
		u, err := ListenUDP(cfg.Interface)
		if err != nil {
			return fail("%v", err)
		}
		defer u.Close()
		tr = u
	}
	var cleanup func() error // undoes OnLease's change to the interface
	ex := &Exchange{Transport: tr, Profile: p, ID: Identity{MAC: mac, UUID: uuid}, Scale: cfg.Scale, NAKRestarts: probeNAKRestarts, Logger: cfg.Logger}
	if cfg.Transport == nil {
		ex.LocalAddr = interfaceAddr4(cfg.Interface)
		if !ex.LocalAddr.IsValid() {
			// Firmware configures its lease before boot server discovery
			// and the downloads; the probe's kernel sockets need the same.
			ex.OnLease = func(l *Lease) error {
				done, undo, err := configureLease(cfg.Interface, l)
				if err != nil {
					return err
				}
				res.Configured, cleanup = done, undo
				return nil
			}
		}
	}
	defer func() {
		if cleanup == nil {
			return
		}
		if err := cleanup(); err != nil {
			res.Warnings = append(res.Warnings, Warning{WarnCleanup, err.Error()})
		}
	}()
	d, err := ex.Run(ctx)
	res.DHCP = d
	res.Warnings = append(res.Warnings, OfferWarnings(d.Offers, cfg.ExpectServers)...)
	res.Warnings = append(res.Warnings, d.Warnings...)
	if err != nil {
		if d.Selection.Address < 0 {
			return fail("would not boot: %s", d.Selection.Reason)
		}
		return fail("would not boot: %v", err)
	}
	if d.BootFile == "" {
		return fail("would not boot: the selected offer has no boot file (PXE-E53: No boot filename received)")
	}
	if w, loop := ChainloadWarning(p, d.BootFile); loop {
		res.Warnings = append(res.Warnings, w)
		return fail("would not boot: chainload loop (iPXE offered %q)", d.BootFile)
	}
	f := &Fetcher{Profile: p, Interface: cfg.Interface, Progress: cfg.Progress}
	ok, why := probeFiles(ctx, f, cfg, d, res)
	if !ok {
		return fail("would not boot: %s", why)
	}
	res.Boots = true
	res.Verdict = "would boot: " + why
	return res
}

// probeFiles fetches (or checks) what the firmware loads after DHCP.
func probeFiles(ctx context.Context, f *Fetcher, cfg Config, d *DHCPResult, res *Result) (bool, string) {
	p := cfg.Profile
	get := func(role, name string, check bool) Download {
		var dl Download
		var w []Warning
		if isURL(name) {
			dl, w = f.HTTP(ctx, role, name, check)
		} else {
			dl, w = f.TFTP(ctx, role, d.BootServer, name, check)
		}
		res.Downloads = append(res.Downloads, dl)
		res.Warnings = append(res.Warnings, w...)
		return dl
	}
	file := d.BootFile
	switch {
	case !p.IPXE && p.HTTPBoot() && !isURL(file):
		return false, fmt.Sprintf("UEFI HTTP boot was given %q, not an http:// URL", file)
	case !p.IPXE && !p.HTTPBoot() && isURL(file):
		return false, fmt.Sprintf("PXE firmware cannot load the URL %q (only iPXE and HTTP boot clients can)", file)
	case !p.IPXE:
		dl := get("nbp", file, !cfg.Fetch)
		if !dl.OK() {
			return false, fmt.Sprintf("boot file %s: %s", file, dl.Err)
		}
		if p.HTTPBoot() {
			kind, w := httpImageCheck(dl)
			if w != nil {
				res.Warnings = append(res.Warnings, *w)
				return false, w.Message
			}
			return true, fmt.Sprintf("%s loads %s over HTTP as an %s", p.Firmware, file, kind)
		}
		return true, fmt.Sprintf("%s loads %s from %s", p.Firmware, file, serverOf(dl))
	}
	// iPXE: the boot file is a script (or, rarely, another image).
	dl := get("script", file, false)
	if !dl.OK() {
		return false, fmt.Sprintf("script %s: %s", file, dl.Err)
	}
	base := file
	if !isURL(base) {
		base = "tftp://" + d.BootServer.String() + "/" + strings.TrimPrefix(file, "/")
	}
	s, err := ParseScript(string(dl.content), base)
	if err != nil {
		return false, err.Error()
	}
	res.Script = &s
	kernel := false
	for _, sf := range s.Files {
		if sf.Unresolved {
			continue
		}
		if sf.Command == "chain" && IsNBP(sf.URL) {
			if w, loop := ChainloadWarning(p, sf.URL); loop {
				res.Warnings = append(res.Warnings, w)
				return false, fmt.Sprintf("the script chainloads %s: iPXE again", sf.URL)
			}
		}
		var fd Download
		if strings.HasPrefix(sf.URL, "tftp://") {
			u := strings.TrimPrefix(sf.URL, "tftp://")
			host, name, _ := strings.Cut(u, "/")
			a, err := netip.ParseAddr(host)
			if err != nil {
				continue
			}
			fd, _ = f.TFTP(ctx, sf.Command, a, name, !cfg.Fetch)
			res.Downloads = append(res.Downloads, fd)
		} else {
			fd = get(sf.Command, sf.URL, !cfg.Fetch)
		}
		if !fd.OK() {
			return false, fmt.Sprintf("%s %s: %s", sf.Command, sf.URL, fd.Err)
		}
		kernel = kernel || sf.Command == "kernel" || sf.Command == "chain"
	}
	if !kernel {
		return false, fmt.Sprintf("script %s loads no kernel and chains to nothing", file)
	}
	return true, fmt.Sprintf("iPXE runs script %s and loads %d file(s)", file, len(s.Files))
}

// interfaceAddr4 returns the first IPv4 address of interface name, or the
// zero Addr.
func interfaceAddr4(name string) netip.Addr {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().Is4() {
			return pfx.Addr()
		}
	}
	return netip.Addr{}
}

func serverOf(d Download) string {
	if d.Proto == "http" {
		return "HTTP"
	}
	return "TFTP server " + d.Server
}

func formatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// probeNAKRestarts is how often a probe starts over after a DHCPNAK, as
// firmware does (RFC 2131 §3.1), before it reports that the machine would
// not get an address.
const probeNAKRestarts = 3
