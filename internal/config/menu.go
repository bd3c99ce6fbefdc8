package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"pxed/internal/boot"
	"pxed/internal/machinekey"
	"pxed/internal/pxe"
)

// Menu is a PXE boot menu (see boot.Menu): the top-level `menu:`, one of
// `interface_menus:` or a profile's `menu:`.
type Menu struct {
	// Prompt is shown while the firmware waits for a key.
	Prompt string `yaml:"prompt"`
	// Timeout is the prompt's timeout in seconds: 0 boots the default
	// item at once without a prompt, 255 shows the menu at once and waits.
	Timeout *int `yaml:"timeout"`
	// Default is the name of the item booted when the prompt times out
	// (firmware boots the first item: pxed sends this one first); "" is
	// the first item.
	Default string     `yaml:"default"`
	Items   []MenuItem `yaml:"items"`
	// Discovery lists how clients find boot servers: unicast (default),
	// broadcast, multicast.
	Discovery []string `yaml:"discovery"`
	// MulticastAddress is the discovery multicast address (with
	// discovery: [multicast]).
	MulticastAddress string `yaml:"multicast_address"`
	// ServerListOnly makes clients accept answers only from the listed
	// boot servers.
	ServerListOnly bool `yaml:"server_list_only"`
}

// MenuItem is one entry of a Menu: exactly one of Profile, BootFile and
// Local says what it boots.
type MenuItem struct {
	Name        string   `yaml:"name"`        // for default:; "" is the description
	Description string   `yaml:"description"` // what the firmware shows
	Profile     string   `yaml:"profile"`
	BootFile    string   `yaml:"boot_file"`
	Local       bool     `yaml:"local"`   // boot from the next local device (type 0)
	Type        *int     `yaml:"type"`    // boot server type; default 32769, 32770, … by position
	Layers      []string `yaml:"layers"`  // boot files of layers 1, 2, …
	Servers     []string `yaml:"servers"` // boot servers of the item (IPv4); default this server
}

// DefaultMenuTimeout is a menu's prompt timeout when it sets none.
const DefaultMenuTimeout = 10

// firstItemType is the boot server type of a menu's first item that sets
// none (PXE 2.1 table 2-2 leaves 32768–65534 to vendors' use).
const firstItemType = 0x8001

func (it MenuItem) name() string {
	if it.Name != "" {
		return it.Name
	}
	return it.Description
}

// menus are the configured menus with their field paths, for validation.
func (c *Config) menus() (fields []string, ms []*Menu) {
	if c.Menu != nil {
		fields, ms = append(fields, "menu"), append(ms, c.Menu)
	}
	for _, n := range sortedKeys(c.InterfaceMenus) {
		fields, ms = append(fields, "interface_menus."+n), append(ms, c.InterfaceMenus[n])
	}
	for _, n := range sortedKeys(c.Profiles) {
		if m := c.Profiles[n].Menu; m != nil {
			fields, ms = append(fields, "profiles."+n+".menu"), append(ms, m)
		}
	}
	return fields, ms
}

// validateMenus checks every menu: its items and what they boot, the
// discovery methods, and that all of it fits option 43 as firmware shows it.
func (c *Config) validateMenus() Errors {
	var es Errors
	for _, n := range sortedKeys(c.InterfaceMenus) {
		found := false
		for _, i := range c.Interfaces {
			found = found || i == n
		}
		if !found {
			es = append(es, c.errorf("interface_menus."+n, "%q is not one of interfaces: %v: write a served interface's name", n, c.Interfaces))
		}
	}
	fields, ms := c.menus()
	for i, m := range ms {
		if m == nil {
			es = append(es, c.errorf(fields[i], "empty menu: write items: with at least one item, or remove it"))
			continue
		}
		es = append(es, c.validateMenu(fields[i], m)...)
	}
	return es
}

