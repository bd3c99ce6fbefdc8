package boot

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
)

// Loader is the program that loads a profile's kernel, initrds and command
// line after the firmware's NBP: iPXE (pxed's per-machine script), GRUB or
// PXELINUX (per-machine configuration files that pxed generates).
type Loader string

// Loaders. The zero value is LoaderIPXE.
const (
	LoaderIPXE     Loader = "ipxe"
	LoaderGRUB     Loader = "grub"
	LoaderPXELINUX Loader = "pxelinux"
)

// Loaders lists the loaders a profile may name.
func Loaders() []Loader { return []Loader{LoaderIPXE, LoaderGRUB, LoaderPXELINUX} }

// Of returns p's loader: LoaderIPXE when p names none.
func Of(p Profile) Loader {
	if p.Loader == "" {
		return LoaderIPXE
	}
	return p.Loader
}

// LoaderPlan is the loader part of a Plan: which loader the machine runs
// after its NBP and the names under which it will ask for the
// configuration pxed generates for it, in the order it asks.
type LoaderPlan struct {
	Loader  Loader
	Configs []string // paths as the loader requests them; none for iPXE
}

// loaderBootFiles are the NBPs of GRUB and PXELINUX per architecture
// class, by the names their Debian packages install (and shim expects:
// it loads grubx64.efi from the directory it was loaded from).
var loaderBootFiles = map[Loader]map[string]string{
	LoaderGRUB:     {"efi-x64": "grubx64.efi", "efi-arm64": "grubaa64.efi", "efi-ia32": "grubia32.efi"},
	LoaderPXELINUX: {"bios": "pxelinux.0", "efi-x64": "syslinux.efi"},
}

// shimBootFiles are the Microsoft-signed first-stage loaders (Debian
// shim-signed) that verify and load GRUB under UEFI Secure Boot.
var shimBootFiles = map[string]string{"efi-x64": "shimx64.efi", "efi-arm64": "shimaa64.efi", "efi-ia32": "shimia32.efi"}

// LoaderBootFile is the NBP a machine of class gets for profile p when p's
// loader is GRUB or PXELINUX: p.BootFiles[class] when set, else the
// loader's own (shim for GRUB when p.SecureBoot); "" when there is none.
func LoaderBootFile(p Profile, class string) string {
	if f := p.BootFiles[class]; f != "" {
		return f
	}
	if Of(p) == LoaderGRUB && p.SecureBoot {
		if f := shimBootFiles[class]; f != "" {
			return f
		}
	}
	return loaderBootFiles[Of(p)][class]
}

// LoaderClasses returns the classes p's loader has an NBP for, sorted.
func LoaderClasses(p Profile) []string {
	var out []string
	for _, c := range []string{"bios", "efi-ia32", "efi-x64", "efi-arm64"} {
		if LoaderBootFile(p, c) != "" {
			out = append(out, c)
		}
	}
	return out
}

// decideLoader is Decide for a profile whose loader is GRUB or PXELINUX.
// PXE ROMs load the loader's NBP over TFTP from the machine's directory
// (boot/aa-bb-cc-dd-ee-ff/), so that the loader, which looks for its files
// next to itself, asks there: pxed answers that directory with the
// machine's generated configuration, kernel and initrds, and any other
// name from the boot directory. iPXE gets its script, which chains the
// loader over HTTP from the same directory.
func decideLoader(p Profile, m Machine, s Server) Plan {
	lp := LoaderPlan{Loader: Of(p), Configs: ConfigNames(Of(p), m, LoaderBootFile(p, m.Class))}
	if m.Firmware == FirmwareIPXE {
		if len(LoaderClasses(p)) == 0 {
			return Plan{Profile: p.Name, Loader: lp, Reason: fmt.Sprintf("profile %q: loader %s has no boot file for any architecture", p.Name, Of(p))}
		}
		return Plan{Action: ServeScript, BootFile: ScriptURL(s, m.MAC), VendorClass: "PXEClient", Profile: p.Name, Loader: lp,
			Reason: fmt.Sprintf("iPXE: per-machine script chains %s", Of(p))}
	}
	file := LoaderBootFile(p, m.Class)
	if m.Class == "" || file == "" {
		arch := "none"
		if m.HasArch {
			arch = fmt.Sprint(m.Arch)
		}
		return Plan{Profile: p.Name, Loader: lp, Reason: fmt.Sprintf("loader %s has no boot file for architecture %s (option 93 %s): set boot_files.%s in profile %q",
			Of(p), classOr(m.Class), arch, classOr(m.Class), p.Name)}
	}
	what := string(Of(p))
	if file == shimBootFiles[m.Class] {
		what = "shim (Secure Boot) then grub"
	}
	if m.Firmware == FirmwareHTTP {
		return Plan{Action: ServeURL, BootFile: MachineBase(s, m.MAC) + "/" + file, VendorClass: "HTTPClient", Profile: p.Name, Loader: lp,
			Reason: "UEFI HTTP boot: " + what + " over HTTP"}
	}
	return Plan{Action: ServeNBP, BootFile: MachineDir(m.MAC) + "/" + file, VendorClass: "PXEClient", Profile: p.Name, Loader: lp,
		Reason: fmt.Sprintf("%s PXE: %s over TFTP", m.Class, what)}
}

