package config

import (
	"fmt"
	"net"
	"strings"

	"pxed/internal/boot"
)

// Selector picks a profile for machines without one (matchbox-style): a
// machine matches when it matches every criterion the selector sets. The
// first selector that matches wins.
type Selector struct {
	Profile   string            `yaml:"profile"`
	Labels    map[string]string `yaml:"labels"`
	Arch      string            `yaml:"arch"`       // architecture class: bios, efi-x64, …
	MACPrefix string            `yaml:"mac_prefix"` // e.g. 52:54:00
	UUID      string            `yaml:"uuid"`       // SMBIOS UUID, canonical form
}

// Unknown machine policies (unknown_machines:).
const (
	UnknownBoot   = string(boot.UnknownBoot)
	UnknownHold   = string(boot.UnknownHold)
	UnknownIgnore = string(boot.UnknownIgnore)
)

// bootSelectors converts the selectors for the boot decision.
func (c *Config) bootSelectors() []boot.Selector {
	var out []boot.Selector
	for _, s := range c.Selectors {
		out = append(out, boot.Selector{Profile: s.Profile, Labels: s.Labels, Class: s.Arch,
			MACPrefix: strings.ToLower(s.MACPrefix), UUID: strings.ToLower(s.UUID)})
	}
	return out
}

// validateFleet checks unknown_machines, the selectors and the profiles'
// templates.
func (c *Config) validateFleet() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	switch c.UnknownMachines {
	case "", UnknownBoot, UnknownHold, UnknownIgnore:
	default:
		add(c.errorf("unknown_machines", "%q: write boot (boot every machine), hold (wait for approval) or ignore (answer only known machines)", c.UnknownMachines))
	}
	for i, s := range c.Selectors {
		f := fmt.Sprintf("selectors[%d]", i)
		if _, ok := c.Profiles[s.Profile]; !ok && s.Profile != boot.LocalProfile {
			add(c.errorf(f+".profile", "profile %q is not defined under profiles: (or write local)", s.Profile))
		}
		if s.Arch != "" && !validClass(s.Arch) {
			add(c.errorf(f+".arch", "unknown architecture class %q: write one of %s", s.Arch, strings.Join(classNames(), ", ")))
		}
		if s.MACPrefix != "" {
			if _, err := net.ParseMAC(strings.TrimSuffix(s.MACPrefix, ":") + strings.Repeat(":00", 6-len(strings.Split(strings.TrimSuffix(s.MACPrefix, ":"), ":")))); err != nil {
				add(c.errorf(f+".mac_prefix", "%q is not a MAC prefix: write whole bytes, e.g. 52:54:00", s.MACPrefix))
			}
		}
	}
	for _, name := range sortedKeys(c.Profiles) {
		p := c.Profiles[name]
		if err := boot.CheckTemplate(p.Cmdline); err != nil {
			add(c.errorf("profiles."+name+".cmdline", "%v", err))
		}
		if err := boot.CheckTemplate(p.Script); err != nil {
			add(c.errorf("profiles."+name+".script", "%v", err))
		}
	}
	return es
}
