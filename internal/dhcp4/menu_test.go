package dhcp4

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
	"pxed/internal/pxe"
)

// menuBoot is proxyConfig with a two-item menu and local boot.
func menuBoot() *boot.Config {
	c := proxyConfig()
	c.Profiles["rescue"] = boot.Profile{Kernel: "/srv/rescue"}
	c.Menus = &boot.Menus{Default: &boot.Menu{Prompt: "F8", Timeout: 3, Items: []boot.MenuItem{
		{Desc: "Default", Type: 0x8001, Profile: "default"},
		{Desc: "Rescue", Type: 0x8002, Profile: "rescue"},
		{Desc: "Local", Type: 0},
	}}}
	return c
}

func item71(typ, layer uint16) dhcpv4.Modifier {
	return gen(43, []byte{71, 4, byte(typ >> 8), byte(typ), byte(layer >> 8), byte(layer), 255})
}

// menu43 is the option 43 of an offer of menuBoot from 192.0.2.1: PXE 2.1
// table 2-1, unicast discovery only.
var menu43 = []byte{6, 1, 3,
	8, 14, 0x80, 0x01, 1, 192, 0, 2, 1, 0x80, 0x02, 1, 192, 0, 2, 1,
	9, 27, 0x80, 0x01, 7, 'D', 'e', 'f', 'a', 'u', 'l', 't', 0x80, 0x02, 6, 'R', 'e', 's', 'c', 'u', 'e', 0, 0, 5, 'L', 'o', 'c', 'a', 'l',
	10, 3, 3, 'F', '8', 255}

// menuCase is one request to a menu-serving Proxy and what it must answer
// (checkMenuResult).
type menuCase struct {
	name  string
	req   *dhcpv4.DHCPv4
	port  Port
	mt    dhcpv4.MessageType // 0: silence
	file  string
	opt43 []byte
	chose *boot.BootRequest
}

func TestRespondMenu(t *testing.T) {
	client := dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50))
	tests := []menuCase{
		{"EDK II DISCOVER: offer with the menu (a ProxyPxe10 offer)", edk2Discover(t), PortDHCP, dhcpv4.MessageTypeOffer, "snponly.efi", menu43, nil},
		{"BIOS PXE ROM DISCOVER: the menu, not discovery bit 3", biosDiscover(t), PortDHCP, dhcpv4.MessageTypeOffer, "undionly.kpxe", menu43, nil},
		{"iPXE ROM DISCOVER: the menu with its script URL", ipxeDiscover(t, true, true), PortDHCP, dhcpv4.MessageTypeOffer,
			"http://192.0.2.1:8080/boot/52-54-00-00-00-01/script.ipxe", menu43, nil},
		{"ProxyDHCP REQUEST on 4011 without 71: the menu again", withType(dhcpv4.MessageTypeRequest, biosDiscover(t, client)), PortBootServer,
			dhcpv4.MessageTypeAck, "undionly.kpxe", menu43, nil},
		// PXE 2.1 §2.2.5: the boot server request names type and layer.
		{"unicast boot server request for Rescue on 4011", withType(dhcpv4.MessageTypeRequest, edk2Discover(t, client, item71(0x8002, 0))), PortBootServer,
			dhcpv4.MessageTypeAck, "snponly.efi", []byte{71, 4, 0x80, 0x02, 0, 0, 255}, &boot.BootRequest{Type: 0x8002}},
		{"broadcast boot server request on 67 (ciaddr set): ACK", withType(dhcpv4.MessageTypeRequest, biosDiscover(t, client, item71(0x8001, 0))), PortDHCP,
			dhcpv4.MessageTypeAck, "undionly.kpxe", []byte{71, 4, 0x80, 0x01, 0, 0, 255}, &boot.BootRequest{Type: 0x8001}},
		{"iPXE ROM asks for Rescue: its script URL", withType(dhcpv4.MessageTypeRequest, ipxeDiscover(t, true, true, client, item71(0x8002, 0))), PortBootServer,
			dhcpv4.MessageTypeAck, "http://192.0.2.1:8080/boot/52-54-00-00-00-01/script.ipxe", []byte{71, 4, 0x80, 0x02, 0, 0, 255}, &boot.BootRequest{Type: 0x8002}},
		{"unknown type: silent", withType(dhcpv4.MessageTypeRequest, edk2Discover(t, client, item71(0x4242, 0))), PortBootServer, 0, "", nil, &boot.BootRequest{Type: 0x4242}},
		{"layer 1 that no item has: silent", withType(dhcpv4.MessageTypeRequest, edk2Discover(t, client, item71(0x8002, 1))), PortBootServer, 0, "", nil, &boot.BootRequest{Type: 0x8002, Layer: 1}},
		{"REQUEST on 67 with 71 but no ciaddr is the address server's", withType(dhcpv4.MessageTypeRequest, biosDiscover(t, item71(0x8001, 0))), PortDHCP, 0, "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := (&Proxy{Boot: menuBoot()}).Respond(Request{Packet: tc.req, Port: tc.port, Server: server})
			checkMenuResult(t, tc.req, res, tc.mt, tc.file, tc.opt43, tc.chose)
		})
	}
}

