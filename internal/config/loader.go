package config

import (
	"fmt"
	"net"
	"strings"

	"pxed/internal/boot"
)

// loaderHints say which Debian package has a loader's file and where it
// installs it, for messages about a file missing from boot_dir.
var loaderHints = map[string]string{
	"shimx64.efi":  "Debian shim-signed: /usr/lib/shim/shimx64.efi.signed",
	"grubx64.efi":  "Debian grub-efi-amd64-signed: /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed",
	"pxelinux.0":   "Debian pxelinux: /usr/lib/PXELINUX/pxelinux.0",
	"ldlinux.c32":  "Debian syslinux-common: /usr/lib/syslinux/modules/bios/ldlinux.c32",
	"syslinux.efi": "Debian syslinux-efi: /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi",
	"ldlinux.e64":  "Debian syslinux-efi: /usr/lib/syslinux/modules/efi64/ldlinux.e64",
}

// loaderCompanions are the files a loader's NBP loads next to itself.
var loaderCompanions = map[string][]string{
	"shimx64.efi":  {"grubx64.efi"},
	"shimaa64.efi": {"grubaa64.efi"},
	"pxelinux.0":   {"ldlinux.c32"},
	"syslinux.efi": {"ldlinux.e64"},
}

// validateLoaders checks each profile's loader and secure_boot.
func (c *Config) validateLoaders() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	names := []string{}
	for _, l := range boot.Loaders() {
		names = append(names, string(l))
	}
	for _, name := range sortedKeys(c.Profiles) {
		p := c.Profiles[name]
		f := "profiles." + name
		l := boot.Loader(p.Loader)
		switch {
		case p.Loader == "" || l == boot.LoaderIPXE:
			if p.SecureBoot {
				add(c.errorf(f+".secure_boot", "secure_boot needs `loader: grub` (shim loads the signed GRUB, which loads the signed kernel; iPXE is not signed for Secure Boot)"))
			}
			continue
		case l != boot.LoaderGRUB && l != boot.LoaderPXELINUX:
			add(c.errorf(f+".loader", "unknown loader %q: write one of %s", p.Loader, strings.Join(names, ", ")))
			continue
		}
		if p.SecureBoot && l != boot.LoaderGRUB {
			add(c.errorf(f+".secure_boot", "secure_boot needs `loader: grub` (shim loads the signed GRUB): remove it or write `loader: grub`"))
		}
		if p.Script != "" {
			add(c.errorf(f+".script", "script is an iPXE script: with `loader: %s` pxed generates the loader's configuration; remove script or the loader", l))
		}
		if p.Kernel == "" {
			add(c.errorf(f+".kernel", "`loader: %s` boots a kernel: write `kernel: /path/to/vmlinuz`", l))
			continue
		}
		// Render once for a sample machine: what the loader could not
		// read is a mistake now, not a failed boot later.
		mac, _ := net.ParseMAC("02:00:00:00:00:01")
		req := boot.ConfigRequest{Loader: l, MAC: mac}
		if _, err := boot.LoaderConfig(c.bootProfile(name), req, boot.MachineDir(mac)+"/pxelinux.cfg/default"); err != nil {
			add(c.errorf(f, "%v", strings.TrimPrefix(err.Error(), "boot: ")))
		}
	}
	return es
}

// LoaderWarnings are what pxed says at start about the loaders the
// profiles use: loader files missing from boot_dir (machines of that
// architecture would fail), and GRUB in the proxy role.
func (c *Config) LoaderWarnings() []string {
	var out []string
	grub := []string{}
	for _, name := range sortedKeys(c.Profiles) {
		p := c.bootProfile(name)
		l := boot.Of(p)
		if l == boot.LoaderIPXE {
			continue
		}
		if l == boot.LoaderGRUB {
			grub = append(grub, name)
		}
		for _, class := range boot.LoaderClasses(p) {
			nbp := boot.LoaderBootFile(p, class)
			for _, file := range append([]string{nbp}, loaderCompanions[nbp]...) {
				if _, err := c.FindBootFile(file); err != nil {
					hint := loaderHints[file]
					if hint != "" {
						hint = " (" + hint + ")"
					}
					out = append(out, fmt.Sprintf("profile %s: loader %s: %s is not in boot_dir%s: %s machines of this profile cannot boot",
						name, l, file, hint, class))
				}
			}
		}
	}
	if len(grub) > 0 && c.DHCP.Mode == ModeProxy {
		out = append(out, fmt.Sprintf("profiles %s use loader grub in the ProxyDHCP role: GRUB takes its TFTP server from the DHCP server's ACK (siaddr), not from pxed's proxy offer, so it asks the DHCP server for grub.cfg; run pxed as the DHCP server (--dhcp server) or make the DHCP server's next-server this host",
			strings.Join(grub, ", ")))
	}
	return out
}
