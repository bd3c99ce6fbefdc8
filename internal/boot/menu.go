package boot

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// PXE boot menus and boot server discovery (PXE 2.1 §2.2.5, §2.4 table
// 2-1, sub-options 6–10 and 71 of option 43). The firmware shows the menu
// of the offer, the user (or the prompt's timeout) picks an item, and the
// firmware asks a boot server for that item's boot file with a DHCPREQUEST
// naming the item's boot server type and a layer (sub-option 71), unicast
// or multicast to port 4011 or broadcast to port 67. This file decides
// both answers; package pxe encodes them.

// Menu is one PXE boot menu with its prompt and how clients discover the
// boot servers of its items.
type Menu struct {
	// Prompt is the text shown while the firmware waits for a key
	// (PXE_MENU_PROMPT), e.g. "Press F8 for the boot menu".
	Prompt string
	// Timeout is the prompt's timeout in seconds (PXE 2.1 table 2-1):
	// 0 shows no prompt and boots the first item at once, 255 shows the
	// menu at once and waits for a choice, anything else shows the
	// prompt that long and boots the first item unless a key is pressed.
	Timeout uint8
	// Items are the menu's entries in display order. The first is the
	// default: firmware boots it when the prompt times out.
	Items []MenuItem
	// Discovery says how clients may reach the boot servers.
	Discovery Discovery
	// MulticastAddr is the discovery multicast address
	// (DISCOVERY_MCAST_ADDR), used when Discovery.Multicast is set.
	MulticastAddr netip.Addr
}

// MenuItem is one entry of a Menu.
type MenuItem struct {
	Desc string // what the firmware shows
	// Type is the boot server type the firmware asks for when the item
	// is chosen; 0 is local boot (the firmware leaves the network and
	// goes on to its next boot device). Unique within a menu.
	Type uint16
	// Profile is the profile the item boots; "" is the machine's own.
	Profile string
	// BootFile is an NBP (a TFTP path) the item boots instead of its
	// profile's boot file.
	BootFile string
	// Layers are the boot files of layers 1, 2, … of the item: an NBP
	// may ask the boot server for further layers of its type (PXE 2.1
	// §2.2.5); layer 0 is the item's own boot file.
	Layers []string
	// Servers are the boot servers of the item's type (PXE_BOOT_SERVERS),
	// which may be other hosts; empty means the server answering.
	Servers []netip.Addr
}

// Local reports whether the item is local boot (type 0).
func (it MenuItem) Local() bool { return it.Type == 0 }

// Discovery is how a client looks for boot servers (PXE_DISCOVERY_CONTROL,
// sub-option 6). The zero value discovers by unicast only, which every
// firmware supports.
type Discovery struct {
	Broadcast bool // DHCPREQUEST broadcast to port 67
	Multicast bool // DHCPREQUEST to Menu.MulticastAddr, port 4011
	// NoUnicast leaves out the boot server list (sub-option 8): clients
	// then discover by broadcast or multicast only.
	NoUnicast bool
	// ListOnly: accept answers only from the listed boot servers.
	ListOnly bool
}

// Menus is where the menus of Config come from: a profile's menu, else
// the menu of the interface the request came in on, else Default.
type Menus struct {
	Default   *Menu
	ByProfile map[string]*Menu     // profile name → menu
	ByServer  map[netip.Addr]*Menu // the receiving interface's address → menu
	// Choices remembers the item each machine chose, so that the NBP it
	// loads (iPXE asking DHCP again, then HTTP for script, kernel and
	// initrds) boots that item's profile. nil remembers nothing.
	Choices Chooser
}

// Chooser tells which profile a machine chose in a boot menu lately, and
// whether this server offered a menu to its PXE firmware (not iPXE) lately.
type Chooser interface {
	Chosen(mac string) (profile string, ok bool)
	Shown(mac string) bool
}

// BootRequest is what a boot server discovery request asks for
// (PXE_BOOT_ITEM, sub-option 71): a boot server type and a layer.
type BootRequest struct {
	Type  uint16
	Layer uint16
}

