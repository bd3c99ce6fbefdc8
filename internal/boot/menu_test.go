package boot

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	other = netip.MustParseAddr("198.51.100.7")
	srv2  = Server{IP: netip.MustParseAddr("198.51.100.1"), HTTPPort: 8080}
)

// menuConfig is testConfig with a global two-item menu and local boot, a
// menu of its own for profile "secure" and one for the interface srv2.
func menuConfig(ch Chooser) *Config {
	c := testConfig()
	c.Menus = &Menus{
		Default: &Menu{Prompt: "Press F8 for the menu", Timeout: 5, Items: []MenuItem{
			{Desc: "Linux", Type: 0x8001, Profile: "linux"},
			{Desc: "Rescue", Type: 0x8002, Profile: "rescue", Layers: []string{"rescue/layer1"}},
			{Desc: "Memtest", Type: 0x8003, BootFile: "memtest.bin", Servers: []netip.Addr{other}},
			{Desc: "Local disk", Type: 0},
		}},
		ByProfile: map[string]*Menu{"secure": {Timeout: 255, Items: []MenuItem{{Desc: "Secure", Type: 7}}, Discovery: Discovery{Broadcast: true, NoUnicast: true}}},
		ByServer: map[netip.Addr]*Menu{srv2.IP: {Timeout: 0, Items: []MenuItem{{Desc: "Multicast", Type: 9}},
			Discovery: Discovery{Multicast: true, ListOnly: true}, MulticastAddr: netip.MustParseAddr("239.0.2.1")}},
		Choices: ch,
	}
	return c
}

type fixedChoice map[string]string

func (f fixedChoice) Chosen(mac string) (string, bool) { p, ok := f[mac]; return p, ok }
func (f fixedChoice) Shown(string) bool                { return false }

// shownTo is a Chooser that knows of no choice but of menus offered to
// these machines' PXE firmware.
type shownTo []string

func (shownTo) Chosen(string) (string, bool) { return "", false }
func (s shownTo) Shown(mac string) bool      { return slices.Contains(s, mac) }

