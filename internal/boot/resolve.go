package boot

import (
	"net"
	"path"
	"strings"
)

// PathKind is what a requested path is to pxed.
type PathKind int

// Path kinds.
const (
	PathBootDir   PathKind = iota // a file of the boot directories, by Resolved.Rel
	PathGenerated                 // a loader configuration pxed generates (Resolved.Config)
	PathProfile                   // the profile's kernel, an initrd or its image (Resolved.File)
)

// Resolved is what a path below the server root (a TFTP file name, or an
// HTTP path under /boot/) answers.
type Resolved struct {
	Kind PathKind
	// MAC is the machine the path names (its directory or its file
	// name); nil when it names none.
	MAC      net.HardwareAddr
	Profile  Profile       // MAC's profile, when PathGenerated or PathProfile
	Config   ConfigRequest // PathGenerated
	File     string        // PathProfile: the file on the server
	FileKind FileKind      // PathProfile
	// Rel is the name to look up in the boot directories (PathBootDir):
	// the path itself, or for a name in a machine's directory
	// (boot/<mac>/NAME) that is neither generated nor the profile's,
	// NAME: loaders ask for their own files (ldlinux.c32, grubx64.efi)
	// next to themselves, and those come from the boot directory.
	Rel string
	// Token is true when the path carried MAC's secret URL token
	// (boot/<mac>/<token>/…; secure.go): it was given to that machine.
	Token bool
}

// Resolve says what name (slash-separated, relative to the server root)
// is: a loader configuration for the machine the path names, when that
// machine's profile uses the loader; a file of the profile of the machine
// whose directory it is in; else a boot directory file. A path gets only
// what its MAC's profile has: no request reaches another machine's
// configuration or files without naming that machine.
func (c *Config) Resolve(name string) Resolved {
	name, tok := c.stripToken(name) // secure.go
	res := c.resolve(name)
	if tok != "" && res.MAC != nil && strings.HasPrefix(name, MachineDir(res.MAC)+"/") {
		res.Token = true
		res.Config.Token = tok
	}
	return res
}

func (c *Config) resolve(name string) Resolved {
	if req, ok := ParseConfigPath(name); ok {
		if req.Discover != 0 {
			// Whatever the machine's loader: the discovery comes first.
			if p, ok := c.ProfileFor(req.MAC); ok {
				return Resolved{Kind: PathGenerated, MAC: req.MAC, Profile: p, Config: req}
			}
			return Resolved{Kind: PathBootDir, MAC: req.MAC, Rel: path.Base(name)}
		}
		if req.MAC == nil && c.usesLoader(req.Loader) {
			return Resolved{Kind: PathGenerated, Config: req}
		}
		if req.MAC != nil {
			if p, ok := c.ProfileFor(req.MAC); ok && Of(p) == req.Loader {
				return Resolved{Kind: PathGenerated, MAC: req.MAC, Profile: p, Config: req}
			}
		}
	}
	rest, ok := strings.CutPrefix(name, "boot/")
	if !ok {
		return Resolved{Kind: PathBootDir, Rel: name}
	}
	dir, file, ok := strings.Cut(rest, "/")
	mac, err := net.ParseMAC(strings.ReplaceAll(dir, "-", ":"))
	if !ok || err != nil || file == "" {
		return Resolved{Kind: PathBootDir, Rel: name}
	}
	if p, ok := c.ProfileFor(mac); ok {
		if f, kind, ok := ResolveFile(p, file); ok {
			return Resolved{Kind: PathProfile, MAC: mac, Profile: p, File: f, FileKind: kind}
		}
	}
	return Resolved{Kind: PathBootDir, MAC: mac, Rel: file}
}

func (c *Config) usesLoader(l Loader) bool {
	for _, p := range c.Profiles {
		if Of(p) == l {
			return true
		}
	}
	return false
}