func checkMenuResult(t *testing.T, req *dhcpv4.DHCPv4, res Result, mt dhcpv4.MessageType, file string, opt43 []byte, chose *boot.BootRequest) {
	t.Helper()
	if chose != nil && (res.Plan.Menu == nil || res.Plan.Menu.Chosen == nil || *res.Plan.Menu.Chosen != *chose) {
		t.Fatalf("Plan.Menu = %+v, want the request %+v (%s)", res.Plan.Menu, *chose, res.Reason)
	}
	if mt == 0 {
		if res.Reply != nil {
			t.Fatalf("reply, want silence:\n%s", res.Reply.Summary())
		}
		return
	}
	if res.Reply == nil {
		t.Fatalf("no reply: %s", res.Reason)
	}
	r, err := dhcpv4.FromBytes(res.Reply.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if r.MessageType() != mt || r.BootFileNameOption() != file || r.TransactionID != req.TransactionID {
		t.Fatalf("reply %v file %q, want %v %q", r.MessageType(), r.BootFileNameOption(), mt, file)
	}
	if got := r.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, opt43) {
		t.Fatalf("option 43 = % x\nwant       % x", got, opt43)
	}
	if _, err := pxe.ParseVendorOptions(r.Options.Get(dhcpv4.OptionVendorSpecificInformation)); err != nil {
		t.Fatalf("option 43 does not decode: %v", err)
	}
}

// TestFullMenu is the server role: the offer with the address carries the
// menu, and a bound client's boot server requests, broadcast to 67 or
// unicast to 4011, are answered by the boot server, not as renewals.
func TestFullMenu(t *testing.T) {
	fx := newFullFixture(t, true)
	fx.full.Boot = menuBoot()
	res := fx.respond(t, biosDiscover(t))
	if res.Reply == nil || !bytes.Equal(res.Reply.Options.Get(dhcpv4.OptionVendorSpecificInformation), menu43) {
		t.Fatalf("server-role offer: %s, option 43 % x; want the menu", res.Reason, res.Reply.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}
	if res.Reply.YourIPAddr.Equal(net.IPv4zero) {
		t.Fatal("server-role offer without an address")
	}
	client := dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 100))
	for _, port := range []Port{PortDHCP, PortBootServer} {
		req := withType(dhcpv4.MessageTypeRequest, biosDiscover(t, client, item71(0x8002, 0)))
		res := fx.full.Respond(Request{Packet: req, Port: port, Server: server})
		checkMenuResult(t, req, res, dhcpv4.MessageTypeAck, "undionly.kpxe", []byte{71, 4, 0x80, 0x02, 0, 0, 255}, &boot.BootRequest{Type: 0x8002})
		if res.Plan.Profile != "rescue" {
			t.Fatalf("port %d: profile %q, want rescue", port, res.Plan.Profile)
		}
		if !res.Reply.YourIPAddr.Equal(net.IPv4zero) {
			t.Fatalf("port %d: boot server ACK with yiaddr %v", port, res.Reply.YourIPAddr)
		}
		if d := Destination(req, res.Reply, port, netip.MustParseAddrPort("192.0.2.100:68")); d.Addr.Addr() != netip.MustParseAddr("192.0.2.100") {
			t.Fatalf("port %d: reply to %v, want the client", port, d.Addr)
		}
	}
}