// TestDecideMenuIPXE: what iPXE gets when a menu applies and it asks DHCP
// (no sub-option 71). As the NIC's ROM it shows the menu; as the NBP of an
// item a PXE firmware chose it must boot, never see the menu again, from
// whichever server answers (ipxeAfterMenu).
func TestDecideMenuIPXE(t *testing.T) {
	rom := Machine{MAC: macB, Firmware: FirmwareIPXE, Arch: 0, HasArch: true, Class: "bios"}
	efi := Machine{MAC: macB, Firmware: FirmwareIPXE, Arch: 7, HasArch: true, Class: "efi-x64"}
	arm := Machine{MAC: macB, Firmware: FirmwareIPXE, Arch: 11, HasArch: true, Class: "efi-arm64"}
	const (
		here     = "http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe"
		there    = "http://198.51.100.7:8080/boot/52-54-00-ab-cd-ef/script.ipxe"
		discover = "http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/pxebs-32771.ipxe"
	)
	twoHosts := func(ch Chooser) *Config {
		c := menuConfig(ch)
		c.Menus.Default.Items[1].Servers = []netip.Addr{netip.MustParseAddr("198.51.100.8")}
		return c
	}
	oneItemTwoHosts := func(ch Chooser) *Config {
		c := menuConfig(ch)
		c.Menus.Default.Items[2].Servers = []netip.Addr{other, netip.MustParseAddr("198.51.100.8")}
		return c
	}
	oneItemThreeHosts := func(ch Chooser) *Config {
		c := menuConfig(ch)
		c.Menus.Default.Items[2].Servers = []netip.Addr{other, srv.IP, netip.MustParseAddr("198.51.100.8")}
		return c
	}
	selfListed := func(ch Chooser) *Config {
		c := menuConfig(ch)
		c.Menus.Default.Items[0].Servers = []netip.Addr{srv.IP, other}
		return c
	}
	tokens := menuConfig(nil)
	tokens.MachineToken = func(net.HardwareAddr) string { return "tok" }
	mac := Normalize(macB)
	tests := []struct {
		name    string
		cfg     *Config
		m       Machine
		file    string
		profile string
		menu    bool
		reason  string
	}{
		{"iPXE ROM on BIOS, nothing known: the menu", menuConfig(nil), rom, here, "linux", true, "boot menu of 4 items"},
		{"iPXE with no arch (older ROM): the menu", menuConfig(nil), Machine{MAC: macB, Firmware: FirmwareIPXE}, here, "linux", true, "boot menu"},
		{"a choice this server answered: its profile's script here", menuConfig(fixedChoice{mac: "rescue"}), efi, here, "rescue", false, "menu item chosen"},
		{"a choice answered here wins over another host", menuConfig(fixedChoice{mac: "rescue"}), rom, here, "rescue", false, "menu item chosen"},
		// UEFI: the firmware's PXE showed the menu; iPXE is the item's NBP.
		{"iPXE on UEFI, one other boot server: its script", menuConfig(nil), efi, there, "linux", false, "the script of boot server 198.51.100.7"},
		{"iPXE on ARM64 UEFI too", menuConfig(nil), arm, there, "linux", false, "198.51.100.7"},
		{"this server listed beside the other: still the other", selfListed(nil), efi, there, "linux", false, "198.51.100.7"},
		{"with machine tokens: the other's URL carries the token", tokens, efi, "http://198.51.100.7:8080/boot/52-54-00-ab-cd-ef/tok/script.ipxe", "linux", false, "198.51.100.7"},
		{"two other hosts serving two items: which answered is unknown, own profile here", twoHosts(nil), efi, here, "linux", false, "the machine's own profile, no menu"},
		{"two other hosts serving one item: iPXE discovers them", oneItemTwoHosts(nil), efi, discover, "linux", true, `discovery of item "Memtest" (type 32771)`},
		{"one item on two other hosts and this one: iPXE discovers them all", oneItemThreeHosts(nil), efi, discover, "linux", true, "[198.51.100.7 192.0.2.1 198.51.100.8]"},
		{"iPXE on BIOS after this server offered the PXE ROM the menu: discovery too", oneItemTwoHosts(shownTo{mac}), rom, discover, "linux", true, "discovery of item"},
		{"a choice answered here wins over discovery", oneItemTwoHosts(fixedChoice{mac: "rescue"}), efi, here, "rescue", false, "menu item chosen"},
		// BIOS: iPXE is the NBP when the PXE ROM got the menu from here.
		{"iPXE on BIOS after this server offered the PXE ROM the menu", menuConfig(shownTo{mac}), rom, there, "linux", false, "198.51.100.7"},
		{"another machine's menu does not count", menuConfig(shownTo{"52:54:00:00:00:99"}), rom, here, "linux", true, "boot menu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.DecideMenu(tc.m, srv, nil)
			if p.BootFile != tc.file || p.Profile != tc.profile || (p.Menu != nil) != tc.menu {
				t.Fatalf("DecideMenu = %v %q profile %q menu %v (%s); want %q profile %q menu %v", p.Action, p.BootFile, p.Profile, p.Menu != nil, p.Reason,
					tc.file, tc.profile, tc.menu)
			}
			if !strings.Contains(p.Reason, tc.reason) {
				t.Fatalf("Reason = %q, want it to contain %q", p.Reason, tc.reason)
			}
		})
	}
}

func TestChoicesShown(t *testing.T) {
	now := time.Unix(1000, 0)
	ch := &Choices{TTL: time.Minute, Now: func() time.Time { return now }}
	ch.RememberShown("52:54:00:ab:cd:ef")
	if !ch.Shown("52:54:00:ab:cd:ef") || ch.Shown("52:54:00:00:00:01") {
		t.Fatal("Shown does not report the machine offered a menu, or reports another")
	}
	if _, ok := ch.Chosen("52:54:00:ab:cd:ef"); ok {
		t.Fatal("a menu shown counts as a choice")
	}
	now = now.Add(61 * time.Second)
	if ch.Shown("52:54:00:ab:cd:ef") {
		t.Fatal("Shown after the TTL")
	}
}