func (c *Config) validateMenu(f string, m *Menu) Errors {
	var es Errors
	add := func(e *Error) { es = append(es, e) }
	if len(m.Items) == 0 {
		add(c.errorf(f+".items", "a menu needs items: write items: with a description and a profile, boot_file or local: true each"))
	}
	if m.Timeout != nil && (*m.Timeout < 0 || *m.Timeout > 255) {
		add(c.errorf(f+".timeout", "%d is out of range: write 0 (boot the default at once), 1–254 seconds, or 255 (show the menu and wait)", *m.Timeout))
	}
	seen := map[int]string{}
	names := map[string]bool{}
	for i, it := range m.Items {
		fi := fmt.Sprintf("%s.items[%d]", f, i)
		if it.Description == "" {
			add(c.errorf(fi, "item without description: write description: \"what the firmware shows\""))
		}
		kinds := 0
		for _, set := range []bool{it.Profile != "", it.BootFile != "", it.Local} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			add(c.errorf(fi, "an item boots exactly one of profile:, boot_file: or local: true"))
		}
		if it.Profile != "" {
			if _, ok := c.Profiles[it.Profile]; !ok {
				add(c.errorf(fi+".profile", "profile %q is not defined under profiles:", it.Profile))
			}
		}
		for j, file := range append([]string{it.BootFile}, it.Layers...) {
			field := fi + ".boot_file"
			if j > 0 {
				field = fmt.Sprintf("%s.layers[%d]", fi, j-1)
			}
			if file == "" && j == 0 {
				continue
			}
			if _, err := c.FindBootFile(file); err != nil {
				add(c.errorf(field, "%v", err))
			}
		}
		if it.Local && (len(it.Layers) > 0 || len(it.Servers) > 0) {
			add(c.errorf(fi, "a local boot item has no layers and no servers: remove them"))
		}
		typ := itemType(it, i)
		if it.Type != nil && (*it.Type < 1 || *it.Type > 65534) {
			add(c.errorf(fi+".type", "%d is not a boot server type: write 1–65534 (0 is local: true)", *it.Type))
		}
		if prev, dup := seen[typ]; dup {
			add(c.errorf(fi+".type", "type %d is also item %q's: each item needs its own boot server type", typ, prev))
		}
		seen[typ] = it.Description
		if names[it.name()] {
			add(c.errorf(fi+".name", "two items named %q: give each a distinct name:", it.name()))
		}
		names[it.name()] = true
		for j, s := range it.Servers {
			if a, err := netip.ParseAddr(s); err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
				add(c.errorf(fmt.Sprintf("%s.servers[%d]", fi, j), "%q is not a boot server's IPv4 address: write one like 192.0.2.10", s))
			}
		}
	}
	if m.Default != "" && !names[m.Default] {
		add(c.errorf(f+".default", "no item named %q: write the name (or description) of one of the items", m.Default))
	}
	d, err := discovery(m)
	if err != nil {
		add(c.errorf(f+".discovery", "%v", err))
	}
	if d.Multicast && m.MulticastAddress == "" {
		add(c.errorf(f+".multicast_address", "discovery: multicast needs multicast_address: write one like 239.0.2.1"))
	}
	if m.MulticastAddress != "" {
		if a, err := netip.ParseAddr(m.MulticastAddress); err != nil || !a.Is4() || !a.IsMulticast() {
			add(c.errorf(f+".multicast_address", "%q is not an IPv4 multicast address: write one like 239.0.2.1", m.MulticastAddress))
		}
	}
	if len(es) > 0 {
		return es
	}
	if err := pxe.CheckMenu(menuOptions(toBootMenu(m))); err != nil {
		add(c.errorf(f, "%v: use fewer or shorter items, a shorter prompt, or fewer boot servers", err))
	}
	return es
}

// menuOptions is the largest option 43 m's offers carry (this server
// counted as one boot server), for pxe.CheckMenu.
func menuOptions(m *boot.Menu) pxe.VendorOptions {
	v := pxe.VendorOptions{HasDiscovery: true, Prompt: m.Prompt, HasPrompt: true, McastAddr: m.MulticastAddr}
	for _, it := range m.Items {
		v.Menu = append(v.Menu, pxe.MenuItem{Type: it.Type, Desc: it.Desc})
		if it.Local() || m.Discovery.NoUnicast {
			continue
		}
		addrs := it.Servers
		if len(addrs) == 0 {
			addrs = []netip.Addr{netip.IPv4Unspecified()}
		}
		v.BootServers = append(v.BootServers, pxe.BootServer{Type: it.Type, Addrs: addrs})
	}
	return v
}

func itemType(it MenuItem, i int) int {
	switch {
	case it.Local:
		return 0
	case it.Type != nil:
		return *it.Type
	}
	return firstItemType + i
}