// FuzzBootServerRequest runs arbitrary option 43 contents through the
// boot server path (port 4011 and broadcast to 67) of a proxy with a menu:
// no panic, silence or an ACK whose sub-option 71 echoes the request's.
func FuzzBootServerRequest(f *testing.F) {
	for _, s := range [][]byte{
		{71, 4, 0x80, 0x02, 0, 0, 255},
		{71, 4, 0x80, 0x01, 0, 1},
		{71, 4, 0, 0, 0, 0},
		{71, 3, 1, 2, 3},
		{6, 1, 3, 71, 4, 0x80, 0x02, 0x80, 0},
		{9, 200},
		{},
	} {
		f.Add(s, true)
	}
	px := &Proxy{Boot: menuBoot()}
	f.Fuzz(func(t *testing.T, opt43 []byte, bootServer bool) {
		port := PortDHCP
		if bootServer {
			port = PortBootServer
		}
		req := withType(dhcpv4.MessageTypeRequest, edk2Discover(t, dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50)), gen(43, opt43)))
		res := px.Respond(Request{Packet: req, Port: port, Server: server})
		if res.Reply == nil {
			return
		}
		want, err := pxe.ParseBootItem(opt43)
		if err != nil {
			if port == PortDHCP {
				t.Fatalf("answered a DHCPREQUEST on 67 without a boot item: %s", res.Reason)
			}
			return // a ProxyDHCP request
		}
		got, err := pxe.ParseBootItem(res.Reply.Options.Get(dhcpv4.OptionVendorSpecificInformation))
		if err != nil || got != want {
			t.Fatalf("reply's boot item %+v, %v; request's %+v", got, err, want)
		}
		if want.Type != 0x8001 && want.Type != 0x8002 || want.Layer != 0 {
			t.Fatalf("answered type %d layer %d, which the menu does not serve", want.Type, want.Layer)
		}
	})
}

// TestArrival names how a boot server request reached the socket, from
// its destination address (PXE 2.1 §2.2.5: the discovery methods).
func TestArrival(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.1")
	for _, tc := range []struct {
		name string
		dst  string
		port Port
		want string
	}{
		{"unicast to 4011", "192.0.2.1", PortBootServer, ", request by unicast to port 4011"},
		{"broadcast to 67", "255.255.255.255", PortDHCP, ", request by broadcast to port 67"},
		{"directed broadcast to 67", "192.0.2.255", PortDHCP, ", request by broadcast to port 67"},
		{"multicast to 4011", "239.0.2.1", PortBootServer, ", request by multicast to 239.0.2.1:4011"},
		{"unknown destination", "", PortBootServer, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dst netip.Addr
			if tc.dst != "" {
				dst = netip.MustParseAddr(tc.dst)
			}
			if got := arrival(dst, ip, tc.port); got != tc.want {
				t.Errorf("arrival(%v) = %q, want %q", dst, got, tc.want)
			}
		})
	}
}