// LayerCredentials is the layer bit that asks for BIS credentials
// (PXE 2.1 §2.2.5); pxed serves no credentials.
const LayerCredentials = 0x8000

// MenuPlan is the menu part of a Plan. In an offer (Chosen nil) it is
// the menu to show and how to discover its boot servers; in the answer
// to a boot server request it is the item chosen and its layer. With
// neither Items nor Chosen it is the boot servers of one item (Item) that
// iPXE discovers itself (discoverOthers).
type MenuPlan struct {
	Prompt  string
	Timeout uint8
	Items   []MenuEntry // display order; the first is the default
	// Discovery control bits (PXE 2.1 table 2-1), as booleans.
	NoBroadcast, NoMulticast, ListOnly bool
	MulticastAddr                      netip.Addr    // zero when multicast is off
	Servers                            []ServerEntry // sub-option 8; empty when unicast is off

	// Chosen is the request answered (sub-option 71, echoed in the
	// reply); nil in an offer.
	Chosen *BootRequest
	// Item is the chosen item's description, "" when the menu has no
	// item of Chosen.Type; the item discovered when Items is empty.
	Item string
	// Profile is the profile the chosen item boots.
	Profile string
}

// MenuEntry is one item as the firmware sees it (PXE_BOOT_MENU).
type MenuEntry struct {
	Type uint16
	Desc string
}

// ServerEntry is the boot servers of one type (PXE_BOOT_SERVERS).
type ServerEntry struct {
	Type  uint16
	Addrs []netip.Addr
}

// menuFor returns the menu that applies to m on server s, nil when none.
func (c *Config) menuFor(m Machine, s Server) *Menu {
	ms := c.Menus
	if ms == nil {
		return nil
	}
	// The menu of the profile the machine is given (runtime assignment,
	// selectors and all, as Decide resolves it), not of one it chose in a
	// menu: the firmware shows the same menu again.
	key := Normalize(m.MAC)
	e, _ := c.lookup(key)
	name := c.assignedName(key, e, m.Class, CanonicalUUID(m.UUID))
	if mn := ms.ByProfile[name]; mn != nil {
		return mn
	}
	if mn := ms.ByServer[s.IP.Unmap()]; mn != nil {
		return mn
	}
	return ms.Default
}

// chosen returns the profile mac chose in a menu lately.
func (c *Config) chosen(mac string) (string, bool) {
	if c.Menus == nil || c.Menus.Choices == nil {
		return "", false
	}
	return c.Menus.Choices.Chosen(mac)
}

// shown reports whether this server offered mac's PXE firmware a menu lately.
func (c *Config) shown(mac string) bool {
	return c.Menus != nil && c.Menus.Choices != nil && c.Menus.Choices.Shown(mac)
}