// MachineDir is the directory of one machine's files, relative to the
// server's root over TFTP and HTTP: boot/aa-bb-cc-dd-ee-ff.
func MachineDir(mac net.HardwareAddr) string {
	return "boot/" + strings.ReplaceAll(Normalize(mac), ":", "-")
}

// hwName is a MAC as PXELINUX and GRUB put it in a file name: ARP
// hardware type 1 (Ethernet) and the bytes in lower-case hex, dashed.
func hwName(mac net.HardwareAddr) string {
	return "01-" + strings.ReplaceAll(Normalize(mac), ":", "-")
}

// ConfigNames are the paths loader asks for its configuration, in order,
// when loaded from nbp (a path relative to the server root): first by
// UUID, then by MAC, then by the client's IPv4 address in hex (shortened
// one digit at a time; not listed here: pxed answers by MAC), then a
// default. PXELINUX looks in pxelinux.cfg/ next to itself (syslinux
// doc/pxelinux.txt). GRUB, as built upstream, looks under its prefix
// (grub.cfg-<uuid>, grub.cfg-01-<mac>, grub.cfg-<hex IP>…, grub.cfg:
// normal/main.c); Debian's signed grubnetx64 has its prefix built in
// (/grub) and sources $prefix/grub.cfg only, which pxed answers with a
// script that loads grub.cfg-01-<mac>.
func ConfigNames(l Loader, m Machine, nbp string) []string {
	dir := path.Dir(nbp)
	if dir == "." {
		dir = ""
	} else {
		dir += "/"
	}
	var out []string
	switch l {
	case LoaderPXELINUX:
		if m.UUID != "" {
			out = append(out, dir+"pxelinux.cfg/"+FormatUUID(m.UUID))
		}
		out = append(out, dir+"pxelinux.cfg/"+hwName(m.MAC), dir+"pxelinux.cfg/default")
	case LoaderGRUB:
		out = append(out, "grub/grub.cfg", "grub/grub.cfg-"+hwName(m.MAC))
	}
	return out
}

