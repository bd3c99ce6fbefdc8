// Package config is pxed's configuration: the YAML file's typed structure,
// its defaults, and validation that names the file, line and field of every
// mistake and says what to write instead.
package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"pxed/internal/boot"
	"pxed/internal/lease"
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
	Limits     Limits             `yaml:"limits"`   // resource bounds (limits.go)

	lines map[string]int // field path → line, for errors
	file  string
}

// DHCP configures the DHCP side.
type DHCP struct {
	Mode  string `yaml:"mode"`  // proxy (default), server, off
	Range string `yaml:"range"` // FIRST-LAST, for mode server: one subnet on the interface's prefix
	// Subnets are the networks of mode server (instead of Range).
	Subnets []Subnet `yaml:"subnets"`
	// ProbeTimeout is how long to wait for an ICMP echo reply before
	// offering an address ("300ms" default; "off" disables probing).
	ProbeTimeout string `yaml:"probe_timeout"`
	// CommitInterval is the least time between two lease commits (fsyncs)
	// under load, unless 64 leases wait: the writes of every client in
	// between share one commit ("10ms" default; "0s" commits as soon as
	// the previous one is done).
	CommitInterval string `yaml:"commit_interval"`
}

// Subnet is one network pxed leases addresses on in mode server.
type Subnet struct {
	// Interface is where the subnet is attached; empty for a network
	// behind a relay agent (selected by giaddr).
	Interface     string        `yaml:"interface"`
	Prefix        string        `yaml:"prefix"` // e.g. 192.0.2.0/24
	Ranges        []string      `yaml:"ranges"` // FIRST-LAST
	Router        string        `yaml:"router"`
	DNS           []string      `yaml:"dns"`
	Domain        string        `yaml:"domain"`
	MTU           int           `yaml:"mtu"`
	NTP           []string      `yaml:"ntp"`
	LeaseTime     string        `yaml:"lease_time"` // e.g. 1h (default)
	Options       []Option      `yaml:"options"`
	Reservations  []Reservation `yaml:"reservations"`
	Authoritative bool          `yaml:"authoritative"`
}

// Option is a DHCP option by number with a typed value.
type Option struct {
	Code  int    `yaml:"code"`
	Type  string `yaml:"type"` // ip, ips, string, uint8, uint16, uint32, bool, hex
	Value any    `yaml:"value"`
}

