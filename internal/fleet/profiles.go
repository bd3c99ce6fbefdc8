package fleet

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"pxed/internal/boot"
	"pxed/internal/pxe"
)

// Profile is a runtime profile, as `PUT /api/profiles/{name}` takes it:
// the configuration file's profile keys, JSON-encoded. Its files are
// named relative to the boot directory.
type Profile struct {
	Name       string            `json:"name,omitempty"`
	Kernel     string            `json:"kernel,omitempty"`
	Initrds    []string          `json:"initrds,omitempty"`
	Cmdline    string            `json:"cmdline,omitempty"`
	Script     string            `json:"script,omitempty"`
	BootFiles  map[string]string `json:"boot_files,omitempty"`
	Image      string            `json:"image,omitempty"`
	Loader     string            `json:"loader,omitempty"`
	SecureBoot bool              `json:"secure_boot,omitempty"`
}

// ProfileView is a profile as GET /api/profiles shows it.
type ProfileView struct {
	Name   string `json:"name"`
	Source string `json:"source"` // config (the file) or runtime (the API; overlays the file's)
	// Profile is the runtime profile as stored; for a profile of the
	// file, its boot decision form.
	Profile any `json:"profile"`
}

var profileName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// boot is the profile for the decision: files inside dir.
func (p Profile) boot(dir string) boot.Profile {
	in := func(n string) string {
		if n == "" {
			return ""
		}
		return filepath.Join(dir, filepath.FromSlash(n))
	}
	b := boot.Profile{Name: p.Name, Kernel: in(p.Kernel), Cmdline: p.Cmdline, Script: p.Script, Image: in(p.Image),
		Loader: boot.Loader(p.Loader), SecureBoot: p.SecureBoot, BootFiles: p.BootFiles}
	for _, i := range p.Initrds {
		b.Initrds = append(b.Initrds, in(i))
	}
	return b
}

// localFile checks a file name of a runtime profile: relative, inside the
// boot directory (no "..", no absolute path, no symlink out of it), an
// existing regular file.
func localFile(dir, field, name string) error {
	if name == "" {
		return nil
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) || strings.ContainsRune(name, '\\') {
		return fmt.Errorf("%s %q: name a file inside the boot directory with a relative path (no \"..\", no leading /): %w", field, name, ErrInvalid)
	}
	if dir == "" {
		return fmt.Errorf("%s %q: no boot directory is configured (boot_dir / --boot-dir): %w", field, name, ErrInvalid)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("%s: boot directory: %v: %w", field, err, ErrInvalid)
	}
	defer root.Close()
	st, err := root.Stat(filepath.FromSlash(name))
	if err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s %q: not a regular file inside the boot directory: %w", field, name, ErrInvalid)
	}
	return nil
}

// validate checks a runtime profile.
func (p Profile) validate(dir string) error {
	if !profileName.MatchString(p.Name) || p.Name == boot.LocalProfile || p.Name == boot.ThenDefault {
		return fmt.Errorf("profile name %q: 1–64 letters, digits, '.', '_', '-' (not local or default): %w", p.Name, ErrInvalid)
	}
	if p.Kernel == "" && p.Script == "" && p.Image == "" {
		return fmt.Errorf("profile %s has neither kernel, script nor image: %w", p.Name, ErrInvalid)
	}
	if err := localFile(dir, "kernel", p.Kernel); err != nil {
		return err
	}
	for i, n := range p.Initrds {
		if n == "" {
			return fmt.Errorf("initrds[%d] is empty: %w", i, ErrInvalid)
		}
		if err := localFile(dir, fmt.Sprintf("initrds[%d]", i), n); err != nil {
			return err
		}
	}
	if err := localFile(dir, "image", p.Image); err != nil {
		return err
	}
	if p.Image != "" {
		if e := strings.ToLower(filepath.Ext(p.Image)); e != ".iso" && e != ".img" {
			return fmt.Errorf("image %q: name it NAME.iso or NAME.img: %w", p.Image, ErrInvalid)
		}
	}
	for class, nbp := range p.BootFiles {
		if !knownClass(class) {
			return fmt.Errorf("boot_files: unknown architecture class %q: %w", class, ErrInvalid)
		}
		if !filepath.IsLocal(filepath.FromSlash(nbp)) {
			return fmt.Errorf("boot_files.%s %q: a file name of the boot directory (relative, no \"..\"): %w", class, nbp, ErrInvalid)
		}
	}
	switch p.Loader {
	case "", string(boot.LoaderIPXE), string(boot.LoaderGRUB), string(boot.LoaderPXELINUX):
	default:
		return fmt.Errorf("loader %q: write ipxe, grub or pxelinux: %w", p.Loader, ErrInvalid)
	}
	if strings.ContainsAny(p.Cmdline, "\r\n\x00") {
		return fmt.Errorf("cmdline: one line, no control characters: %w", ErrInvalid)
	}
	for field, t := range map[string]string{"cmdline": p.Cmdline, "script": p.Script} {
		if err := boot.CheckTemplate(t); err != nil {
			return fmt.Errorf("%s: %v: %w", field, err, ErrInvalid)
		}
	}
	if _, err := boot.FileNames(p.boot(dir)); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return nil
}

