package client

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/dhcp4"
	"pxed/internal/pxe"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x09, 0x01}

// TestPacketsIdentifyFirmware builds each profile's DISCOVER, sends it
// through the wire format and checks that pxed's server side recognises the
// firmware, architecture and UUID the profile claims.
func TestPacketsIdentifyFirmware(t *testing.T) {
	for _, name := range ProfileNames() {
		t.Run(name, func(t *testing.T) {
			p, err := ParseProfile(name)
			if err != nil {
				t.Fatal(err)
			}
			id := Identity{MAC: testMAC, UUID: UUIDFromMAC(testMAC)}
			d, err := NewDiscover(p, id, dhcpv4.TransactionID{1, 2, 3, 4})
			if err != nil {
				t.Fatal(err)
			}
			got, err := dhcpv4.FromBytes(d.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if got.MessageType() != dhcpv4.MessageTypeDiscover || !got.IsBroadcast() {
				t.Errorf("message type %s broadcast %v", got.MessageType(), got.IsBroadcast())
			}
			vc, ok := pxe.ParseVendorClass(got.ClassIdentifier())
			if !ok || vc.Arch != p.Arch || !vc.HasUNDI || vc.Kind != p.Kind {
				t.Errorf("option 60 %q: parsed %+v", got.ClassIdentifier(), vc)
			}
			m := dhcp4.Machine(got)
			want := boot.FirmwarePXE
			switch {
			case p.IPXE:
				want = boot.FirmwareIPXE
			case p.HTTPBoot():
				want = boot.FirmwareHTTP
			}
			if m.Firmware != want || !m.HasArch || pxe.Arch(m.Arch) != p.Arch || len(m.UUID) != 32 {
				t.Errorf("server sees %+v, want firmware %v arch %v and a UUID", m, want, p.Arch)
			}
			if ndi := got.Options.Get(dhcpv4.GenericOptionCode(optClientNDI)); !reflect.DeepEqual(ndi, []byte{1, byte(p.UNDIMajor), byte(p.UNDIMinor)}) {
				t.Errorf("option 94 = %v", ndi)
			}
			if !got.IsOptionRequested(dhcpv4.OptionBootfileName) {
				t.Errorf("option 55 does not ask for 67: %v", got.ParameterRequestList())
			}
		})
	}
	if _, err := ParseProfile("efi-mips"); err == nil || !strings.Contains(err.Error(), "efi-x64") {
		t.Errorf("ParseProfile(efi-mips) = %v, want an error listing the names", err)
	}
}

func TestBootRequest(t *testing.T) {
	p, _ := ParseProfile("efi-x64")
	id := Identity{MAC: testMAC}
	ci := net.IPv4(192, 0, 2, 150)
	for _, tc := range []struct {
		name string
		item *pxe.BootItem
	}{{"binl", nil}, {"menu-item", &pxe.BootItem{Type: 0x8000, Layer: 0}}} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewBootRequest(p, id, dhcpv4.TransactionID{9}, ci, tc.item)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := dhcpv4.FromBytes(r.ToBytes())
			if got.MessageType() != dhcpv4.MessageTypeRequest || !got.ClientIPAddr.Equal(ci) || got.IsBroadcast() {
				t.Errorf("type %s ciaddr %s broadcast %v", got.MessageType(), got.ClientIPAddr, got.IsBroadcast())
			}
			b := got.Options.Get(dhcpv4.GenericOptionCode(optVendorSpecific))
			if tc.item == nil {
				if b != nil {
					t.Errorf("BINL request carries option 43 %x", b)
				}
				return
			}
			vo, err := pxe.ParseVendorOptions(b)
			if err != nil || vo.BootItem == nil || *vo.BootItem != *tc.item {
				t.Errorf("option 43 boot item = %+v (%v), want %+v", vo.BootItem, err, tc.item)
			}
		})
	}
}