// Reservation gives one client a fixed address.
type Reservation struct {
	MAC      string   `yaml:"mac"`
	ClientID string   `yaml:"client_id"` // option 61 as hex, e.g. 01:52:54:00:12:34:56
	Address  string   `yaml:"address"`
	Hostname string   `yaml:"hostname"`
	Options  []Option `yaml:"options"`
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
	// A field the file does not set still names the file (the fix goes
	// there, or in a flag); only a flags-only configuration says "flags".
	return &Error{File: c.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
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
	c.Limits.defaults()
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
		es = append(es, c.validateServer()...)
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
	es = append(es, c.validateLimits()...)
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

// ServerSubnet is a validated subnet of mode server, ready for the lease
// Manager and the DHCP policy.
type ServerSubnet struct {
	Interface     string       // "" for a relayed subnet
	Lease         lease.Subnet // prefix, ranges, reservations, server ID, lease time
	Authoritative bool
	Router        []netip.Addr
	DNS           []netip.Addr
	NTP           []netip.Addr
	Domain        string
	MTU           uint16
	Options       []RawOption
	HostOptions   map[netip.Addr][]RawOption // by reserved address
}

// RawOption is an encoded DHCP option.
type RawOption struct {
	Code  uint8
	Value []byte
}

// ProbeTimeout returns the ICMP probe timeout: 300ms by default, 0 when
// probe_timeout is "off".
func (c *Config) ProbeTimeout() time.Duration {
	switch c.DHCP.ProbeTimeout {
	case "":
		return 300 * time.Millisecond
	case "off":
		return 0
	}
	d, _ := time.ParseDuration(c.DHCP.ProbeTimeout)
	return d
}

// CommitInterval returns dhcp.commit_interval and whether it is set (when
// not, the lease store's default applies). 0 means no wait between commits.
func (c *Config) CommitInterval() (time.Duration, bool) {
	if c.DHCP.CommitInterval == "" {
		return 0, false
	}
	d, _ := time.ParseDuration(c.DHCP.CommitInterval)
	return d, true
}

// ServerSubnets returns the subnets of mode server: dhcp.subnets, or for
// dhcp.range one subnet on the prefix of the first interface. Each
// subnet's server ID is its interface's address (for relayed subnets the
// first interface's). Call it after Validate.
func (c *Config) ServerSubnets() ([]ServerSubnet, error) {
	out, es := c.serverSubnets()
	if len(es) > 0 {
		return nil, es
	}
	return out, nil
}

func (c *Config) validateServer() Errors {
	var es Errors
	if c.DHCP.ProbeTimeout != "" && c.DHCP.ProbeTimeout != "off" {
		if d, err := time.ParseDuration(c.DHCP.ProbeTimeout); err != nil || d < 0 {
			es = append(es, c.errorf("dhcp.probe_timeout", "%q is not a duration: write e.g. 300ms, or off", c.DHCP.ProbeTimeout))
		}
	}
	if c.DHCP.CommitInterval != "" {
		if d, err := time.ParseDuration(c.DHCP.CommitInterval); err != nil || d < 0 || d > time.Second {
			es = append(es, c.errorf("dhcp.commit_interval", "%q is not a duration between 0s and 1s: write e.g. 10ms", c.DHCP.CommitInterval))
		}
	}
	_, more := c.serverSubnets()
	return append(es, more...)
}

// ifaceAddr returns the IPv4 address and prefix of an interface.
func ifaceAddr(name string) (netip.Prefix, bool) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Prefix{}, false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap().Is4() {
				ones, _ := pn.Mask.Size()
				return netip.PrefixFrom(ip.Unmap(), ones), true
			}
		}
	}
	return netip.Prefix{}, false
}

// used is where an address range or a reserved address was configured.
type used struct {
	field       string
	first, last netip.Addr
}

func (c *Config) where(field string) string {
	if l := c.Line(field); l > 0 {
		return fmt.Sprintf("%s (%s:%d)", field, c.file, l)
	}
	return field
}

