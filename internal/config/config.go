// Package config is pxed's configuration: the YAML file's typed structure,
// its defaults, and validation that names the file, line and field of every
// mistake and says what to write instead.
//
// Each section of the file has its own Go file: config.go holds the whole
// (Config, Load and Parse, errors with their lines, Defaults, and Validate,
// which runs each section's checks in turn), boot.go the boot files,
// profiles and machines, dhcp.go the dhcp section (DHCPv4) and
// dhcp_subnets.go the subnets it builds for mode server, limits.go the
// limits. duration.go holds the duration types, parsed once when the file
// is read; host.go the Host that Validate asks about interfaces. A new
// section (dhcp6) gets its own file and one line in Validate.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration. The zero value plus Defaults is a
// working ProxyDHCP server once Interfaces and a profile are set.
type Config struct {
	Interfaces []string `yaml:"interfaces"`
	DHCP       DHCP     `yaml:"dhcp"`
	DHCP6      DHCP6    `yaml:"dhcp6"`

	RouterAdvertisements RouterAdvertisements `yaml:"router_advertisements"` // ra.go
	BootDir              string               `yaml:"boot_dir"`              // files served over TFTP and HTTP
	DataDir              string               `yaml:"data_dir"`              // leases, machines
	Store                string               `yaml:"store"`                 // lease database: "" (SQLite in DataDir) or postgres://… (store.go)
	TFTPAddr             string               `yaml:"tftp_addr"`             // default ":69"
	HTTPAddr             string               `yaml:"http_addr"`             // default ":8080"
	IPXEDir              string               `yaml:"ipxe_dir"`              // default /usr/lib/ipxe
	LogFormat            string               `yaml:"log_format"`
	LogLevel             string               `yaml:"log_level"`
	BootFiles            map[string]string    `yaml:"boot_files"` // class → NBP name
	Default              string               `yaml:"default_profile"`
	Profiles             map[string]Profile   `yaml:"profiles"`
	Machines             map[string]string    `yaml:"machines"`       // MAC → profile
	Limits               Limits               `yaml:"limits"`         // resource bounds (limits.go)
	TFTPMulticast        TFTPMulticast        `yaml:"tftp_multicast"` // multicast TFTP (mtftp.go)
	// TFTPSharedPort serves lockstep transfers from one shared port per
	// local address (tftp's lockstep engine): on when unset, false gives
	// each transfer a socket of its own (README, "TFTP"). SharedPort reads it.
	TFTPSharedPort *bool   `yaml:"tftp_shared_port"`
	Cluster        Cluster `yaml:"cluster"` // several servers, one lease database (cluster.go)

	// RogueDetection: on (default) reports other DHCP servers answering
	// boot clients, off does not (rogue.go).
	RogueDetection string `yaml:"rogue_detection"`

	// The fleet (fleet.go): what to do with machines nobody approved,
	// and the selectors that pick a profile for machines without one.
	UnknownMachines string     `yaml:"unknown_machines"` // boot (default), hold, ignore
	Selectors       []Selector `yaml:"selectors"`

	// Menu is the PXE boot menu; InterfaceMenus give an interface its
	// own, a profile's menu: its machines theirs (menu.go).
	Menu           *Menu            `yaml:"menu"`
	InterfaceMenus map[string]*Menu `yaml:"interface_menus"`

	Security `yaml:",inline"` // api_auth, api_tls, https_boot, machine_urls… (security.go)

	// Host answers what Validate asks of the machine (its interfaces and
	// their addresses); nil is SystemHost. Not in the file.
	Host Host `yaml:"-"`

	lines   map[string]int // field path → line, for errors
	file    string
	server  *serverSubnets  // mode server's subnets, built once by Validate
	server6 *serverSubnets6 // dhcp6 mode server's subnets, built once by Validate
}

// Error is a configuration mistake: where it is and what to do.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string // what is wrong and what to write instead
}

func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "flags"
	}
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Errors is a list of configuration mistakes.
type Errors []*Error

func (es Errors) Error() string {
	var s []string
	for _, e := range es {
		s = append(s, e.Error())
	}
	return strings.Join(s, "\n")
}

// Load reads and parses a YAML file. Unknown fields are errors. It does not
// validate; call Defaults then Validate after applying flags.
func Load(file string) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(file, b)
}

// Parse parses YAML text; file names it in errors.
func Parse(file string, b []byte) (*Config, error) {
	c := &Config{file: file, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, yamlError(file, err)
	}
	if len(root.Content) == 0 {
		return c, nil
	}
	recordLines(root.Content[0], "", c.lines)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(file, err)
	}
	return c, nil
}

func yamlError(file string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var es Errors
		for _, m := range te.Errors {
			es = append(es, lineError(file, m))
		}
		return es
	}
	return Errors{lineError(file, err.Error())}
}

