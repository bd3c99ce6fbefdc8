package boot

import (
	"fmt"
	"net"
	"path"
	"strings"
)

// LoaderConfig renders the configuration that request name (see
// ParseConfigPath) gets: for GRUB, the dispatcher when the path names no
// machine, else the config of profile p for the machine it names; for
// PXELINUX the config of p; for a boot server discovery script
// (req.Discover), DiscoveryScript. p must be the profile of req.MAC and
// use req.Loader (but for the discovery script).
func LoaderConfig(p Profile, req ConfigRequest, name string) (string, error) {
	if req.Discover != 0 {
		return DiscoveryScript(req.MAC, req.Discover), nil
	}
	if req.Loader == LoaderGRUB && req.MAC == nil {
		return GRUBDispatcher(), nil
	}
	if Of(p) != req.Loader {
		return "", fmt.Errorf("boot: profile %q boots with loader %s, not %s", p.Name, Of(p), req.Loader)
	}
	switch req.Loader {
	case LoaderGRUB:
		return grubConfig(p, req.MAC, req.Token)
	case LoaderPXELINUX:
		// PXELINUX resolves names against the directory it was
		// loaded from (pxelinux.cfg/'s parent); under the machine's
		// URL token that is the machine's directory too.
		dir := path.Dir(path.Dir(name))
		if req.Token != "" && dir == MachineDir(req.MAC)+"/"+req.Token {
			dir = MachineDir(req.MAC)
		}
		return PXELINUXConfig(p, req.MAC, dir)
	}
	return "", fmt.Errorf("boot: loader %s has no generated configuration", req.Loader)
}

// GRUBDispatcher is what GRUB gets for grub.cfg outside a machine's
// directory: the same few lines for every machine, which load the
// machine's own grub.cfg-01-<mac> from the same prefix. GRUB's
// $net_default_mac is colon-separated; regexp splits it into the dashed
// form of the file name that upstream GRUB itself searches.
func GRUBDispatcher() string {
	return `# pxed: the configuration of each machine is grub.cfg-01-<mac> next to this file.
regexp --set=1:m1 --set=2:m2 --set=3:m3 --set=4:m4 --set=5:m5 --set=6:m6 '^([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f]):([0-9a-f][0-9a-f])$' "$net_default_mac"
configfile "$prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6"
echo "pxed: no GRUB configuration for $net_default_mac"
sleep 10
`
}

// GRUBConfig is the GRUB configuration of profile p for mac: the kernel
// and initrds by their paths in the machine's directory on GRUB's root
// (the TFTP server it was loaded from), the command line quoted word by
// word so that GRUB expands nothing in it.
func GRUBConfig(p Profile, mac net.HardwareAddr) (string, error) { return grubConfig(p, mac, "") }

