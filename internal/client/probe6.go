package client

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// WarnHTTPImageType: UEFI HTTP boot cannot tell what the file is (neither
// its Content-Type nor its extension says EFI program, ISO or disk image).
const WarnHTTPImageType = "http-image-type"

// httpImageCheck returns the warning for a UEFI HTTP boot download whose
// kind the firmware cannot tell, and what it is otherwise.
func httpImageCheck(dl Download) (string, *Warning) {
	kind, ok := HTTPImageType(dl.ContentType, dl.Name)
	if ok {
		return kind, nil
	}
	return "", &Warning{WarnHTTPImageType, fmt.Sprintf("%s answers Content-Type %q and its path ends in no .efi, .iso or .img: "+
		"HttpBootDxe refuses it (serve it as application/efi)", dl.Name, dl.ContentType)}
}

// Config6 adds what an IPv6 probe needs to Config.
type Config6 struct {
	Config
	// Transport, when set, replaces the sockets on Interface (tests).
	Transport Transport6
	// LinkLocalWait bounds the wait for the interface's link-local
	// address; 0 means 5 s.
	LinkLocalWait time.Duration
}

// Probe6 runs one simulated boot over IPv6 as EDK II does: its PXE client
// (Exchange6, then the NBP over TFTP on IPv6) or, for an HTTP boot
// profile, HttpBootDxe (the URI over HTTP). It always returns a Result.
func Probe6(ctx context.Context, cfg Config6) *Result {
	start := time.Now()
	p := cfg.Profile
	res := &Result{Interface: cfg.Interface, Firmware: p.Name, Description: p.Firmware + " over IPv6", VendorClass: p.VendorClass()}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	fail := func(format string, args ...any) *Result {
		res.Verdict = fmt.Sprintf(format, args...)
		return res
	}
	if p.IPXE || !strings.HasPrefix(p.Name, "efi-") {
		return fail("an IPv6 probe simulates EDK II (efi-* firmware), not %s", p.Name)
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
		wait := cfg.LinkLocalWait
		if wait <= 0 {
			wait = 5 * time.Second
		}
		if err := WaitLinkLocal(ctx, cfg.Interface, wait); err != nil {
			return fail("%v", err)
		}
		mux, err := OpenMux6(cfg.Interface, cfg.Logger)
		if err != nil {
			return fail("%v", err)
		}
		defer mux.Close()
		c := mux.Conn()
		defer c.Close()
		tr = c
	}
	id := Identity6{MAC: mac, UUID: uuid, DUID: cfg.DUID}
	ex := &Exchange6{Transport: tr, Profile: p, ID: id, Scale: cfg.Scale, Logger: cfg.Logger}
	var cleanup func() error
	if cfg.Transport == nil && !interfaceAddr6(cfg.Interface).IsValid() {
		ex.OnLease = func(l *Lease6) error {
			done, undo, err := configureLease6(cfg.Interface, l)
			if err != nil {
				return err
			}
			res.Configured, cleanup = done, undo
			return nil
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
	res.DHCP6 = d
	res.Warnings = append(res.Warnings, OfferWarnings6(d.Offers, cfg.ExpectServers)...)
	res.Warnings = append(res.Warnings, d.Warnings...)
	if err != nil {
		if d.Selection.Address < 0 {
			return fail("would not boot: %s", d.Selection.Reason)
		}
		return fail("would not boot: %v", err)
	}
	if d.BootFile == "" {
		return fail("would not boot: the chosen offer has no boot file URL")
	}
	f := &Fetcher{Profile: p, Interface: cfg.Interface, Progress: cfg.Progress}
	var dl Download
	var warns []Warning
	if p.HTTPBoot() {
		if !isURL(d.BootFile) {
			return fail("would not boot: UEFI HTTP boot was given %q, not an http:// URL", d.BootFile)
		}
		dl, warns = f.HTTP(ctx, "nbp", d.BootFile, !cfg.Fetch)
	} else {
		dl, warns = f.TFTP(ctx, "nbp", d.BootServer, d.BootName, !cfg.Fetch)
	}
	res.Downloads = append(res.Downloads, dl)
	res.Warnings = append(res.Warnings, warns...)
	if !dl.OK() {
		return fail("would not boot: boot file %s: %s", d.BootFile, dl.Err)
	}
	how := "TFTP server " + d.BootServer.String()
	if p.HTTPBoot() {
		kind, w := httpImageCheck(dl)
		if w != nil {
			res.Warnings = append(res.Warnings, *w)
			return fail("would not boot: %s", w.Message)
		}
		how = "HTTP as an " + kind
	}
	res.Boots = true
	res.Verdict = fmt.Sprintf("would boot: %s over IPv6 loads %s from %s", p.Firmware, d.BootFile, how)
	return res
}

// OfferWarnings6 returns the warnings Advertises alone show: more than
// one DHCPv6 server giving addresses, and servers (by source address) not
// in expect when expect is not empty.
func OfferWarnings6(offers []Offer6, expect []netip.Addr) []Warning {
	var out []Warning
	var addrServers []string
	seen := map[netip.Addr]bool{}
	for _, o := range offers {
		s := o.Server().WithZone("")
		if o.Kind == "dhcp" && o.Dropped == "" && !containsString(addrServers, s.String()) {
			addrServers = append(addrServers, s.String())
		}
		if len(expect) > 0 && !contains(expect, s) && !seen[s] {
			out = append(out, Warning{WarnUnexpectedServer, fmt.Sprintf("%s answered (%s Advertise) but is not an expected server", s, o.Type)})
		}
		seen[s] = true
	}
	if len(addrServers) > 1 {
		out = append(out, Warning{WarnTwoDHCPServers, fmt.Sprintf("%d DHCPv6 servers hand out addresses: %s", len(addrServers), strings.Join(addrServers, ", "))})
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
