// Package boot is pxed's boot decision: given what a machine told us about
// itself (MAC, architecture, firmware), which profile it gets and what to
// answer at each stage — an NBP over TFTP, an HTTP boot URL, or the URL of a
// per-machine iPXE script — and the script itself. It is pure: no sockets,
// no files, only the standard library, so every firmware × stage case is a
// table test.
package boot

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"sort"
	"strings"
)

// Firmware is the kind of boot client, as far as the decision cares.
type Firmware int

// Firmware kinds.
const (
	FirmwareUnknown Firmware = iota // not a network boot client
	FirmwarePXE                     // PXE ROM (legacy BIOS or UEFI/EDK II): vendor class PXEClient
	FirmwareHTTP                    // UEFI HTTP boot: vendor class HTTPClient
	FirmwareIPXE                    // iPXE: user class "iPXE" or option 175
)

func (f Firmware) String() string {
	switch f {
	case FirmwarePXE:
		return "pxe"
	case FirmwareHTTP:
		return "uefi-http"
	case FirmwareIPXE:
		return "ipxe"
	}
	return "unknown"
}

// Machine is what a boot client told us about itself.
type Machine struct {
	MAC      net.HardwareAddr
	Firmware Firmware
	Arch     uint16 // option 93 value; meaningful when HasArch
	HasArch  bool
	// Class is the boot-file class of Arch ("bios", "efi-x64", "efi-arm64",
	// …; see package pxe), "" when pxed has none for it.
	Class string
	UUID  string // option 97, hex; "" when absent
}

// Profile is what a group of machines boots: a kernel with initrds and a
// command line loaded by iPXE, or a custom iPXE script, and optionally other
// NBPs than iPXE per architecture class.
type Profile struct {
	Name    string
	Kernel  string   // path of the kernel on the server; "" when Script is used
	Initrds []string // paths of the initrds, in load order
	Cmdline string   // kernel command line (initrd=NAME entries are added by pxed)
	// Script, when set, replaces the generated iPXE script. ${base} is
	// replaced with the machine's file URL prefix and ${mac} with its MAC.
	Script string
	// BootFiles overrides Config.BootFiles per class for this profile
	// (for instance shim/GRUB instead of iPXE).
	BootFiles map[string]string
	// Image, when set, is the path of a bootable ISO or disk image: UEFI
	// HTTP Boot clients get its URL instead of an NBP and boot it as a RAM
	// disk, and iPXE, when the profile has neither kernel nor script,
	// sanboots it.
	Image string
	// Loader loads the kernel after the NBP: iPXE ("" too), GRUB or
	// PXELINUX, with configuration pxed generates (loader.go).
	Loader Loader
	// SecureBoot, with Loader GRUB, hands UEFI machines the signed shim,
	// which loads the signed GRUB, which loads the signed kernel.
	SecureBoot bool
	// Special is set on the pseudo-profiles the decision makes for
	// machines that boot no profile (fleet.go): SpecialLocal,
	// SpecialHold, SpecialDeny; "" for a real profile.
	Special string
}

// Config is the whole decision's input besides the machine.
type Config struct {
	// BootFiles maps an architecture class to the NBP (a TFTP path) that a
	// PXE ROM of that class loads, e.g. "bios" → "undionly.kpxe",
	// "efi-x64" → "ipxe.efi".
	BootFiles map[string]string
	Profiles  map[string]Profile
	Default   string            // profile for machines not in Machines; "" boots no unknown machine
	Machines  map[string]string // MAC ("aa:bb:cc:dd:ee:ff") → profile name
	Menus     *Menus            // PXE boot menus (menu.go); nil: none

	// MachineToken and HTTPSPort: per-machine secret URLs and HTTPS
	// Boot (secure.go). Zero: neither.
	MachineToken func(mac net.HardwareAddr) string
	HTTPSPort    int
	// The fleet (fleet.go): the inventory, selectors, and what to do
	// with machines nobody approved ("" boots them).
	Fleet     Fleet
	Selectors []Selector
	Unknown   UnknownPolicy
	// CheckinToken gives the token of a machine's check-in URL
	// (templates' .CheckinURL); nil: no token.
	CheckinToken func(mac string) string
}