// grubConfig is GRUBConfig naming the files under the machine's secret
// URL token when token is set (the configuration was asked for there).
func grubConfig(p Profile, mac net.HardwareAddr, token string) (string, error) {
	names, args, err := loaderFiles(p)
	if err != nil {
		return "", err
	}
	dir := "/" + MachineDir(mac) + "/"
	if token != "" {
		dir += token + "/"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# pxed: %s boots profile %s\n", Normalize(mac), p.Name)
	sb.WriteString("set timeout=0\n")
	fmt.Fprintf(&sb, "echo %s\n", grubQuote(fmt.Sprintf("pxed: %s boots profile %s", Normalize(mac), p.Name)))
	sb.WriteString("linux " + grubQuote(dir+names[0]))
	for _, a := range args {
		sb.WriteString(" " + grubQuote(a))
	}
	sb.WriteString("\n")
	if len(names) > 1 {
		sb.WriteString("initrd")
		for _, n := range names[1:] {
			sb.WriteString(" " + grubQuote(dir+n))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("boot\n")
	return sb.String(), nil
}

// PXELINUXConfig is the PXELINUX configuration of profile p for mac,
// requested from directory dir (where pxelinux.0 came from). From the
// machine's own directory the files are named as they are there; from
// anywhere else by their root path on the TFTP server ("::boot/…").
func PXELINUXConfig(p Profile, mac net.HardwareAddr, dir string) (string, error) {
	names, args, err := loaderFiles(p)
	if err != nil {
		return "", err
	}
	prefix := ""
	if dir != MachineDir(mac) {
		prefix = "::" + MachineDir(mac) + "/"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "# pxed: %s boots profile %s\n", Normalize(mac), p.Name)
	sb.WriteString("DEFAULT pxed\nPROMPT 0\nTIMEOUT 0\n")
	fmt.Fprintf(&sb, "SAY pxed: %s boots profile %s\n", Normalize(mac), p.Name)
	sb.WriteString("LABEL pxed\n")
	sb.WriteString("  KERNEL " + prefix + names[0] + "\n")
	if len(names) > 1 {
		var rd []string
		for _, n := range names[1:] {
			rd = append(rd, prefix+n)
		}
		sb.WriteString("  INITRD " + strings.Join(rd, ",") + "\n")
	}
	if len(args) > 0 {
		sb.WriteString("  APPEND " + p.Cmdline + "\n")
	}
	return sb.String(), nil
}

// loaderFiles returns the names of p's kernel and initrds in the machine
// directory and its command line split into kernel parameters.
func loaderFiles(p Profile) (names, args []string, err error) {
	if p.Kernel == "" {
		return nil, nil, fmt.Errorf("boot: profile %q: loader %s needs a kernel", p.Name, Of(p))
	}
	if strings.ContainsAny(p.Cmdline, "\r\n\x00") {
		return nil, nil, fmt.Errorf("boot: profile %q: the command line may not contain line breaks or NUL", p.Name)
	}
	names, err = FileNames(p)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range names {
		if strings.ContainsAny(n, ", \t") {
			return nil, nil, fmt.Errorf("boot: profile %q: file name %q has a comma or a space, which loader %s cannot name", p.Name, n, Of(p))
		}
	}
	return names, KernelArgs(p.Cmdline), nil
}

// KernelArgs splits a kernel command line into parameters the way the
// kernel does (lib/cmdline.c next_arg): at blanks outside double quotes,
// the quotes removed.
func KernelArgs(cmdline string) []string {
	var out []string
	var cur strings.Builder
	in, started := false, false
	for _, r := range cmdline {
		switch {
		case r == '"':
			in, started = !in, true
		case (r == ' ' || r == '\t') && !in:
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}

// grubQuote quotes s as one GRUB script word in which nothing is expanded
// (single quotes; each single quote of s closes the word, is escaped
// with a backslash and opens it again).
func grubQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// DiscoveryURL is the URL of mac's DiscoveryScript for boot server type typ.
func DiscoveryURL(s Server, mac net.HardwareAddr, typ uint16) string {
	return fmt.Sprintf("%s/pxebs-%d.ipxe", MachineBase(s, mac), typ)
}

// DiscoveryScript is the iPXE script that asks the boot servers of type
// typ for mac's boot and boots what the first that answers hands out
// (discoverOthers). iPXE's pxebs command (net/udp/dhcp.c start_pxebs)
// takes the boot servers of the type from the DHCP answer's sub-option 8
// and the methods from its discovery control, asks each listed server in
// turn by unicast to port 4011 with sub-option 71, moving on after 3 s
// without an answer (dhcp_pxebs_expired), and keeps the first ACK for the
// type as the settings "pxebs". It reads the type as a little-endian
// number (cpu_to_le16 into the wire's big-endian field; its menu code
// byte-swaps the same way, pxe_menu_parse), so the script gives the type
// byte-swapped. pxed boot servers answer iPXE with a script URL.
func DiscoveryScript(mac net.HardwareAddr, typ uint16) string {
	swapped := typ<<8 | typ>>8
	return fmt.Sprintf(`#!ipxe
echo pxed: %[1]s: asking the boot servers of menu item type %[2]d
pxebs netX %[3]d || goto failed
echo pxed: boot server ${pxebs/next-server} answered: ${pxebs/filename}
chain ${pxebs/filename} || goto failed
:failed
echo pxed: no boot server of type %[2]d answered, or its file did not boot: retrying in 30 seconds
sleep 30
reboot
`, Normalize(mac), typ, swapped)
}