// TestRespondMenuLayer answers a request for a layer above 0 (PXE 2.1
// §2.2.5) with that layer's file, echoing type and layer. Neither firmware
// in the QEMU tests asks for one (iPXE's dhcp_pxebs_tx sends layer 0;
// EDK II's PxeBcDiscoverBootFile asks for EFI_PXE_BASE_CODE_BOOT_LAYER_INITIAL,
// and only an NBP calling EFI_PXE_BASE_CODE_PROTOCOL.Discover would ask
// for more): this test stands in for them.
func TestRespondMenuLayer(t *testing.T) {
	bc := menuBoot()
	bc.Menus.Default.Items[1].Layers = []string{"rescue/layer1"}
	client := dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50))
	for _, tc := range []struct {
		name  string
		layer uint16
		mt    dhcpv4.MessageType
		file  string
		opt43 []byte
	}{
		{"layer 0: the item's own file", 0, dhcpv4.MessageTypeAck, "snponly.efi", []byte{71, 4, 0x80, 0x02, 0, 0, 255}},
		{"layer 1: the item's first layer", 1, dhcpv4.MessageTypeAck, "rescue/layer1", []byte{71, 4, 0x80, 0x02, 0, 1, 255}},
		{"layer 2: beyond the item's layers, silent", 2, 0, "", nil},
		{"layer 1 with the credentials bit: silent", 1 | boot.LayerCredentials, 0, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := withType(dhcpv4.MessageTypeRequest, edk2Discover(t, client, item71(0x8002, tc.layer)))
			res := (&Proxy{Boot: bc}).Respond(Request{Packet: req, Port: PortBootServer, Server: server})
			checkMenuResult(t, req, res, tc.mt, tc.file, tc.opt43, &boot.BootRequest{Type: 0x8002, Layer: tc.layer})
		})
	}
}

// TestRespondBootServerOnly is dhcp mode boot-server: a boot server
// request is answered however it comes (PXE 2.1 §2.2.5: unicast or
// multicast to 4011, broadcast to 67 with sub-option 71), and nothing
// else on port 67 is: another server offers the menu.
func TestRespondBootServerOnly(t *testing.T) {
	client := dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50))
	rescue71 := []byte{71, 4, 0x80, 0x02, 0, 0, 255}
	tests := []menuCase{
		{"EDK II DISCOVER on 67: no ProxyDHCP offer", edk2Discover(t), PortDHCP, 0, "", nil, nil},
		{"iPXE DISCOVER on 67: no ProxyDHCP offer", ipxeDiscover(t, true, true), PortDHCP, 0, "", nil, nil},
		{"REQUEST on 67 without 71: none either", withType(dhcpv4.MessageTypeRequest, biosDiscover(t, client)), PortDHCP, 0, "", nil, nil},
		{"unicast boot server request on 4011: ACK", withType(dhcpv4.MessageTypeRequest, edk2Discover(t, client, item71(0x8002, 0))), PortBootServer,
			dhcpv4.MessageTypeAck, "snponly.efi", rescue71, &boot.BootRequest{Type: 0x8002}},
		{"broadcast boot server request on 67: ACK", withType(dhcpv4.MessageTypeRequest, biosDiscover(t, client, item71(0x8002, 0))), PortDHCP,
			dhcpv4.MessageTypeAck, "undionly.kpxe", rescue71, &boot.BootRequest{Type: 0x8002}},
		{"a type this server has no item of: silent", withType(dhcpv4.MessageTypeRequest, edk2Discover(t, client, item71(0x4242, 0))), PortBootServer, 0, "", nil,
			&boot.BootRequest{Type: 0x4242}},
		// iPXE's own discovery (pxebs, after another server's answer
		// named the item: TestRespondIPXEAfterMenu): the item's script.
		{"iPXE boot server request on 4011: the item's script URL", withType(dhcpv4.MessageTypeRequest, ipxeDiscover(t, true, true, client, item71(0x8002, 0))), PortBootServer,
			dhcpv4.MessageTypeAck, "http://192.0.2.1:8080/boot/52-54-00-00-00-01/script.ipxe", rescue71, &boot.BootRequest{Type: 0x8002}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := (&Proxy{Boot: menuBoot(), BootServerOnly: true}).Respond(Request{Packet: tc.req, Port: tc.port, Server: server})
			checkMenuResult(t, tc.req, res, tc.mt, tc.file, tc.opt43, tc.chose)
			if tc.mt == 0 && tc.chose == nil && !strings.Contains(res.Reason, "boot-server") {
				t.Fatalf("Reason = %q, want it to name mode boot-server", res.Reason)
			}
		})
	}
}