// FormatUUID writes option 97's 16 bytes (hex, as Machine.UUID holds them)
// the way PXELINUX names a file after them: 8-4-4-4-12 lower-case hex.
func FormatUUID(hex string) string {
	if len(hex) != 32 {
		return strings.ToLower(hex)
	}
	h := strings.ToLower(hex)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ConfigRequest is what a requested path is to the loaders: a
// configuration pxed generates, and for which machine.
type ConfigRequest struct {
	Loader Loader
	// MAC is the machine the path names (in its name or its directory);
	// nil for GRUB's grub.cfg outside a machine directory, which is the
	// same dispatching script for every machine.
	MAC net.HardwareAddr
	// Token is MAC's secret URL token when the path carried it: the
	// generated configuration names the machine's files under it.
	Token string
	// Discover is the boot server type of boot/<mac>/pxebs-<type>.ipxe,
	// the iPXE script that asks that type's boot servers for the
	// machine's boot (DiscoveryScript); 0 for a loader configuration.
	Discover uint16
}

// ParseConfigPath says whether name (a TFTP file name or an HTTP path,
// relative to the server root, slashes, no leading slash) is a loader
// configuration pxed generates:
//
//	…/pxelinux.cfg/01-aa-bb-cc-dd-ee-ff  PXELINUX, by MAC, in any directory
//	boot/<mac>/pxelinux.cfg/default      PXELINUX, in the machine's directory
//	…/grub.cfg-01-aa-bb-cc-dd-ee-ff      GRUB, by MAC, in any directory
//	boot/<mac>/grub.cfg                  GRUB, in the machine's directory
//	…/grub.cfg                           GRUB elsewhere: the dispatcher
//	boot/<mac>/pxebs-<type>.ipxe         iPXE: boot server discovery (DiscoveryScript)
//
// UUID and hex-IP names are not (the machine is known by its MAC): the
// loaders then try the next name. A name that names two different
// machines (a MAC file in another machine's directory) is not either.
func ParseConfigPath(name string) (ConfigRequest, bool) {
	var dirMAC net.HardwareAddr
	if rest, ok := strings.CutPrefix(name, "boot/"); ok {
		if d, _, ok := strings.Cut(rest, "/"); ok {
			dirMAC, _ = net.ParseMAC(strings.ReplaceAll(d, "-", ":"))
		}
	}
	base := path.Base(name)
	parent := path.Base(path.Dir(name))
	byMAC := func(l Loader, s string) (ConfigRequest, bool) {
		hw, ok := strings.CutPrefix(s, "01-")
		if !ok || len(hw) != 17 {
			return ConfigRequest{}, false
		}
		mac, err := net.ParseMAC(strings.ReplaceAll(hw, "-", ":"))
		if err != nil || strings.Contains(hw, ":") || (dirMAC != nil && Normalize(mac) != Normalize(dirMAC)) {
			return ConfigRequest{}, false
		}
		return ConfigRequest{Loader: l, MAC: mac}, true
	}
	switch {
	case parent == "pxelinux.cfg" && base == "default":
		if dirMAC != nil && path.Dir(path.Dir(name)) == "boot/"+hwDir(dirMAC) {
			return ConfigRequest{Loader: LoaderPXELINUX, MAC: dirMAC}, true
		}
	case parent == "pxelinux.cfg":
		return byMAC(LoaderPXELINUX, base)
	case base == "grub.cfg":
		if dirMAC != nil && path.Dir(name) == "boot/"+hwDir(dirMAC) {
			return ConfigRequest{Loader: LoaderGRUB, MAC: dirMAC}, true
		}
		if dirMAC == nil {
			return ConfigRequest{Loader: LoaderGRUB}, true
		}
	case strings.HasPrefix(base, "grub.cfg-"):
		return byMAC(LoaderGRUB, strings.TrimPrefix(base, "grub.cfg-"))
	case strings.HasPrefix(base, "pxebs-") && strings.HasSuffix(base, ".ipxe"):
		n := strings.TrimSuffix(strings.TrimPrefix(base, "pxebs-"), ".ipxe")
		t, err := strconv.ParseUint(n, 10, 16)
		if dirMAC != nil && path.Dir(name) == "boot/"+hwDir(dirMAC) && err == nil && t != 0 && strconv.FormatUint(t, 10) == n {
			return ConfigRequest{Loader: LoaderIPXE, MAC: dirMAC, Discover: uint16(t)}, true
		}
	}
	return ConfigRequest{}, false
}

func hwDir(mac net.HardwareAddr) string { return strings.ReplaceAll(Normalize(mac), ":", "-") }

// ipxeClassTests are the iPXE conditions under which a machine is of an
// architecture class (iPXE's ${platform} and ${buildarch} settings).
var ipxeClassTests = []struct{ class, test string }{
	{"bios", "iseq ${platform} pcbios"},
	{"efi-ia32", "iseq ${platform} efi && iseq ${buildarch} i386"},
	{"efi-x64", "iseq ${platform} efi && iseq ${buildarch} x86_64"},
	{"efi-arm64", "iseq ${platform} efi && iseq ${buildarch} arm64"},
}

// chainLoaderScript is the iPXE script of a profile whose loader is GRUB
// or PXELINUX: chain the loader's NBP for the machine's class from the
// machine's directory (base), where the loader then finds its generated
// configuration and, falling back to the boot directory, its own files.
func chainLoaderScript(p Profile, base string, mac net.HardwareAddr) string {
	var sb strings.Builder
	sb.WriteString("#!ipxe\n")
	fmt.Fprintf(&sb, "echo pxed: %s boots profile %s with %s\n", Normalize(mac), p.Name, Of(p))
	for _, c := range ipxeClassTests {
		if f := LoaderBootFile(p, c.class); f != "" {
			fmt.Fprintf(&sb, "%s && chain %s/%s ||\n", c.test, base, f)
		}
	}
	fmt.Fprintf(&sb, "echo pxed: loader %s has no boot file for ${platform} ${buildarch} or it failed, retrying in 10 seconds\nsleep 10\nreboot\n", Of(p))
	return sb.String()
}