// offer builds a reply packet for the tables.
func offer(server string, yiaddr string, vendorClass string, file string, vo *pxe.VendorOptions) *dhcpv4.DHCPv4 {
	p, _ := dhcpv4.New(dhcpv4.WithHwAddr(testMAC), dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
	p.OpCode = dhcpv4.OpcodeBootReply
	p.UpdateOption(dhcpv4.OptServerIdentifier(net.ParseIP(server)))
	if yiaddr != "" {
		p.YourIPAddr = net.ParseIP(yiaddr)
	}
	if vendorClass != "" {
		p.UpdateOption(dhcpv4.OptClassIdentifier(vendorClass))
	}
	if file != "" {
		p.UpdateOption(dhcpv4.OptBootFileName(file))
	}
	if vo != nil {
		b, _ := vo.Marshal()
		p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optVendorSpecific), b))
	}
	return p
}

func offers(pkts ...*dhcpv4.DHCPv4) []Offer {
	var out []Offer
	for _, p := range pkts {
		out = append(out, NewOffer(p, netip.AddrPortFrom(addr(p.ServerIdentifier()), 67), 0))
	}
	return out
}

func TestNewOffer(t *testing.T) {
	useFile := &pxe.VendorOptions{HasDiscovery: true, DiscoveryControl: pxe.DiscoveryUseBootFile}
	o := NewOffer(offer("192.0.2.1", "", "PXEClient", "undionly.kpxe", useFile), netip.MustParseAddrPort("192.0.2.1:67"), 0)
	if o.Kind != "proxy" || o.Type != "ProxyPxe10" || o.BootFile != "undionly.kpxe" || o.PXE == nil || !o.PXE.HasDiscovery {
		t.Errorf("proxy offer summary = %+v", o)
	}
	p := offer("192.0.2.2", "192.0.2.100", "", "", nil)
	p.BootFileName = "pxelinux.0" // file field only
	p.ServerIPAddr = net.ParseIP("192.0.2.9")
	o = NewOffer(p, netip.MustParseAddrPort("192.0.2.2:67"), 0)
	if o.Kind != "dhcp" || o.Type != "DhcpOnly" || o.BootFile != "pxelinux.0" || o.NextServer != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("plain offer summary = %+v", o)
	}
	if got := nextServer(o); got != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("next server = %s", got)
	}
}

func TestSelectHTTPBoot(t *testing.T) {
	httpProf, _ := ParseProfile("efi-x64-http")
	pxeProf, _ := ParseProfile("efi-x64")
	dhcpOnly := offer("192.0.2.2", "192.0.2.100", "", "", nil)
	proxyURI := offer("192.0.2.1", "", "HTTPClient", "http://192.0.2.1:8080/files/ipxe.efi", nil)
	dhcpURI := offer("192.0.2.3", "192.0.2.101", "HTTPClient", "http://192.0.2.3/boot.efi", nil)
	proxyPXE := offer("192.0.2.1", "", "PXEClient", "", nil)
	for _, tc := range []struct {
		name       string
		prof       Profile
		in         []*dhcpv4.DHCPv4
		addr, boot int
	}{
		{"proxy URI + dhcp", httpProf, []*dhcpv4.DHCPv4{dhcpOnly, proxyURI}, 0, 1},
		{"dhcp with URI wins", httpProf, []*dhcpv4.DHCPv4{dhcpOnly, proxyURI, dhcpURI}, 2, 2},
		{"proxy only", httpProf, []*dhcpv4.DHCPv4{proxyURI}, -1, -1},
		{"dhcp without URI", httpProf, []*dhcpv4.DHCPv4{dhcpOnly, proxyPXE}, -1, -1},
		{"none", httpProf, nil, -1, -1},
		{"PXE profile uses EDK II order", pxeProf, []*dhcpv4.DHCPv4{dhcpOnly, proxyPXE}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Select(tc.prof, offers(tc.in...))
			if s.Address != tc.addr || s.Boot != tc.boot || s.Reason == "" {
				t.Errorf("Select = %+v, want address %d boot %d and a reason", s, tc.addr, tc.boot)
			}
		})
	}
}