// TestRespondIPXEAfterMenu: an iPXE NBP asking DHCP after a menu choice
// another boot server answered gets its next stage, never the menu
// (iPXE would run its own menu: have_pxe_menu, pxe_menu_boot), at most
// the boot servers of the one item other hosts serve, for iPXE to ask.
func TestRespondIPXEAfterMenu(t *testing.T) {
	efiIPXE := func() *dhcpv4.DHCPv4 {
		return ipxeDiscover(t, true, true, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)))
	}
	useFile := []byte{6, 1, 8, 255} // discovery control bit 3: boot the file, no menu
	otherHost := func(ch boot.Chooser) *boot.Config {
		c := menuBoot()
		c.Menus.Default.Items[1].Servers = []netip.Addr{netip.MustParseAddr("192.0.2.3")}
		c.Menus.Choices = ch
		return c
	}
	twoHosts := func(ch boot.Chooser) *boot.Config {
		c := otherHost(ch)
		c.Menus.Default.Items[1].Servers = append(c.Menus.Default.Items[1].Servers, netip.MustParseAddr("192.0.2.4"))
		return c
	}
	shown := &boot.Choices{}
	shown.RememberShown("52:54:00:00:00:01")
	tests := []struct {
		name  string
		cfg   *boot.Config
		req   *dhcpv4.DHCPv4
		file  string
		opt43 []byte
	}{
		{"iPXE on UEFI: the other boot server's script, no menu", otherHost(nil), efiIPXE(),
			"http://192.0.2.3:8080/boot/52-54-00-00-00-01/script.ipxe", useFile},
		{"iPXE on UEFI, no other host: this server's script, no menu", menuBoot(), efiIPXE(),
			"http://192.0.2.1:8080/boot/52-54-00-00-00-01/script.ipxe", useFile},
		{"iPXE on BIOS after this server offered the PXE ROM the menu: no menu", otherHost(shown), ipxeDiscover(t, true, true),
			"http://192.0.2.3:8080/boot/52-54-00-00-00-01/script.ipxe", useFile},
		{"iPXE ROM on BIOS, nothing known: the menu", otherHost(&boot.Choices{}), ipxeDiscover(t, true, true),
			"http://192.0.2.1:8080/boot/52-54-00-00-00-01/script.ipxe", nil},
		// Rescue on two other hosts: iPXE runs the discovery itself
		// (its script's pxebs command, start_pxebs) from sub-options 6
		// and 8: unicast to Rescue's servers; no menu (have_pxe_menu).
		{"iPXE on UEFI, Rescue on two other hosts: discovery of Rescue", twoHosts(nil), efiIPXE(),
			"http://192.0.2.1:8080/boot/52-54-00-00-00-01/pxebs-32770.ipxe", []byte{6, 1, 3,
				8, 11, 0x80, 0x02, 2, 192, 0, 2, 3, 192, 0, 2, 4, 255}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := (&Proxy{Boot: tc.cfg}).Respond(Request{Packet: tc.req, Port: PortDHCP, Server: server})
			opt43 := tc.opt43
			if res.Reply == nil {
				t.Fatalf("no reply: %s", res.Reason)
			}
			if opt43 == nil { // the menu, with 192.0.2.3 as Rescue's boot server
				v, err := pxe.ParseVendorOptions(res.Reply.Options.Get(dhcpv4.OptionVendorSpecificInformation))
				if err != nil || len(v.Menu) != 3 {
					t.Fatalf("option 43 %+v (%v), want the menu", v, err)
				}
				opt43 = res.Reply.Options.Get(dhcpv4.OptionVendorSpecificInformation)
			}
			checkMenuResult(t, tc.req, res, dhcpv4.MessageTypeOffer, tc.file, opt43, nil)
		})
	}
}
