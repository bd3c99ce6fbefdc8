package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"pxed/internal/boot"
	"pxed/internal/pxe"
)

// Profile is one boot profile (see boot.Profile).
type Profile struct {
	Kernel    string            `yaml:"kernel"`
	Initrds   []string          `yaml:"initrds"`
	Cmdline   string            `yaml:"cmdline"`
	Script    string            `yaml:"script"`
	BootFiles map[string]string `yaml:"boot_files"`
	// Image is a bootable ISO (.iso) or disk image (.img) that UEFI HTTP
	// Boot clients boot as a RAM disk (and iPXE sanboots when the profile
	// has no kernel and no script).
	Image string `yaml:"image"`
	// Loader is what loads the kernel after the NBP: ipxe (default),
	// grub or pxelinux (loader.go).
	Loader string `yaml:"loader"`
	// SecureBoot, with loader grub, hands UEFI machines the signed shim.
	SecureBoot bool `yaml:"secure_boot"`
	// Multicast serves the profile's boot files by multicast TFTP
	// (tftp_multicast must be on; see mtftp.go).
	Multicast bool `yaml:"multicast"`
	// Menu is the PXE boot menu of the profile's machines (menu.go).
	Menu *Menu `yaml:"menu"`
}

// DefaultBootFiles are the NBPs of Debian's ipxe package per class.
var DefaultBootFiles = map[string]string{
	string(pxe.ClassBIOS):   "undionly.kpxe",
	string(pxe.ClassEFIX64): "snponly.efi",
}

// FindBootFile returns where an NBP name is served from: the boot directory
// first, then the iPXE directory.
func (c *Config) FindBootFile(name string) (string, error) {
	var tried []string
	for _, dir := range c.FileDirs() {
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, "/")))
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("boot file %q not found (looked at %s): install Debian package ipxe, set ipxe_dir/--ipxe-dir, or put the file in boot_dir", name, strings.Join(tried, ", "))
}

// FileDirs are the directories served over TFTP and under HTTP /files/, in
// the order a name is looked up: the boot directory, then the iPXE directory
// (so the default NBPs need no copying).
func (c *Config) FileDirs() []string {
	var dirs []string
	for _, d := range []string{c.BootDir, c.IPXEDir} {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func validClass(c string) bool {
	for _, n := range classNames() {
		if n == c {
			return true
		}
	}
	return false
}

func classNames() []string {
	return []string{string(pxe.ClassBIOS), string(pxe.ClassEFIIA32), string(pxe.ClassEFIX64), string(pxe.ClassEFIARM32), string(pxe.ClassEFIARM64), string(pxe.ClassEFIRISCV)}
}

func (c *Config) bootProfile(name string) boot.Profile {
	p := c.Profiles[name]
	return boot.Profile{Name: name, Kernel: p.Kernel, Initrds: p.Initrds, Cmdline: p.Cmdline, Script: p.Script, BootFiles: p.BootFiles, Image: p.Image,
		Loader: boot.Loader(p.Loader), SecureBoot: p.SecureBoot}
}

// Boot returns the boot decision's configuration.
func (c *Config) Boot() *boot.Config {
	bc := &boot.Config{BootFiles: map[string]string{}, Profiles: map[string]boot.Profile{}, Default: c.Default, Machines: map[string]string{}}
	for k, v := range c.BootFiles {
		bc.BootFiles[k] = v
	}
	for name := range c.Profiles {
		bc.Profiles[name] = c.bootProfile(name)
	}
	bc.Menus = c.bootMenus() // menu.go
	bc.Selectors = c.bootSelectors()
	bc.Unknown = boot.UnknownPolicy(c.UnknownMachines)
	for mac, p := range c.Machines {
		if hw, err := net.ParseMAC(mac); err == nil {
			bc.Machines[boot.Normalize(hw)] = p
		}
	}
	return bc
}

// validateBootFiles checks boot_dir and that every class's boot file exists.
func (c *Config) validateBootFiles() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	if c.BootDir != "" {
		if st, err := os.Stat(c.BootDir); err != nil || !st.IsDir() {
			add(c.errorf("boot_dir", "%q is not a directory: create it or point boot_dir at the folder of boot files", c.BootDir))
		}
	}
	for _, class := range sortedKeys(c.BootFiles) {
		name := c.BootFiles[class]
		if !validClass(class) {
			add(c.errorf("boot_files."+class, "unknown architecture class %q: write one of %s", class, strings.Join(classNames(), ", ")))
			continue
		}
		if name == "" || len(c.Profiles) == 0 {
			continue // no profile: no firmware is answered, no NBP is needed yet
		}
		if _, err := c.FindBootFile(name); err != nil {
			add(c.errorf("boot_files."+class, "%v", err))
		}
	}
	return es
}

// validateProfiles checks the profiles, default_profile and machines.
func (c *Config) validateProfiles() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	// No profile at all is fine: pxed serves files and answers no
	// firmware until profiles exist (the API may add them).
	for _, name := range sortedKeys(c.Profiles) {
		p := c.Profiles[name]
		f := "profiles." + name
		if p.Kernel == "" && p.Script == "" && p.Image == "" {
			add(c.errorf(f, "profile has neither kernel, script nor image: write `kernel: /path/to/vmlinuz`"))
		}
		if p.Image != "" {
			if st, err := os.Stat(p.Image); err != nil || !st.Mode().IsRegular() {
				add(c.errorf(f+".image", "file %q does not exist or is not a regular file: write the path of an existing ISO or disk image", p.Image))
			} else if e := strings.ToLower(filepath.Ext(p.Image)); e != ".iso" && e != ".img" {
				// UEFI 2.10 §24.7.2: the type tells the firmware whether
				// it boots a CD or a disk image.
				add(c.errorf(f+".image", "%q: name the image NAME.iso (a CD/DVD image) or NAME.img (a disk image): UEFI HTTP Boot needs to know which it boots", p.Image))
			}
		}
		for i, file := range append([]string{p.Kernel}, p.Initrds...) {
			if file == "" {
				continue
			}
			field := f + ".kernel"
			if i > 0 {
				field = fmt.Sprintf("%s.initrds[%d]", f, i-1)
			}
			if st, err := os.Stat(file); err != nil || st.IsDir() {
				add(c.errorf(field, "file %q does not exist or is not a file: write the path of an existing file", file))
			}
		}
		if _, err := boot.FileNames(c.bootProfile(name)); err != nil {
			add(c.errorf(f, "%v", err))
		}
		for class, nbp := range p.BootFiles {
			if !validClass(class) {
				add(c.errorf(f+".boot_files."+class, "unknown architecture class %q: write one of %s", class, strings.Join(classNames(), ", ")))
			} else if _, err := c.FindBootFile(nbp); err != nil {
				add(c.errorf(f+".boot_files."+class, "%v", err))
			}
		}
	}
	if c.Default != "" {
		if _, ok := c.Profiles[c.Default]; !ok {
			add(c.errorf("default_profile", "profile %q is not defined under profiles:", c.Default))
		}
	}
	for _, mac := range sortedKeys(c.Machines) {
		if _, err := net.ParseMAC(mac); err != nil {
			add(c.errorf("machines."+mac, "%q is not a MAC address: write aa:bb:cc:dd:ee:ff", mac))
		}
		if _, ok := c.Profiles[c.Machines[mac]]; !ok {
			add(c.errorf("machines."+mac, "profile %q is not defined under profiles:", c.Machines[mac]))
		}
	}
	return es
}