// DecideMenu is Decide with boot menus. req is the item a boot server
// discovery request asks for (sub-option 71), nil for any other request.
//
// Without req: a PXE ROM (or iPXE that has not chosen yet) whose menu
// applies gets Decide's plan with the menu added (Plan.Menu); UEFI HTTP
// boot and iPXE after a choice get Decide's plan alone.
//
// With req: the plan is the chosen item's boot file for the requested
// layer, or Ignore when the menu has no such item or layer: a boot server
// that does not serve a type stays silent, so that others may answer
// (PXE 2.1 §2.2.5). Without any menu, req is echoed on Decide's plan.
func (c *Config) DecideMenu(m Machine, s Server, req *BootRequest) Plan {
	menu := c.menuFor(m, s)
	if req == nil {
		plan := c.Decide(m, s)
		if plan.Action == Ignore || menu == nil || m.Firmware == FirmwareHTTP {
			return plan
		}
		if m.Firmware == FirmwareIPXE {
			if p, done := c.ipxeAfterMenu(m, s, menu, plan); done {
				return p
			}
		}
		plan.Menu = offerPlan(menu, s)
		plan.Reason += fmt.Sprintf("; boot menu of %d items", len(menu.Items))
		return plan
	}
	if menu == nil {
		plan := c.Decide(m, s)
		if plan.Action != Ignore {
			plan.Menu = &MenuPlan{Chosen: req}
		}
		return plan
	}
	mp := &MenuPlan{Chosen: req}
	var item *MenuItem
	for i := range menu.Items {
		if menu.Items[i].Type == req.Type {
			item = &menu.Items[i]
			break
		}
	}
	switch {
	case item == nil:
		return Plan{Menu: mp, Reason: fmt.Sprintf("boot server request for type %d: no such item in the menu", req.Type)}
	case item.Local():
		mp.Item = item.Desc
		return Plan{Menu: mp, Reason: fmt.Sprintf("boot server request for type 0 (%q): local boot is not served", item.Desc)}
	case req.Layer&LayerCredentials != 0:
		mp.Item = item.Desc
		return Plan{Menu: mp, Reason: fmt.Sprintf("boot server request for type %d layer %d with credentials: pxed serves no BIS credentials", req.Type, req.Layer&^LayerCredentials)}
	case int(req.Layer) > len(item.Layers):
		mp.Item = item.Desc
		return Plan{Menu: mp, Reason: fmt.Sprintf("boot server request for type %d (%q) layer %d: the item has %d layers", req.Type, item.Desc, req.Layer, len(item.Layers)+1)}
	}
	mp.Item = item.Desc
	plan := c.itemPlan(m, s, *item)
	mp.Profile = plan.Profile
	plan.Menu = mp
	if plan.Action == Ignore {
		return plan
	}
	if req.Layer > 0 {
		plan.Action, plan.BootFile = ServeNBP, item.Layers[req.Layer-1]
	}
	plan.Reason = fmt.Sprintf("menu item %q (type %d, layer %d): %s", item.Desc, req.Type, req.Layer, plan.Reason)
	return plan
}

// ipxeAfterMenu is the answer to an iPXE DHCP request (no sub-option 71)
// when a menu applies, and whether it is final; not final: iPXE gets
// plan with the menu, as a PXE ROM does.
//
// iPXE asks DHCP in two roles: as the NIC's ROM (SeaBIOS + iPXE), which
// shows the menu itself (pxe_menu_boot) and must get it, and as the NBP a
// boot server handed out for the item a PXE firmware chose (snponly.efi,
// ipxe.efi, undionly.kpxe), which must never get it again: iPXE would
// run its own menu then (it prints "Booting from PXE menu") instead of
// booting the item. Whichever server answers must give the NBP its next stage:
//
//   - a choice this server answered (Chosen): the chosen profile's
//     script (HTTP serves it: ProfileFor knows the choice);
//   - iPXE as an NBP, known as such because it runs on UEFI (an EFI
//     class: on UEFI the firmware's own PXE shows menus, iPXE's NIC ROM
//     is only a network driver under it) or because this server offered
//     the menu to the machine's PXE firmware lately (Shown): the choice
//     was answered by another boot server (discoverOthers says what
//     the NBP boots then);
//   - else iPXE is the ROM (on BIOS nothing in its request tells the ROM
//     from undionly.kpxe): the menu.
func (c *Config) ipxeAfterMenu(m Machine, s Server, menu *Menu, plan Plan) (Plan, bool) {
	mac := Normalize(m.MAC)
	if _, ok := c.chosen(mac); ok {
		plan.Reason += " (menu item chosen)"
		return plan, true
	}
	if !strings.HasPrefix(m.Class, "efi-") && !c.shown(mac) {
		return plan, false
	}
	return c.discoverOthers(m, s, menu, plan), true
}