// lineError turns "yaml: line N: msg" into an Error at line N.
func lineError(file, msg string) *Error {
	msg = strings.TrimPrefix(msg, "yaml: ")
	e := &Error{File: file, Msg: msg}
	if strings.HasPrefix(msg, "line ") {
		rest := msg[5:]
		if i := strings.Index(rest, ":"); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				e.Line, e.Msg = n, strings.TrimSpace(rest[i+1:])
			}
		}
	}
	if strings.Contains(e.Msg, "not found in type") {
		e.Msg += " (unknown field: check the spelling against README's configuration reference)"
	}
	return e
}

func recordLines(n *yaml.Node, path string, lines map[string]int) {
	if n.Kind == yaml.SequenceNode {
		for i, item := range n.Content { // "interfaces[0]", "profiles.x.initrds[1]"
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = item.Line
			recordLines(item, p, lines)
		}
		return
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		lines[p] = k.Line
		recordLines(v, p, lines)
	}
}

// Line returns the line of a field path ("profiles.default.kernel"), 0 when
// it did not come from the file.
func (c *Config) Line(field string) int { return c.lines[field] }

func (c *Config) errorf(field, format string, args ...any) *Error {
	line := 0
	if c.lines != nil {
		// the field itself, else its nearest parent that came from the file
		for f := field; f != ""; {
			if l, ok := c.lines[f]; ok {
				line = l
				break
			}
			i := strings.LastIndex(f, ".")
			if i < 0 {
				break
			}
			f = f[:i]
		}
	}
	// A field the file does not set still names the file (the fix goes
	// there, or in a flag); only a flags-only configuration says "flags".
	return &Error{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// File is the file the configuration came from, "" for flags only.
func (c *Config) File() string { return c.file }

// Defaults fills in every unset field with its default.
func (c *Config) Defaults() {
	c.defaultsDHCP6()    // dhcp6.go
	c.defaultsSecurity() // security.go
	if c.DHCP.Mode == "" {
		c.DHCP.Mode = ModeProxy
	}
	if c.TFTPAddr == "" {
		c.TFTPAddr = ":69"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.IPXEDir == "" {
		c.IPXEDir = "/usr/lib/ipxe"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.BootFiles == nil {
		c.BootFiles = map[string]string{}
	}
	for k, v := range DefaultBootFiles {
		if _, set := c.BootFiles[k]; !set {
			c.BootFiles[k] = v
		}
	}
	c.Limits.defaults()
	if c.Default == "" && len(c.Profiles) == 1 {
		for name := range c.Profiles {
			c.Default = name
		}
	}
}

// Validate checks everything that can be checked before serving, including
// that every kernel, initrd and boot file exists, and returns all mistakes.
// Each section checks its own fields, in the order of this list.
func (c *Config) Validate() error {
	var es Errors
	for _, section := range []func() Errors{
		c.validateInterfaces,
		c.validateDHCP,      // dhcp.go
		c.validateServices,  // tftp_addr, http_addr, log_*
		c.validateStore,     // store.go
		c.validateBootFiles, // boot.go
		c.validateLimits,    // limits.go
		c.validateRA,        // ra.go
		c.validateMulticast, // mtftp.go
		c.validateProfiles,  // boot.go
		c.validateLoaders,   // loader.go
		c.validateMenus,     // menu.go
		c.validateCluster,   // cluster.go
		c.validateRogue,     // rogue.go
		c.validateSecurity,  // security.go
		c.validateFleet,     // fleet.go
	} {
		es = append(es, section()...)
	}
	if len(es) > 0 {
		return es
	}
	return nil
}

// validateInterfaces checks that the served interfaces exist.
func (c *Config) validateInterfaces() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	if (c.DHCP.Mode != ModeOff || c.DHCP6.Mode == ModeServer) && len(c.Interfaces) == 0 {
		add(c.errorf("interfaces", "no interface given: write `interfaces: [eth1]` or pass --interface eth1 (the network the machines boot on)"))
	}
	for i, name := range c.Interfaces {
		if !c.host().HasInterface(name) {
			add(c.errorf(fmt.Sprintf("interfaces[%d]", i), "interface %q does not exist on this host (see `ip link`)", name))
		}
	}
	return es
}

// validateServices checks the listen addresses and the log settings.
func (c *Config) validateServices() Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	for _, f := range []struct{ field, val string }{{"tftp_addr", c.TFTPAddr}, {"http_addr", c.HTTPAddr}} {
		if f.val == "off" {
			continue
		}
		if _, _, err := net.SplitHostPort(f.val); err != nil {
			add(c.errorf(f.field, "%q is not HOST:PORT: write e.g. \":69\", \"192.0.2.1:8080\", or off", f.val))
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		add(c.errorf("log_format", "%q: write text or json", c.LogFormat))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add(c.errorf("log_level", "%q: write debug, info, warn or error", c.LogLevel))
	}
	return es
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// where names a field and, when it came from the file, its file:line, for
// a message that points at another field.
func (c *Config) where(field string) string {
	if l := c.Line(field); l > 0 {
		return fmt.Sprintf("%s (%s:%d)", field, c.file, l)
	}
	return field
}

// SharedPort reports whether lockstep TFTP transfers share one port per
// local address: tftp_shared_port, true when unset.
func (c *Config) SharedPort() bool {
	return c.TFTPSharedPort == nil || *c.TFTPSharedPort
}