func knownClass(c string) bool {
	for _, k := range []pxe.Class{pxe.ClassBIOS, pxe.ClassEFIIA32, pxe.ClassEFIX64, pxe.ClassEFIARM32, pxe.ClassEFIARM64, pxe.ClassEFIRISCV} {
		if string(k) == c {
			return true
		}
	}
	return false
}

// Profiles lists the profiles: the file's and the runtime ones (a runtime
// profile overlays the file's of its name), sorted by name.
func (f *Fleet) Profiles() []ProfileView {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []ProfileView
	for name, p := range f.base.Profiles {
		if _, over := f.profiles[name]; !over {
			out = append(out, ProfileView{Name: name, Source: "config", Profile: p})
		}
	}
	for name, p := range f.profiles {
		out = append(out, ProfileView{Name: name, Source: "runtime", Profile: p})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Profile returns one profile.
func (f *Fleet) Profile(name string) (ProfileView, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if p, ok := f.profiles[name]; ok {
		return ProfileView{Name: name, Source: "runtime", Profile: p}, nil
	}
	if p, ok := f.base.Profiles[name]; ok {
		return ProfileView{Name: name, Source: "config", Profile: p}, nil
	}
	return ProfileView{}, fmt.Errorf("profile %q: %w", name, ErrNotFound)
}

// PutProfile creates or replaces a runtime profile; it is stored before
// the decision sees it.
func (f *Fleet) PutProfile(p Profile) (ProfileView, error) {
	if err := p.validate(f.BootDir); err != nil {
		return ProfileView{}, err
	}
	if f.Store != nil {
		if err := f.Store.SaveProfile(ctxBG(), p); err != nil {
			return ProfileView{}, fmt.Errorf("save profile %s: %w", p.Name, err)
		}
	}
	f.mu.Lock()
	f.profGen++
	f.profiles[p.Name] = p
	f.rebuildLocked()
	f.mu.Unlock()
	return ProfileView{Name: p.Name, Source: "runtime", Profile: p}, nil
}

// DeleteProfile removes a runtime profile; the file's are removed by
// editing the file. A profile machines are assigned is refused.
func (f *Fleet) DeleteProfile(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.profiles[name]; !ok {
		if _, inFile := f.base.Profiles[name]; inFile {
			return fmt.Errorf("profile %q comes from the configuration file: edit the file and reload: %w", name, ErrConflict)
		}
		return fmt.Errorf("profile %q: %w", name, ErrNotFound)
	}
	if _, inFile := f.base.Profiles[name]; !inFile {
		for _, m := range f.machines {
			if m.Profile == name || (m.BootOnce != nil && (m.BootOnce.Profile == name || m.BootOnce.Then == name)) {
				return fmt.Errorf("profile %q is assigned to %s: assign it another first: %w", name, m.MAC, ErrConflict)
			}
		}
	}
	if f.Store != nil {
		if err := f.Store.DeleteProfile(ctxBG(), name); err != nil {
			return fmt.Errorf("delete profile %s: %w", name, err)
		}
	}
	f.profGen++
	delete(f.profiles, name)
	f.rebuildLocked()
	return nil
}

// Key normalises a MAC from a URL or a command line: aa:bb:…, aa-bb-….
func Key(s string) (string, error) {
	hw, err := ParseMAC(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a MAC address (write aa:bb:cc:dd:ee:ff or aa-bb-cc-dd-ee-ff): %w", s, ErrInvalid)
	}
	return boot.Normalize(hw), nil
}

// ParseMAC parses an Ethernet MAC written with colons or dashes.
func ParseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err == nil && len(hw) != 6 {
		return nil, fmt.Errorf("not an Ethernet MAC")
	}
	return hw, err
}