// discoverOthers is the answer to iPXE, the NBP of an item a boot server
// on another host answered, from a server that did not see the choice.
// iPXE's request says nothing of the item chosen, so:
//
//   - the menu names one other host: that host's script URL (the host
//     remembers the choice, so its script boots the chosen item's
//     profile; forgotten or never chosen there, the machine's own
//     profile, which is this server's answer too, the configurations
//     being the same);
//   - several other hosts, all serving one item: a script that makes
//     iPXE discover that item's boot servers itself (DiscoveryScript,
//     with discoveryPlan's option 43), so that whichever of them answers
//     boots it: the request names the item's type, which each of them
//     serves;
//   - several other hosts serving items of several types: which item was
//     chosen cannot be told from here, and a menu of those items would
//     make iPXE boot the first or ask the user again: the machine's own
//     profile's script from this server.
func (c *Config) discoverOthers(m Machine, s Server, menu *Menu, plan Plan) Plan {
	self := s.IP.Unmap()
	others := otherServers(menu, self)
	if len(others) == 1 && plan.Action == ServeScript {
		o := c.serverFor(m, s)
		o.IP = others[0]
		plan.BootFile = ScriptURL(o, m.MAC)
		plan.Reason = fmt.Sprintf("iPXE after a menu choice this server did not answer: the script of boot server %s, which did", others[0])
		return plan
	}
	if it, ok := otherItem(menu, self); ok && len(others) > 1 && plan.Action == ServeScript {
		plan.Menu = discoveryPlan(menu, it)
		plan.BootFile = DiscoveryURL(c.serverFor(m, s), m.MAC, it.Type)
		plan.Reason = fmt.Sprintf("iPXE after a menu choice this server did not answer: discovery of item %q (type %d) from its boot servers %v, by its script", it.Desc, it.Type, it.Servers)
		return plan
	}
	plan.Reason += " (iPXE after a menu choice this server did not answer: the machine's own profile, no menu)"
	return plan
}

// otherItem is the one item of menu served by hosts other than self, and
// whether there is exactly one.
func otherItem(menu *Menu, self netip.Addr) (MenuItem, bool) {
	var found []MenuItem
	for _, it := range menu.Items {
		if !it.Local() && slices.ContainsFunc(it.Servers, func(a netip.Addr) bool { return a.Unmap() != self }) {
			found = append(found, it)
		}
	}
	if len(found) != 1 {
		return MenuItem{}, false
	}
	return found[0], true
}

// discoveryPlan is the option 43 iPXE needs to discover the boot servers
// of item (its DiscoveryScript runs the pxebs command): the item's boot
// servers (sub-option 8) and discovery control, unicast only (only those
// servers serve it), list-only as the menu says. No menu (sub-option 9):
// iPXE would run a PXE menu (have_pxe_menu), which its EFI builds do not
// have (pxemenu.c is built for BIOS only: pxe_menu_boot fails with
// ENOTSUP, "Booting from PXE menu" then "No more network devices"). A
// sub-option 71 in this answer would do nothing: iPXE reads it only in
// boot server ACKs.
func discoveryPlan(menu *Menu, item MenuItem) *MenuPlan {
	return &MenuPlan{
		NoBroadcast: true, NoMulticast: true, ListOnly: menu.Discovery.ListOnly,
		Servers: []ServerEntry{{Type: item.Type, Addrs: slices.Clone(item.Servers)}},
		Item:    item.Desc,
	}
}