func TestDecideMenuOffer(t *testing.T) {
	self := srv.IP
	global := &MenuPlan{Prompt: "Press F8 for the menu", Timeout: 5, NoBroadcast: true, NoMulticast: true,
		Items:   []MenuEntry{{0x8001, "Linux"}, {0x8002, "Rescue"}, {0x8003, "Memtest"}, {0, "Local disk"}},
		Servers: []ServerEntry{{0x8001, []netip.Addr{self}}, {0x8002, []netip.Addr{self}}, {0x8003, []netip.Addr{other}}}}
	tests := []struct {
		name   string
		cfg    *Config
		m      Machine
		s      Server
		action Action
		file   string
		menu   *MenuPlan
	}{
		// PXE 2.1 §2.2.5: the offer carries the menu; its boot file stays
		// (discovery control bit 3 clear: the firmware shows the menu).
		{"BIOS PXE ROM gets the global menu, unicast discovery to this server", menuConfig(nil), pxeMachine(macB, 0, "bios"), srv, ServeNBP, "undionly.kpxe", global},
		{"EDK II x64 gets the same menu", menuConfig(nil), pxeMachine(macB, 7, "efi-x64"), srv, ServeNBP, "snponly.efi", global},
		{"iPXE ROM that has not chosen gets the menu", menuConfig(nil), Machine{MAC: macB, Firmware: FirmwareIPXE}, srv, ServeScript,
			"http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe", global},
		{"iPXE after a choice: no menu, the chosen profile's script", menuConfig(fixedChoice{"52:54:00:ab:cd:ef": "rescue"}), Machine{MAC: macB, Firmware: FirmwareIPXE}, srv, ServeScript,
			"http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe", nil},
		{"UEFI HTTP boot never gets a menu", menuConfig(nil), Machine{MAC: macB, Firmware: FirmwareHTTP, Arch: 16, HasArch: true, Class: "efi-x64"}, srv, ServeURL,
			"http://192.0.2.1:8080/files/snponly.efi", nil},
		{"a profile's menu wins: broadcast only, no server list", menuConfig(nil), pxeMachine(macS, 7, "efi-x64"), srv, ServeNBP, "shimx64.efi",
			&MenuPlan{Timeout: 255, NoMulticast: true, Items: []MenuEntry{{7, "Secure"}}}},
		{"the interface's menu: multicast with its address, list only", menuConfig(nil), pxeMachine(macB, 0, "bios"), srv2, ServeNBP, "undionly.kpxe",
			&MenuPlan{NoBroadcast: true, ListOnly: true, MulticastAddr: netip.MustParseAddr("239.0.2.1"), Items: []MenuEntry{{9, "Multicast"}},
				Servers: []ServerEntry{{9, []netip.Addr{srv2.IP}}}}},
		{"no menus: Decide's plan", testConfig(), pxeMachine(macB, 0, "bios"), srv, ServeNBP, "undionly.kpxe", nil},
		{"ignored machine gets no menu", menuConfig(nil), pxeMachine(macB, 42, ""), srv, Ignore, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.DecideMenu(tc.m, tc.s, nil)
			if p.Action != tc.action || p.BootFile != tc.file {
				t.Fatalf("DecideMenu = %v %q (%s); want %v %q", p.Action, p.BootFile, p.Reason, tc.action, tc.file)
			}
			if !reflect.DeepEqual(p.Menu, tc.menu) {
				t.Fatalf("Menu = %+v\nwant %+v", p.Menu, tc.menu)
			}
			if want := tc.cfg.Decide(tc.m, tc.s); p.Action != want.Action || p.BootFile != want.BootFile || p.Profile != want.Profile {
				t.Fatalf("an offer's boot file differs from Decide's: %+v vs %+v", p, want)
			}
		})
	}
}