// Server is where this answer comes from: the address of the interface the
// request arrived on and the HTTP port, to build URLs the machine can reach.
type Server struct {
	IP       netip.Addr
	HTTPPort int
	TFTPPort int // 0 or 69: the standard port, left out of TFTP URLs
	// Token and TLS: secure.go (Decide fills them from Config).
	Token func(mac net.HardwareAddr) string
	TLS   bool // https:// URLs on HTTPPort
}

// Action is what to answer.
type Action int

// Actions.
const (
	Ignore      Action = iota // do not answer; Plan.Reason says why
	ServeNBP                  // give a boot file name to fetch over TFTP
	ServeURL                  // give an HTTP URL (UEFI HTTP boot NBP)
	ServeScript               // give iPXE the URL of its per-machine script
)

func (a Action) String() string {
	return [...]string{"ignore", "nbp", "http-url", "ipxe-script"}[a]
}

// Plan is the decision for one request.
type Plan struct {
	Action      Action
	BootFile    string // TFTP path or URL, per Action
	VendorClass string // option 60 to answer with: PXEClient or HTTPClient
	Profile     string
	Reason      string     // why, for logs and events (always set)
	Loader      LoaderPlan // the loader after the NBP and its generated files

	// Menu is the boot menu of an offer or the item a boot server
	// request chose (menu.go); nil: none.
	Menu *MenuPlan

	// Dropped: an unknown machine not answered on purpose
	// (unknown_machines: ignore). The loops count it and record no
	// event: a flood of unknown MACs must cost little.
	Dropped bool
}

// Normalize formats a MAC the way Config.Machines keys and URLs use it.
func Normalize(mac net.HardwareAddr) string { return strings.ToLower(mac.String()) }

// ProfileFor returns the profile of mac and whether it has one.
// (fleet.go: a menu choice, boot-once, runtime profile, machines:,
// selectors, default; a pseudo-profile with Special set for machines held,
// denied or booting locally).
func (c *Config) ProfileFor(mac net.HardwareAddr) (Profile, bool) {
	return c.profileOf(mac, "", "")
}

// Decide returns what to answer machine m.
func (c *Config) Decide(m Machine, s Server) Plan {
	s = c.serverFor(m, s) // secure.go
	if m.Firmware == FirmwareUnknown {
		return Plan{Reason: "not a network boot client (no PXEClient/HTTPClient vendor class, no iPXE user class)"}
	}
	if len(m.MAC) == 0 {
		return Plan{Reason: "no client hardware address"}
	}
	p, ok := c.profileOf(m.MAC, m.Class, m.UUID)
	if !ok {
		if c.Admission(Normalize(m.MAC)) == Drop {
			return Plan{Dropped: true, Reason: fmt.Sprintf("unknown machine %s not answered (unknown_machines: ignore)", Normalize(m.MAC))}
		}
		return Plan{Reason: fmt.Sprintf("no profile for %s and no default profile", Normalize(m.MAC))}
	}
	switch {
	case p.Special == SpecialDeny:
		return Plan{Profile: p.Name, Reason: fmt.Sprintf("machine %s is denied", Normalize(m.MAC))}
	case p.Special == SpecialLocal && m.Firmware != FirmwareIPXE:
		return Plan{Profile: p.Name, Reason: "local boot: not answered (the firmware goes on to its next boot device)"}
	case p.Special != "" && m.Firmware == FirmwareIPXE:
		why := "iPXE: local boot script (exit)"
		if p.Special == SpecialHold {
			why = "iPXE: held, waiting for approval"
		}
		return Plan{Action: ServeScript, BootFile: ScriptURL(s, m.MAC), VendorClass: "PXEClient", Profile: p.Name, Reason: why}
	}
	if Of(p) != LoaderIPXE {
		return decideLoader(p, m, s)
	}
	if m.Firmware == FirmwareIPXE {
		// Never hand iPXE the iPXE binary again: that is the chainload loop.
		if p.Kernel == "" && p.Script == "" && p.Image == "" {
			return Plan{Profile: p.Name, Reason: fmt.Sprintf("profile %q has neither a kernel, a script nor an image for iPXE", p.Name)}
		}
		return Plan{Action: ServeScript, BootFile: ScriptURL(s, m.MAC), VendorClass: "PXEClient", Profile: p.Name,
			Reason: "iPXE: per-machine script"}
	}
	if m.Firmware == FirmwareHTTP && p.Image != "" {
		// UEFI 2.10 §24.7.2: the firmware loads an ISO or disk image
		// into a RAM disk and boots it (the HTTP server names the kind
		// with the Content-Type).
		return Plan{Action: ServeURL, BootFile: MachineBase(s, m.MAC) + "/" + ImageName(p), VendorClass: "HTTPClient", Profile: p.Name,
			Reason: "UEFI HTTP boot: image " + ImageName(p) + " as a RAM disk"}
	}
	file := p.BootFiles[m.Class]
	if file == "" {
		file = c.BootFiles[m.Class]
	}
	if m.Class == "" || file == "" {
		arch := "none"
		if m.HasArch {
			arch = fmt.Sprint(m.Arch)
		}
		return Plan{Profile: p.Name, Reason: fmt.Sprintf("no boot file for architecture %s (option 93 %s)", classOr(m.Class), arch)}
	}
	if m.Firmware == FirmwareHTTP {
		return Plan{Action: ServeURL, BootFile: FileURL(s, file), VendorClass: "HTTPClient", Profile: p.Name,
			Reason: "UEFI HTTP boot: NBP over HTTP"}
	}
	return Plan{Action: ServeNBP, BootFile: file, VendorClass: "PXEClient", Profile: p.Name,
		Reason: fmt.Sprintf("%s PXE: NBP over TFTP", m.Class)}
}