// otherServers are the boot servers the items of menu name, other than self.
func otherServers(menu *Menu, self netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, it := range menu.Items {
		if it.Local() {
			continue
		}
		for _, a := range it.Servers {
			a = a.Unmap()
			if a != self && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// itemPlan is what item boots on m: its boot file, else Decide's plan
// for its profile (the machine's own when it names none).
func (c *Config) itemPlan(m Machine, s Server, item MenuItem) Plan {
	name := item.Profile
	if name == "" {
		if p, ok := c.ProfileFor(m.MAC); ok {
			name = p.Name
		}
	}
	if item.BootFile != "" {
		return Plan{Action: ServeNBP, BootFile: item.BootFile, VendorClass: "PXEClient", Profile: name, Reason: "NBP " + item.BootFile}
	}
	one := *c
	one.Menus = nil // the item decides, not an earlier choice
	one.Machines = map[string]string{Normalize(m.MAC): name}
	return one.Decide(m, s)
}

// offerPlan is the menu of an offer: its items, prompt, discovery control
// and the boot servers of every item type that is not local boot (EDK II
// discovers by unicast only to a type the list names: PxeBcExtractDiscoverInfo).
func offerPlan(menu *Menu, s Server) *MenuPlan {
	d := menu.Discovery
	mp := &MenuPlan{Prompt: menu.Prompt, Timeout: menu.Timeout,
		NoBroadcast: !d.Broadcast, NoMulticast: !d.Multicast || !menu.MulticastAddr.IsValid(), ListOnly: d.ListOnly}
	if !mp.NoMulticast {
		mp.MulticastAddr = menu.MulticastAddr
	}
	for _, it := range menu.Items {
		mp.Items = append(mp.Items, MenuEntry{Type: it.Type, Desc: it.Desc})
		if it.Local() || d.NoUnicast {
			continue
		}
		addrs := it.Servers
		if len(addrs) == 0 {
			addrs = []netip.Addr{s.IP.Unmap()}
		}
		mp.Servers = append(mp.Servers, ServerEntry{Type: it.Type, Addrs: addrs})
	}
	return mp
}

// DefaultChoiceTTL is how long Choices remembers a choice when its TTL is 0.
const DefaultChoiceTTL = 10 * time.Minute

// Choices remembers, for TTL, the menu item each machine chose (MAC →
// profile) and the machines whose PXE firmware was offered a menu, for
// Config.Menus.Choices. It is safe for concurrent use; the zero value is
// ready.
type Choices struct {
	TTL time.Duration    // 0 means DefaultChoiceTTL
	Now func() time.Time // nil means time.Now

	mu    sync.Mutex
	m     map[string]choice
	shown map[string]choice // profile ""
}

type choice struct {
	profile string
	at      time.Time
}

// maxChoices bounds the memory a flood of made-up MACs can take (each map).
const maxChoices = 1 << 16

func (ch *Choices) now() time.Time {
	if ch.Now != nil {
		return ch.Now()
	}
	return time.Now()
}

func (ch *Choices) ttl() time.Duration {
	if ch.TTL > 0 {
		return ch.TTL
	}
	return DefaultChoiceTTL
}

// Remember records that mac chose an item booting profile.
func (ch *Choices) Remember(mac, profile string) { ch.put(&ch.m, mac, profile) }

// RememberShown records that this server offered mac's PXE firmware (not
// iPXE) a boot menu: an iPXE that asks next from that machine is the NBP
// of the item chosen (Config.DecideMenu).
func (ch *Choices) RememberShown(mac string) { ch.put(&ch.shown, mac, "") }

// Chosen implements Chooser.
func (ch *Choices) Chosen(mac string) (string, bool) { return ch.get(&ch.m, mac) }

// Shown implements Chooser.
func (ch *Choices) Shown(mac string) bool {
	_, ok := ch.get(&ch.shown, mac)
	return ok
}

func (ch *Choices) put(mp *map[string]choice, mac, profile string) {
	now := ch.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if *mp == nil {
		*mp = map[string]choice{}
	}
	m := *mp
	if _, ok := m[mac]; !ok && len(m) >= maxChoices {
		for k, v := range m {
			if now.Sub(v.at) > ch.ttl() {
				delete(m, k)
			}
		}
		if len(m) >= maxChoices {
			return
		}
	}
	m[mac] = choice{profile, now}
}

func (ch *Choices) get(mp *map[string]choice, mac string) (string, bool) {
	now := ch.now()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	m := *mp
	c, ok := m[mac]
	if !ok {
		return "", false
	}
	if now.Sub(c.at) > ch.ttl() {
		delete(m, mac)
		return "", false
	}
	return c.profile, true
}