func TestDecideMenuBootServer(t *testing.T) {
	bios := pxeMachine(macB, 0, "bios")
	efi := pxeMachine(macB, 7, "efi-x64")
	ipxe := Machine{MAC: macB, Firmware: FirmwareIPXE}
	tests := []struct {
		name    string
		cfg     *Config
		m       Machine
		req     BootRequest
		action  Action
		file    string
		profile string
		item    string
		reason  string
	}{
		{"item's profile: its NBP for the class", menuConfig(nil), bios, BootRequest{0x8002, 0}, ServeNBP, "undionly.kpxe", "rescue", "Rescue", `menu item "Rescue" (type 32770, layer 0)`},
		{"item's profile on EDK II", menuConfig(nil), efi, BootRequest{0x8001, 0}, ServeNBP, "snponly.efi", "linux", "Linux", "layer 0"},
		{"iPXE ROM: the item's profile script URL", menuConfig(nil), ipxe, BootRequest{0x8002, 0}, ServeScript, "http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe", "rescue", "Rescue", "iPXE"},
		{"item with its own NBP", menuConfig(nil), bios, BootRequest{0x8003, 0}, ServeNBP, "memtest.bin", "linux", "Memtest", "NBP memtest.bin"},
		// PXE 2.1 §2.2.5: layers above 0 are further files of the type.
		{"layer 1 of an item that has it", menuConfig(nil), bios, BootRequest{0x8002, 1}, ServeNBP, "rescue/layer1", "rescue", "Rescue", "layer 1"},
		{"layer 2 of an item with one extra layer: silent", menuConfig(nil), bios, BootRequest{0x8002, 2}, Ignore, "", "", "Rescue", "the item has 2 layers"},
		{"credentials bit (BIS): silent", menuConfig(nil), bios, BootRequest{0x8002, 0x8000}, Ignore, "", "", "Rescue", "no BIS credentials"},
		// A boot server that does not serve a type stays silent, so that
		// others may answer (PXE 2.1 §2.2.5).
		{"unknown type: silent", menuConfig(nil), bios, BootRequest{0x1234, 0}, Ignore, "", "", "", "type 4660: no such item"},
		{"local boot is never discovered", menuConfig(nil), bios, BootRequest{0, 0}, Ignore, "", "", "Local disk", "local boot is not served"},
		{"the profile's menu decides the items", menuConfig(nil), pxeMachine(macS, 7, "efi-x64"), BootRequest{7, 0}, ServeNBP, "shimx64.efi", "secure", "Secure", "Secure"},
		{"no menus: the machine's file, item echoed", testConfig(), bios, BootRequest{0x8002, 0}, ServeNBP, "undionly.kpxe", "linux", "", "bios PXE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			p := tc.cfg.DecideMenu(tc.m, srv, &req)
			if p.Action != tc.action || p.BootFile != tc.file || p.Profile != tc.profile {
				t.Fatalf("DecideMenu = %v %q profile %q (%s); want %v %q profile %q", p.Action, p.BootFile, p.Profile, p.Reason, tc.action, tc.file, tc.profile)
			}
			if !strings.Contains(p.Reason, tc.reason) {
				t.Fatalf("Reason = %q, want it to contain %q", p.Reason, tc.reason)
			}
			if p.Menu == nil || p.Menu.Chosen == nil || *p.Menu.Chosen != tc.req || p.Menu.Item != tc.item {
				t.Fatalf("Menu = %+v, want Chosen %+v item %q", p.Menu, tc.req, tc.item)
			}
		})
	}
}

func TestChoices(t *testing.T) {
	now := time.Unix(1000, 0)
	ch := &Choices{TTL: time.Minute, Now: func() time.Time { return now }}
	if _, ok := ch.Chosen("52:54:00:ab:cd:ef"); ok {
		t.Fatal("empty Choices has a choice")
	}
	ch.Remember("52:54:00:ab:cd:ef", "rescue")
	cfg := menuConfig(ch)
	if p, ok := cfg.ProfileFor(macB); !ok || p.Name != "rescue" {
		t.Fatalf("ProfileFor after a choice = %q, %v; want rescue", p.Name, ok)
	}
	now = now.Add(61 * time.Second)
	if p, _ := cfg.ProfileFor(macB); p.Name != "linux" {
		t.Fatalf("ProfileFor after the TTL = %q, want the default linux", p.Name)
	}
}

// TestMenuFollowsAssignedProfile: the menu shown is that of the profile
// Decide gives the machine, however it was given (a runtime assignment,
// a selector, as machines: does), and not of a profile chosen in a menu
// (the firmware shows the menu it showed before). Menus once followed
// machines: only.
func TestMenuFollowsAssignedProfile(t *testing.T) {
	secure := &MenuPlan{Timeout: 255, NoMulticast: true, Items: []MenuEntry{{7, "Secure"}}}
	global := menuConfig(nil).DecideMenu(pxeMachine(macB, 7, "efi-x64"), srv, nil).Menu
	assigned := menuConfig(nil)
	assigned.Fleet = fleetMap{Normalize(macB): {Profile: "secure"}}
	selected := menuConfig(nil)
	selected.Selectors = []Selector{{Profile: "secure", Class: "efi-x64"}}
	once := menuConfig(nil)
	once.Fleet = fleetMap{Normalize(macB): {BootOnce: &BootOnce{Profile: "secure"}}}
	for _, tc := range []struct {
		name string
		cfg  *Config
		want *MenuPlan
	}{
		{"runtime assignment", assigned, secure},
		{"selector", selected, secure},
		{"boot-once", once, secure},
		{"a choice made in the menu", menuConfig(fixedChoice{Normalize(macB): "secure"}), global},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cfg.DecideMenu(pxeMachine(macB, 7, "efi-x64"), srv, nil)
			if !reflect.DeepEqual(p.Menu, tc.want) {
				t.Fatalf("Menu = %+v (%s)\nwant %+v", p.Menu, p.Reason, tc.want)
			}
		})
	}
}