func classOr(c string) string {
	if c == "" {
		return "unknown"
	}
	return c
}

func base(s Server) string {
	if s.TLS {
		return "https://" + hostPort(s.IP, s.HTTPPort, 443)
	}
	return "http://" + hostPort(s.IP, s.HTTPPort, 80)
}

// hostPort is a URL's authority: IPv6 in brackets (RFC 3986 §3.2.2),
// without a zone (a boot URL names a routable address), IPv4-mapped
// addresses as IPv4, and the port unless it is the scheme's own.
func hostPort(ip netip.Addr, port, std int) string {
	ip = ip.Unmap().WithZone("")
	host := ip.String()
	if ip.Is6() {
		host = "[" + host + "]"
	}
	if port != 0 && port != std {
		host = fmt.Sprintf("%s:%d", host, port)
	}
	return host
}

// TFTPURL is the URL of a file served over TFTP (RFC 3617):
// tftp://[2001:db8::1]/snponly.efi, as DHCPv6's boot file URL option
// carries it (RFC 5970 §3.1; EDK II reads the address between the
// brackets and the name after the slash).
func TFTPURL(s Server, name string) string {
	u := url.URL{Path: "/" + strings.TrimPrefix(name, "/")}
	return "tftp://" + hostPort(s.IP, s.TFTPPort, 69) + u.EscapedPath()
}

// MachineBase is the URL prefix of one machine's files: its script, kernel
// and initrds (the HTTP server resolves them by MAC and profile).
func MachineBase(s Server, mac net.HardwareAddr) string {
	return base(s) + "/boot/" + strings.ReplaceAll(Normalize(mac), ":", "-") + tokenSegment(s.Token, mac)
}

// ScriptURL is the URL of mac's iPXE script.
func ScriptURL(s Server, mac net.HardwareAddr) string { return MachineBase(s, mac) + "/script.ipxe" }

// FileURL is the URL of a file in the boot directory.
func FileURL(s Server, name string) string {
	return base(s) + "/files/" + strings.TrimPrefix(name, "/")
}