func discovery(m *Menu) (boot.Discovery, error) {
	if len(m.Discovery) == 0 {
		return boot.Discovery{ListOnly: m.ServerListOnly}, nil
	}
	d := boot.Discovery{NoUnicast: true, ListOnly: m.ServerListOnly}
	for _, s := range m.Discovery {
		switch strings.ToLower(s) {
		case "unicast":
			d.NoUnicast = false
		case "broadcast":
			d.Broadcast = true
		case "multicast":
			d.Multicast = true
		default:
			return d, fmt.Errorf("unknown discovery %q: write a list of unicast, broadcast, multicast", s)
		}
	}
	return d, nil
}

// toBootMenu converts a validated menu, the default item first.
func toBootMenu(m *Menu) *boot.Menu {
	if m == nil {
		return nil
	}
	bm := &boot.Menu{Prompt: m.Prompt, Timeout: DefaultMenuTimeout}
	if m.Timeout != nil {
		bm.Timeout = uint8(*m.Timeout)
	}
	bm.Discovery, _ = discovery(m)
	if a, err := netip.ParseAddr(m.MulticastAddress); err == nil {
		bm.MulticastAddr = a
	}
	for i, it := range m.Items {
		bi := boot.MenuItem{Desc: it.Description, Type: uint16(itemType(it, i)), Profile: it.Profile, BootFile: it.BootFile, Layers: it.Layers}
		for _, s := range it.Servers {
			if a, err := netip.ParseAddr(s); err == nil {
				bi.Servers = append(bi.Servers, a)
			}
		}
		if m.Default != "" && it.name() == m.Default {
			bm.Items = append([]boot.MenuItem{bi}, bm.Items...)
		} else {
			bm.Items = append(bm.Items, bi)
		}
	}
	return bm
}

// bootMenus returns the menus of the boot decision, nil when none is
// configured. Interface menus are keyed by the interface's IPv4
// addresses (as the host reports them).
func (c *Config) bootMenus() *boot.Menus {
	if _, ms := c.menus(); len(ms) == 0 {
		return nil
	}
	bm := &boot.Menus{Default: toBootMenu(c.Menu)}
	for _, n := range sortedKeys(c.Profiles) {
		if m := c.Profiles[n].Menu; m != nil {
			if bm.ByProfile == nil {
				bm.ByProfile = map[string]*boot.Menu{}
			}
			bm.ByProfile[n] = toBootMenu(m)
		}
	}
	for _, n := range sortedKeys(c.InterfaceMenus) {
		addrs, err := c.host().InterfaceAddrs(n)
		if err != nil {
			continue // validateInterfaces reports it
		}
		for _, p := range addrs {
			if p.Addr().Is4() {
				if bm.ByServer == nil {
					bm.ByServer = map[netip.Addr]*boot.Menu{}
				}
				bm.ByServer[p.Addr()] = toBootMenu(c.InterfaceMenus[n])
			}
		}
	}
	return bm
}

// MenuMulticastGroups are the discovery multicast addresses of the menus
// that use multicast discovery, for the boot server sockets to join.
func (c *Config) MenuMulticastGroups() []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	_, ms := c.menus()
	for _, m := range ms {
		if m == nil {
			continue
		}
		d, err := discovery(m)
		a, perr := netip.ParseAddr(m.MulticastAddress)
		if err == nil && perr == nil && d.Multicast && a.IsMulticast() && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// MenuNotes are what pxed says at start about its menus: boot servers
// named by address (servers:) hand iPXE URLs with machines' tokens, so
// every pxed of those hosts needs this server's key.
func (c *Config) MenuNotes() []string {
	if c.MachineURLs != MachineURLToken {
		return nil
	}
	var hosts []string
	_, ms := c.menus()
	for _, m := range ms {
		for _, it := range m.Items {
			for _, s := range it.Servers {
				if !slices.Contains(hosts, s) {
					hosts = append(hosts, s)
				}
			}
		}
	}
	if len(hosts) == 0 {
		return nil
	}
	key := "DATA_DIR/secret; set data_dir: without one the key changes at every start"
	if c.DataDir != "" {
		key = filepath.Join(c.DataDir, machinekey.FileName)
	}
	return []string{fmt.Sprintf("menu items name boot servers %s (servers:): give the pxed there the same server key (copy %s): a machine's script URL carries a token made from it, and iPXE may be handed the URL of a boot server other than the one that made it (403 without the same key)",
		strings.Join(hosts, ", "), key)}
}