// TestDecideMenuIPXEDiscovery: what iPXE gets when one item is served by
// several other hosts: no menu (EFI builds of iPXE have no PXE menu), the
// item's boot servers in the menu's order, unicast only, and the URL of
// the script that runs the discovery (DiscoveryScript).
func TestDecideMenuIPXEDiscovery(t *testing.T) {
	c := menuConfig(nil)
	b := netip.MustParseAddr("198.51.100.8")
	c.Menus.Default.Items[2].Servers = []netip.Addr{other, b}
	efi := Machine{MAC: macB, Firmware: FirmwareIPXE, Arch: 7, HasArch: true, Class: "efi-x64"}
	p := c.DecideMenu(efi, srv, nil)
	want := &MenuPlan{NoBroadcast: true, NoMulticast: true, Item: "Memtest",
		Servers: []ServerEntry{{0x8003, []netip.Addr{other, b}}}}
	if !reflect.DeepEqual(p.Menu, want) {
		t.Fatalf("Menu = %+v\nwant %+v", p.Menu, want)
	}
	if p.Action != ServeScript || p.BootFile != "http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/pxebs-32771.ipxe" || p.Profile != "linux" {
		t.Fatalf("plan = %v %q profile %q", p.Action, p.BootFile, p.Profile)
	}
	c.Menus.Default.Discovery.ListOnly = true
	if p := c.DecideMenu(efi, srv, nil); p.Menu == nil || !p.Menu.ListOnly {
		t.Fatalf("list-only menu: discovery not list-only: %+v", p.Menu)
	}
	// The script's path resolves to the script, whatever the machine's
	// loader, under the machine's token too.
	c.MachineToken = func(net.HardwareAddr) string { return "tok" }
	for _, name := range []string{"boot/52-54-00-ab-cd-ef/pxebs-32771.ipxe", "boot/52-54-00-ab-cd-ef/tok/pxebs-32771.ipxe"} {
		res := c.Resolve(name)
		if res.Kind != PathGenerated || res.Config.Discover != 0x8003 || Normalize(res.MAC) != "52:54:00:ab:cd:ef" {
			t.Fatalf("Resolve(%q) = %+v, want the discovery script of type 32771", name, res)
		}
		text, err := LoaderConfig(res.Profile, res.Config, name)
		if err != nil || !strings.Contains(text, "pxebs netX 896 ||") || !strings.Contains(text, "chain ${pxebs/filename}") {
			t.Fatalf("LoaderConfig = %q, %v; want pxebs of type 32771 byte-swapped (0x0380 = 896)", text, err)
		}
	}
}

func TestParseDiscoveryPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  uint16 // 0: not a discovery script
	}{
		{"boot/52-54-00-ab-cd-ef/pxebs-32770.ipxe", 32770},
		{"boot/52-54-00-ab-cd-ef/pxebs-1.ipxe", 1},
		{"boot/52-54-00-ab-cd-ef/pxebs-0.ipxe", 0},     // local boot: nothing to discover
		{"boot/52-54-00-ab-cd-ef/pxebs-65536.ipxe", 0}, // not a type
		{"boot/52-54-00-ab-cd-ef/pxebs-0012.ipxe", 0},  // one spelling per type
		{"boot/52-54-00-ab-cd-ef/pxebs-x.ipxe", 0},
		{"boot/52-54-00-ab-cd-ef/sub/pxebs-1.ipxe", 0},
		{"pxebs-1.ipxe", 0}, // no machine
	} {
		req, ok := ParseConfigPath(tc.name)
		if got := req.Discover; ok != (tc.typ != 0) || got != tc.typ {
			t.Errorf("ParseConfigPath(%q) = %+v %v, want type %d", tc.name, req, ok, tc.typ)
		}
	}
}