func (c *Config) serverSubnets() ([]ServerSubnet, Errors) {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	subnets := c.DHCP.Subnets
	if c.DHCP.Range != "" {
		if len(subnets) > 0 {
			return nil, Errors{c.errorf("dhcp.range", "write either dhcp.range or dhcp.subnets, not both (put the range under subnets[].ranges)")}
		}
		if _, _, err := ParseRange(c.DHCP.Range); err != nil {
			return nil, Errors{c.errorf("dhcp.range", "%v: write `range: 192.0.2.100-192.0.2.200`", err)}
		}
		if len(c.Interfaces) == 0 {
			return nil, nil // reported as the missing interface
		}
		pfx, ok := ifaceAddr(c.Interfaces[0])
		if !ok {
			return nil, Errors{c.errorf("dhcp.range", "interface %q has no IPv4 address to take the subnet from: give it one (ip addr add 192.0.2.1/24 dev %s) or write dhcp.subnets", c.Interfaces[0], c.Interfaces[0])}
		}
		subnets = []Subnet{{Interface: c.Interfaces[0], Prefix: pfx.Masked().String(), Ranges: []string{c.DHCP.Range}, Authoritative: true}}
	}
	if len(subnets) == 0 {
		return nil, Errors{c.errorf("dhcp.range", "mode server needs addresses to lease: write `range: 192.0.2.100-192.0.2.200` (or pass --dhcp-range), or write dhcp.subnets")}
	}
	field := func(i int, f string) string {
		if c.DHCP.Range != "" && f == "ranges[0]" {
			return "dhcp.range"
		}
		return fmt.Sprintf("dhcp.subnets[%d].%s", i, f)
	}
	var ranges, reserved []used
	var out []ServerSubnet
	for i, sc := range subnets {
		ss := ServerSubnet{Interface: sc.Interface, Authoritative: sc.Authoritative, Domain: sc.Domain, HostOptions: map[netip.Addr][]RawOption{}}
		pfx, err := netip.ParsePrefix(sc.Prefix)
		if err != nil || !pfx.Addr().Is4() {
			add(c.errorf(field(i, "prefix"), "%q is not an IPv4 prefix: write e.g. `prefix: 192.0.2.0/24`", sc.Prefix))
			continue
		}
		pfx = pfx.Masked()
		ss.Lease.Prefix = pfx
		ifname := sc.Interface
		if ifname == "" && len(c.Interfaces) > 0 {
			ifname = c.Interfaces[0]
		} else if ifname != "" && !slices.Contains(c.Interfaces, ifname) {
			add(c.errorf(field(i, "interface"), "%q is not one of the served interfaces %v: add it to interfaces or fix the name", ifname, c.Interfaces))
		}
		if ia, ok := ifaceAddr(ifname); ok {
			ss.Lease.ServerID = ia.Addr()
			if sc.Interface != "" && !pfx.Contains(ia.Addr()) {
				add(c.errorf(field(i, "prefix"), "interface %s has address %v, outside %v: write the interface's prefix (%v), or leave interface empty for a relayed subnet", ifname, ia.Addr(), pfx, ia.Masked()))
			}
		}
		if sc.LeaseTime != "" {
			d, err := time.ParseDuration(sc.LeaseTime)
			if err != nil || d < time.Minute {
				add(c.errorf(field(i, "lease_time"), "%q: write a duration of at least 1m, e.g. 1h or 12h", sc.LeaseTime))
			}
			ss.Lease.LeaseTime = d
		}
		for j, r := range sc.Ranges {
			f := field(i, fmt.Sprintf("ranges[%d]", j))
			first, last, err := ParseRange(r)
			if err != nil {
				add(c.errorf(f, "%v: write e.g. 192.0.2.100-192.0.2.200", err))
				continue
			}
			if !pfx.Contains(first) || !pfx.Contains(last) {
				add(c.errorf(f, "range %s is outside the subnet %v: write a range inside it", r, pfx))
				continue
			}
			for _, u := range ranges {
				if !last.Less(u.first) && !u.last.Less(first) {
					add(c.errorf(f, "range %s overlaps %s: make the ranges disjoint", r, c.where(u.field)))
				}
			}
			ranges = append(ranges, used{f, first, last})
			ss.Lease.Ranges = append(ss.Lease.Ranges, lease.Range{First: first, Last: last})
		}
		if sc.Router != "" {
			ss.Router = c.addrs(field(i, "router"), []string{sc.Router}, add)
		}
		ss.DNS = c.addrs(field(i, "dns"), sc.DNS, add)
		ss.NTP = c.addrs(field(i, "ntp"), sc.NTP, add)
		if sc.MTU != 0 && (sc.MTU < 68 || sc.MTU > 65535) {
			add(c.errorf(field(i, "mtu"), "%d: write an MTU between 68 and 65535, e.g. 1500", sc.MTU))
		}
		ss.MTU = uint16(sc.MTU)
		ss.Options = c.options(field(i, "options"), sc.Options, add)
		clients := map[string]string{}
		for j, r := range sc.Reservations {
			f := field(i, fmt.Sprintf("reservations[%d]", j))
			res := lease.Reservation{Hostname: r.Hostname}
			a, err := netip.ParseAddr(r.Address)
			if err != nil || !a.Is4() || !pfx.Contains(a) {
				add(c.errorf(f+".address", "%q: write an IPv4 address inside %v", r.Address, pfx))
				continue
			}
			res.Addr = a
			for _, u := range reserved {
				if u.first == a {
					add(c.errorf(f+".address", "%v is already reserved by %s: give each client its own address", a, c.where(u.field)))
				}
			}
			if a == ss.Lease.ServerID {
				add(c.errorf(f+".address", "%v is pxed's own address on %s: reserve another address", a, ifname))
			} else if slices.Contains(ss.Router, a) {
				add(c.errorf(f+".address", "%v is the subnet's router: reserve another address", a))
			}
			reserved = append(reserved, used{field: f, first: a})
			var id string
			switch {
			case r.ClientID != "":
				b, err := hexBytes(r.ClientID)
				if err != nil || len(b) < 2 {
					add(c.errorf(f+".client_id", "%q: write option 61 as hex bytes, e.g. 01:52:54:00:12:34:56", r.ClientID))
				}
				res.ClientID, id = b, "id "+string(b)
			case r.MAC != "":
				mac, err := net.ParseMAC(r.MAC)
				if err != nil || len(mac) != 6 {
					add(c.errorf(f+".mac", "%q is not a MAC address: write aa:bb:cc:dd:ee:ff", r.MAC))
				}
				res.MAC, id = mac, "mac "+string(mac)
			default:
				add(c.errorf(f, "reservation of %v names no client: write mac: aa:bb:cc:dd:ee:ff or client_id: 01:aa:bb:cc:dd:ee:ff", a))
			}
			if prev, dup := clients[id]; dup && id != "" {
				add(c.errorf(f, "this client already has the reservation %s: keep one", c.where(prev)))
			}
			clients[id] = f
			ss.Lease.Reservations = append(ss.Lease.Reservations, res)
			if opts := c.options(f+".options", r.Options, add); len(opts) > 0 {
				ss.HostOptions[a] = opts
			}
		}
		out = append(out, ss)
	}
	return out, es
}