// Script renders the iPXE script of profile p for mac. Each initrd is
// named after its file and listed as initrd=NAME on the kernel command line:
// EFI stub kernels loaded by iPXE on UEFI find their initrd that way, and
// BIOS kernels ignore it.
func Script(p Profile, s Server, mac net.HardwareAddr) (string, error) {
	b := MachineBase(s, mac)
	if p.Special != "" {
		return specialScript(p, s, mac), nil
	}
	if p.Script != "" {
		r := strings.NewReplacer("${base}", b, "${mac}", Normalize(mac))
		out := r.Replace(p.Script)
		if !strings.HasPrefix(out, "#!ipxe") {
			out = "#!ipxe\n" + out
		}
		return out, nil
	}
	if Of(p) != LoaderIPXE {
		return chainLoaderScript(p, b, mac), nil
	}
	if p.Kernel == "" && p.Image != "" {
		return sanbootScript(p, b, mac), nil
	}
	if p.Kernel == "" {
		return "", fmt.Errorf("boot: profile %q has neither kernel nor script", p.Name)
	}
	names, err := FileNames(p)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	sb.WriteString("#!ipxe\n")
	fmt.Fprintf(&sb, "echo pxed: %s boots profile %s\n", Normalize(mac), p.Name)
	sb.WriteString("kernel " + b + "/" + names[0])
	for _, n := range names[1:] {
		sb.WriteString(" initrd=" + n)
	}
	if p.Cmdline != "" {
		sb.WriteString(" " + p.Cmdline)
	}
	sb.WriteString(" || goto failed\n")
	for _, n := range names[1:] {
		sb.WriteString("initrd " + b + "/" + n + " || goto failed\n")
	}
	sb.WriteString("boot || goto failed\n")
	sb.WriteString(":failed\necho pxed: boot failed, retrying in 10 seconds\nsleep 10\nreboot\n")
	return sb.String(), nil
}

// sanbootScript boots p's image from iPXE: attached as a SAN disk over
// HTTP (iPXE reads it with Range requests) and booted.
func sanbootScript(p Profile, base string, mac net.HardwareAddr) string {
	var sb strings.Builder
	sb.WriteString("#!ipxe\n")
	fmt.Fprintf(&sb, "echo pxed: %s boots profile %s (image)\n", Normalize(mac), p.Name)
	sb.WriteString("sanboot --no-describe " + base + "/" + ImageName(p) + " || goto failed\n")
	sb.WriteString(":failed\necho pxed: boot failed, retrying in 10 seconds\nsleep 10\nreboot\n")
	return sb.String()
}

// ImageName is the URL name of p's image under MachineBase: its base
// name; "" when p has none.
func ImageName(p Profile) string {
	if p.Image == "" {
		return ""
	}
	return baseName(p.Image)
}

func baseName(f string) string { return path.Base(strings.ReplaceAll(f, "\\", "/")) }

// FileNames returns the URL names of p's kernel (first) and initrds: their
// base names, which must be distinct, distinct from the image's and must
// not be "script.ipxe".
func FileNames(p Profile) ([]string, error) {
	var files []string
	if p.Image != "" {
		files = append(files, p.Image)
	}
	if p.Kernel != "" {
		files = append(append(files, p.Kernel), p.Initrds...)
	}
	seen := map[string]bool{"script.ipxe": true}
	var out []string
	for _, f := range files {
		n := baseName(f)
		if seen[n] {
			return nil, fmt.Errorf("boot: profile %q: two files named %q (kernel, initrds and image need distinct base names, other than script.ipxe)", p.Name, n)
		}
		seen[n] = true
		out = append(out, n)
	}
	if p.Image != "" {
		out = out[1:]
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// FileKind is what a file under MachineBase is to its profile.
type FileKind int

// File kinds.
const (
	FileKernel FileKind = iota
	FileInitrd
	FileImage
)

// ResolveFile maps a file name under MachineBase back to the path on the
// server for profile p and what it is.
func ResolveFile(p Profile, name string) (file string, kind FileKind, ok bool) {
	names, err := FileNames(p)
	if err != nil {
		return "", 0, false
	}
	if p.Image != "" && name == ImageName(p) {
		return p.Image, FileImage, true
	}
	files := append([]string{p.Kernel}, p.Initrds...)
	for i, n := range names {
		if n == name {
			if i == 0 {
				return files[i], FileKernel, true
			}
			return files[i], FileInitrd, true
		}
	}
	return "", 0, false
}

// Classes returns the classes that have a boot file, sorted.
func (c *Config) Classes() []string {
	var out []string
	for k, v := range c.BootFiles {
		if v != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
