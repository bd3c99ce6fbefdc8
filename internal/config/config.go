// Package config is pxed's configuration: the YAML file's typed structure,
// its defaults, and validation that names the file, line and field of every
// mistake and says what to write instead.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"pxed/internal/boot"
	"pxed/internal/pxe"
)

// DHCP modes.
const (
	ModeProxy  = "proxy"  // ProxyDHCP beside an existing DHCP server (default)
	ModeServer = "server" // full DHCP server: addresses and boot info
	ModeOff    = "off"    // no DHCP at all (TFTP/HTTP only)
)

// Config is the whole configuration. The zero value plus Defaults is a
// working ProxyDHCP server once Interfaces and a profile are set.
type Config struct {
	Interfaces []string           `yaml:"interfaces"`
	DHCP       DHCP               `yaml:"dhcp"`
	BootDir    string             `yaml:"boot_dir"`  // files served over TFTP and HTTP
	DataDir    string             `yaml:"data_dir"`  // leases, machines
	TFTPAddr   string             `yaml:"tftp_addr"` // default ":69"
	HTTPAddr   string             `yaml:"http_addr"` // default ":8080"
	IPXEDir    string             `yaml:"ipxe_dir"`  // default /usr/lib/ipxe
	LogFormat  string             `yaml:"log_format"`
	LogLevel   string             `yaml:"log_level"`
	BootFiles  map[string]string  `yaml:"boot_files"` // class → NBP name
	Default    string             `yaml:"default_profile"`
	Profiles   map[string]Profile `yaml:"profiles"`
	Machines   map[string]string  `yaml:"machines"` // MAC → profile

	lines map[string]int // field path → line, for errors
	file  string
}

// DHCP configures the DHCP side.
type DHCP struct {
	Mode  string `yaml:"mode"`  // proxy (default), server, off
	Range string `yaml:"range"` // FIRST-LAST, for mode server
}

// Profile is one boot profile (see boot.Profile).
type Profile struct {
	Kernel    string            `yaml:"kernel"`
	Initrds   []string          `yaml:"initrds"`
	Cmdline   string            `yaml:"cmdline"`
	Script    string            `yaml:"script"`
	BootFiles map[string]string `yaml:"boot_files"`
}

// DefaultBootFiles are the NBPs of Debian's ipxe package per class.
var DefaultBootFiles = map[string]string{
	string(pxe.ClassBIOS):   "undionly.kpxe",
	string(pxe.ClassEFIX64): "snponly.efi",
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
	file := c.file
	if line == 0 {
		file = ""
	}
	return &Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// File is the file the configuration came from, "" for flags only.
func (c *Config) File() string { return c.file }

// Defaults fills in every unset field with its default.
func (c *Config) Defaults() {
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
	if c.Default == "" && len(c.Profiles) == 1 {
		for name := range c.Profiles {
			c.Default = name
		}
	}
}

// Validate checks everything that can be checked before serving, including
// that every kernel, initrd and boot file exists, and returns all mistakes.
func (c *Config) Validate() error {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	if c.DHCP.Mode != ModeOff && len(c.Interfaces) == 0 {
		add(c.errorf("interfaces", "no interface given: write `interfaces: [eth1]` or pass --interface eth1 (the network the machines boot on)"))
	}
	for i, name := range c.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			add(c.errorf(fmt.Sprintf("interfaces[%d]", i), "interface %q does not exist on this host (see `ip link`)", name))
		}
	}
	switch c.DHCP.Mode {
	case ModeProxy, ModeOff:
	case ModeServer:
		if _, _, err := ParseRange(c.DHCP.Range); err != nil {
			add(c.errorf("dhcp.range", "%v: write `range: 192.0.2.100-192.0.2.200`", err))
		}
	default:
		add(c.errorf("dhcp.mode", "%q is not a DHCP mode: write proxy, server or off", c.DHCP.Mode))
	}
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
		if name == "" {
			continue
		}
		if _, err := c.FindBootFile(name); err != nil {
			add(c.errorf("boot_files."+class, "%v", err))
		}
	}
	if len(c.Profiles) == 0 {
		add(c.errorf("profiles", "no boot profile: give --kernel and --initrd, or write a profiles: section with a kernel"))
	}
	for _, name := range sortedKeys(c.Profiles) {
		p := c.Profiles[name]
		f := "profiles." + name
		if p.Kernel == "" && p.Script == "" {
			add(c.errorf(f, "profile has neither kernel nor script: write `kernel: /path/to/vmlinuz`"))
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
	if len(es) > 0 {
		return es
	}
	return nil
}

// FindBootFile returns where an NBP name is served from: the boot directory
// first, then the iPXE directory.
func (c *Config) FindBootFile(name string) (string, error) {
	var tried []string
	for _, dir := range []string{c.BootDir, c.IPXEDir} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(name, "/")))
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("boot file %q not found (looked at %s): install Debian package ipxe, set ipxe_dir/--ipxe-dir, or put the file in boot_dir", name, strings.Join(tried, ", "))
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

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c *Config) bootProfile(name string) boot.Profile {
	p := c.Profiles[name]
	return boot.Profile{Name: name, Kernel: p.Kernel, Initrds: p.Initrds, Cmdline: p.Cmdline, Script: p.Script, BootFiles: p.BootFiles}
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
	for mac, p := range c.Machines {
		if hw, err := net.ParseMAC(mac); err == nil {
			bc.Machines[boot.Normalize(hw)] = p
		}
	}
	return bc
}

// ParseRange parses "FIRST-LAST" IPv4 addresses, FIRST <= LAST.
func ParseRange(s string) (netip.Addr, netip.Addr, error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q is not FIRST-LAST", s)
	}
	first, err1 := netip.ParseAddr(strings.TrimSpace(a))
	last, err2 := netip.ParseAddr(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || !first.Is4() || !last.Is4() {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q: both ends must be IPv4 addresses", s)
	}
	if last.Less(first) {
		return netip.Addr{}, netip.Addr{}, fmt.Errorf("range %q: first address is after the last", s)
	}
	return first, last, nil
}