func (c *Config) addrs(field string, in []string, add func(*Error)) []netip.Addr {
	var out []netip.Addr
	for _, s := range in {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || !a.Is4() {
			add(c.errorf(field, "%q is not an IPv4 address: write e.g. 192.0.2.1", s))
			continue
		}
		out = append(out, a)
	}
	return out
}

func hexBytes(s string) ([]byte, error) {
	return hex.DecodeString(strings.NewReplacer(":", "", "-", "", " ", "").Replace(s))
}

func (c *Config) options(field string, in []Option, add func(*Error)) []RawOption {
	var out []RawOption
	for k, o := range in {
		f := fmt.Sprintf("%s[%d]", field, k)
		if o.Code < 1 || o.Code > 254 || o.Code == 53 || o.Code == 54 {
			add(c.errorf(f+".code", "%d: write an option number from 1 to 254 (53 and 54 are pxed's own)", o.Code))
			continue
		}
		b, err := encodeOption(o.Type, o.Value)
		if err != nil {
			add(c.errorf(f+".value", "%v", err))
			continue
		}
		out = append(out, RawOption{Code: uint8(o.Code), Value: b})
	}
	return out
}

// encodeOption encodes a typed option value (RFC 2132 §2 encodings).
func encodeOption(typ string, v any) ([]byte, error) {
	str := fmt.Sprint(v)
	num := func(bits int) ([]byte, error) {
		n, err := strconv.ParseUint(str, 0, bits)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %s: write a number from 0 to %d", str, typ, uint64(1)<<bits-1)
		}
		b := make([]byte, bits/8)
		for i := range b {
			b[len(b)-1-i] = byte(n >> (8 * i))
		}
		return b, nil
	}
	switch typ {
	case "ip", "ips":
		var list []string
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				list = append(list, fmt.Sprint(e))
			}
		default:
			list = strings.Split(str, ",")
		}
		if typ == "ip" && len(list) != 1 {
			return nil, fmt.Errorf("type ip takes one address: write type: ips for a list")
		}
		var b []byte
		for _, s := range list {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%q is not an IPv4 address: write e.g. 192.0.2.1", s)
			}
			b = append(b, a.AsSlice()...)
		}
		return b, nil
	case "string":
		if str == "" || len(str) > 255 {
			return nil, fmt.Errorf("string of %d bytes: write 1 to 255 bytes", len(str))
		}
		return []byte(str), nil
	case "uint8":
		return num(8)
	case "uint16":
		return num(16)
	case "uint32":
		return num(32)
	case "bool":
		switch str {
		case "true":
			return []byte{1}, nil
		case "false":
			return []byte{0}, nil
		}
		return nil, fmt.Errorf("%q: write true or false", str)
	case "hex":
		b, err := hexBytes(str)
		if err != nil || len(b) == 0 || len(b) > 255 {
			return nil, fmt.Errorf("%q: write 1 to 255 hex bytes, e.g. 01:02:0a", str)
		}
		return b, nil
	}
	return nil, fmt.Errorf("type %q: write ip, ips, string, uint8, uint16, uint32, bool or hex", typ)
}