func TestNeedsDiscovery(t *testing.T) {
	menu := &pxe.VendorOptions{HasDiscovery: true, DiscoveryControl: pxe.DiscoveryNoBroadcast | pxe.DiscoveryNoMulticast,
		BootServers: []pxe.BootServer{{Type: 0x8000, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.7")}}},
		Menu:        []pxe.MenuItem{{Type: 0x8000, Desc: "Network boot"}}}
	useFile := &pxe.VendorOptions{HasDiscovery: true, DiscoveryControl: pxe.DiscoveryUseBootFile}
	for _, tc := range []struct {
		name string
		o    *dhcpv4.DHCPv4
		need bool
		item *pxe.BootItem
		dst  string
	}{
		{"ProxyBinl asks its server, no item", offer("192.0.2.1", "", "PXEClient", "", nil), true, nil, "192.0.2.1:4011"},
		{"DhcpBinl with a file loads it", offer("192.0.2.1", "192.0.2.100", "PXEClient", "x.efi", nil), false, nil, ""},
		{"PXE10 use-boot-file loads it", offer("192.0.2.1", "", "PXEClient", "undionly.kpxe", useFile), false, nil, ""},
		{"PXE10 menu asks the listed server", offer("192.0.2.1", "", "PXEClient", "", menu), true, &pxe.BootItem{Type: 0x8000}, "192.0.2.7:4011"},
		{"DhcpOnly never", offer("192.0.2.2", "192.0.2.100", "", "f", nil), false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := offers(tc.o)[0]
			need, item, dst, _ := needsDiscovery(o)
			if need != tc.need || !reflect.DeepEqual(item, tc.item) || (tc.need && dst.String() != tc.dst) {
				t.Errorf("needsDiscovery = %v %+v %s, want %v %+v %s", need, item, dst, tc.need, tc.item, tc.dst)
			}
		})
	}
}

func TestOfferWarnings(t *testing.T) {
	a := offer("192.0.2.2", "192.0.2.100", "", "", nil)
	b := offer("192.0.2.3", "192.0.2.210", "", "", nil)
	px := offer("192.0.2.1", "", "PXEClient", "", nil)
	bad := offer("192.0.2.1", "", "PXEClient", "", nil)
	bad.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optVendorSpecific), []byte{6, 5, 1}))
	exp := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	for _, tc := range []struct {
		name   string
		in     []*dhcpv4.DHCPv4
		expect []netip.Addr
		want   []string
	}{
		{"one dhcp + proxy", []*dhcpv4.DHCPv4{a, px}, exp, nil},
		{"two dhcp servers", []*dhcpv4.DHCPv4{a, b, px}, nil, []string{WarnTwoDHCPServers}},
		{"same server twice is one", []*dhcpv4.DHCPv4{a, a}, nil, nil},
		{"unexpected server", []*dhcpv4.DHCPv4{a, b, px}, exp, []string{WarnUnexpectedServer, WarnTwoDHCPServers}},
		{"no expectation, no unexpected", []*dhcpv4.DHCPv4{b}, nil, nil},
		{"malformed option 43", []*dhcpv4.DHCPv4{a, bad}, nil, []string{WarnMalformedPXE}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, w := range OfferWarnings(offers(tc.in...), tc.expect) {
				got = append(got, w.Code)
				if w.Message == "" {
					t.Errorf("warning %s has no message", w.Code)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("warnings = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChainloadWarning(t *testing.T) {
	ipxe, _ := ParseProfile("ipxe-efi")
	efi, _ := ParseProfile("efi-x64")
	for _, tc := range []struct {
		prof Profile
		file string
		loop bool
	}{
		{ipxe, "snponly.efi", true},
		{ipxe, "undionly.kpxe", true},
		{ipxe, "http://192.0.2.1:8080/files/ipxe.efi?x=1", true},
		{ipxe, "http://192.0.2.1:8080/boot/52-54-00-00-09-01/script.ipxe", false},
		{ipxe, "boot.ipxe", false},
		{efi, "snponly.efi", false}, // firmware loading iPXE once is the point
	} {
		w, loop := ChainloadWarning(tc.prof, tc.file)
		if loop != tc.loop || (loop && w.Code != WarnChainloadLoop) {
			t.Errorf("ChainloadWarning(%s, %q) = %v %v, want %v", tc.prof.Name, tc.file, w, loop, tc.loop)
		}
	}
}

func TestParseScript(t *testing.T) {
	const base = "http://192.0.2.1:8080/boot/52-54-00-00-09-01/script.ipxe"
	for _, tc := range []struct {
		name  string
		text  string
		want  []ScriptFile
		boots bool
		err   string
	}{
		{"pxed script", "#!ipxe\necho hi\nkernel http://192.0.2.1:8080/boot/m/vmlinuz initrd=initrd.img console=ttyS0 || goto failed\n" +
			"initrd http://192.0.2.1:8080/boot/m/initrd.img || goto failed\nboot || goto failed\n:failed\nreboot\n",
			[]ScriptFile{
				{Command: "kernel", URL: "http://192.0.2.1:8080/boot/m/vmlinuz", Args: "initrd=initrd.img console=ttyS0"},
				{Command: "initrd", URL: "http://192.0.2.1:8080/boot/m/initrd.img"},
			}, true, ""},
		{"relative URLs and options", "#!ipxe\r\nkernel --name k vmlinuz quiet\r\nmodule -n rd ../initrd.img\r\nimgfetch /extra.cpio\r\nboot\r\n",
			[]ScriptFile{
				{Command: "kernel", URL: "http://192.0.2.1:8080/boot/52-54-00-00-09-01/vmlinuz", Args: "quiet"},
				{Command: "initrd", URL: "http://192.0.2.1:8080/boot/initrd.img"},
				{Command: "initrd", URL: "http://192.0.2.1:8080/extra.cpio"},
			}, true, ""},
		{"chain", "#!ipxe\nchain --autofree http://192.0.2.9/next.ipxe\n",
			[]ScriptFile{{Command: "chain", URL: "http://192.0.2.9/next.ipxe"}}, true, ""},
		{"variables are not expanded", "#!ipxe\nkernel http://${next-server}/vmlinuz\n",
			[]ScriptFile{{Command: "kernel", URL: "http://${next-server}/vmlinuz", Unresolved: true}}, false, ""},
		{"comments only", "#!ipxe\n# nothing\n\n", nil, false, ""},
		{"not a script", "MZ\x90\x00binary", nil, false, "not an iPXE script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseScript(tc.text, base)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Files, tc.want) || s.Boots != tc.boots {
				t.Errorf("ParseScript = %+v boots=%v\nwant %+v boots=%v", s.Files, s.Boots, tc.want, tc.boots)
			}
		})
	}
}

func TestIsNBP(t *testing.T) {
	for f, want := range map[string]bool{
		"snponly.efi": true, "undionly.kpxe": true, "pxelinux.0": true, "ipxe.pxe": true, "wdsnbp.com": true,
		"boot.ipxe": false, "script": false, "http://x/a.EFI": true, "http://x/s.ipxe?a.efi": false,
	} {
		if got := IsNBP(f); got != want {
			t.Errorf("IsNBP(%q) = %v, want %v", f, got, want)
		}
	}
}

func FuzzParseScript(f *testing.F) {
	f.Add("#!ipxe\nkernel vmlinuz a=b || goto x\ninitrd --name i ../i.img\nboot\n")
	f.Add("#!ipxe\nchain ${url}\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseScript(text, "http://192.0.2.1/a/b.ipxe")
		if err != nil {
			return
		}
		for _, sf := range s.Files {
			if sf.URL == "" || !loadCommands[sf.Command] {
				t.Errorf("file %+v from %q", sf, text)
			}
		}
	})
}
