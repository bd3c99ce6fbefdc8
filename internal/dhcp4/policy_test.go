package dhcp4

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
)

func TestRespond(t *testing.T) {
	bootItem := []byte{71, 4, 0x80, 0x00, 0x00, 0x00, 255}
	opt43Boot := []byte{6, 1, 8, 255} // PXE 2.1 §2.4 discovery control bit 3: use the boot file
	scriptBIOS := "http://192.0.2.1:8080/boot/52-54-00-00-00-01/script.ipxe"

	tests := []struct {
		name   string
		req    *dhcpv4.DHCPv4
		port   Port
		reason string // substring of Result.Reason
		// when a reply is expected:
		mt     dhcpv4.MessageType
		file   string
		class  string
		opt43  []byte // nil: option 43 must be absent
		fw     boot.Firmware
		action boot.Action
	}{
		{"EDK II DISCOVER: ProxyBinl offer, no option 43 (PXE 2.1 §2.2.3)", edk2Discover(t), PortDHCP, "efi-x64 PXE",
			dhcpv4.MessageTypeOffer, "snponly.efi", "PXEClient", nil, boot.FirmwarePXE, boot.ServeNBP},
		{"EDK II arch 9 DISCOVER gets the x64 NBP", edk2Discover(t, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_BC))), PortDHCP, "efi-x64",
			dhcpv4.MessageTypeOffer, "snponly.efi", "PXEClient", nil, boot.FirmwarePXE, boot.ServeNBP},
		{"legacy BIOS PXE ROM arch 0: undionly.kpxe, option 43 {6: 8}", biosDiscover(t), PortDHCP, "bios PXE",
			dhcpv4.MessageTypeOffer, "undionly.kpxe", "PXEClient", opt43Boot, boot.FirmwarePXE, boot.ServeNBP},
		{"arch from option 60 when option 93 is missing", biosDiscover(t, dhcpv4.WithoutOption(dhcpv4.OptionClientSystemArchitectureType)), PortDHCP, "bios",
			dhcpv4.MessageTypeOffer, "undionly.kpxe", "PXEClient", opt43Boot, boot.FirmwarePXE, boot.ServeNBP},
		{"SeaBIOS iPXE, RFC 3004 user class and 175: script URL", ipxeDiscover(t, true, true), PortDHCP, "iPXE",
			dhcpv4.MessageTypeOffer, scriptBIOS, "PXEClient", opt43Boot, boot.FirmwareIPXE, boot.ServeScript},
		{"iPXE with plain user class only: script URL", ipxeDiscover(t, false, false), PortDHCP, "iPXE",
			dhcpv4.MessageTypeOffer, scriptBIOS, "PXEClient", opt43Boot, boot.FirmwareIPXE, boot.ServeScript},
		{"iPXE with option 175 only: script URL", biosDiscover(t, gen(175, []byte{0x13, 1, 1})), PortDHCP, "iPXE",
			dhcpv4.MessageTypeOffer, scriptBIOS, "PXEClient", opt43Boot, boot.FirmwareIPXE, boot.ServeScript},
		{"iPXE on UEFI: script URL, not the NBP", edk2Discover(t, dhcpv4.WithUserClass("iPXE", true)), PortDHCP, "iPXE",
			dhcpv4.MessageTypeOffer, "http://192.0.2.1:8080/boot/52-54-00-00-00-07/script.ipxe", "PXEClient", opt43Boot, boot.FirmwareIPXE, boot.ServeScript},
		{"UEFI 2.10 §24.7 HTTP boot arch 16: URL and HTTPClient", discover(t, macEFI,
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003000")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP)), gen(97, uuidOpt)), PortDHCP, "HTTP",
			dhcpv4.MessageTypeOffer, "http://192.0.2.1:8080/files/snponly.efi", "HTTPClient", nil, boot.FirmwareHTTP, boot.ServeURL},
		{"PXE 2.1 §2.2.5 REQUEST on 4011: ACK with boot file, sub-option 71 echoed",
			withType(dhcpv4.MessageTypeRequest, edk2Discover(t, gen(43, bootItem), dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50)))), PortBootServer, "efi-x64",
			dhcpv4.MessageTypeAck, "snponly.efi", "PXEClient", bootItem, boot.FirmwarePXE, boot.ServeNBP},
		{"REQUEST on 4011 without option 43: ACK without option 43",
			withType(dhcpv4.MessageTypeRequest, edk2Discover(t)), PortBootServer, "efi-x64",
			dhcpv4.MessageTypeAck, "snponly.efi", "PXEClient", nil, boot.FirmwarePXE, boot.ServeNBP},
		{"REQUEST on 4011 with a malformed sub-option 71: silent",
			withType(dhcpv4.MessageTypeRequest, edk2Discover(t, gen(43, []byte{71, 9, 1}))), PortBootServer, "malformed boot item",
			0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"REQUEST on 4011 with option 43 truncated before any 71: silent (what it asks is unknown)",
			withType(dhcpv4.MessageTypeRequest, edk2Discover(t, gen(43, []byte{9, 9, 1}))), PortBootServer, "truncated",
			0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"INFORM on 4011: ACK", withType(dhcpv4.MessageTypeInform, biosDiscover(t, dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 51)))), PortBootServer, "bios",
			dhcpv4.MessageTypeAck, "undionly.kpxe", "PXEClient", nil, boot.FirmwarePXE, boot.ServeNBP},
		{"relayed DISCOVER (giaddr): offer", edk2Discover(t, dhcpv4.WithRelay(relay)), PortDHCP, "efi-x64",
			dhcpv4.MessageTypeOffer, "snponly.efi", "PXEClient", nil, boot.FirmwarePXE, boot.ServeNBP},
		{"relayed BIOS DISCOVER: offer with option 43", biosDiscover(t, dhcpv4.WithRelay(relay)), PortDHCP, "bios",
			dhcpv4.MessageTypeOffer, "undionly.kpxe", "PXEClient", opt43Boot, boot.FirmwarePXE, boot.ServeNBP},

		// Ignored.
		{"plain non-PXE DISCOVER ignored", discover(t, macBIOS), PortDHCP, "not a PXE client", 0, "", "", nil, boot.FirmwareUnknown, boot.Ignore},
		{"non-PXE vendor class ignored", discover(t, macBIOS, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0"))), PortDHCP, "not a PXE client", 0, "", "", nil, boot.FirmwareUnknown, boot.Ignore},
		{"PXE 2.1 §2.2.3 REQUEST on 67 is for the address server", withType(dhcpv4.MessageTypeRequest, edk2Discover(t)), PortDHCP,
			"DHCPREQUEST on port 67", 0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"INFORM on 67 ignored", withType(dhcpv4.MessageTypeInform, edk2Discover(t)), PortDHCP, "not answered by ProxyDHCP", 0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"DISCOVER on 4011 ignored", edk2Discover(t), PortBootServer, "not answered by ProxyDHCP", 0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"RELEASE ignored", withType(dhcpv4.MessageTypeRelease, edk2Discover(t)), PortDHCP, "not answered", 0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"unknown arch 42 ignored with reason", biosDiscover(t, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(42)))), PortDHCP,
			"no boot file for architecture unknown (option 93 42)", 0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"arm64 without an arm64 NBP ignored", discover(t, macARM, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00011:UNDI:003016")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_ARM64))), PortDHCP, "efi-arm64", 0, "", "", nil, boot.FirmwarePXE, boot.Ignore},
		{"BOOTREPLY dropped", func() *dhcpv4.DHCPv4 { p := biosDiscover(t); p.OpCode = dhcpv4.OpcodeBootReply; return p }(), PortDHCP,
			"not a BOOTREQUEST", 0, "", "", nil, boot.FirmwareUnknown, boot.Ignore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			px := &Proxy{Boot: proxyConfig()}
			res := px.Respond(Request{Packet: tc.req, Port: tc.port, Server: server})
			if !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("Reason %q does not contain %q", res.Reason, tc.reason)
			}
			if res.Machine.Firmware != tc.fw || res.Plan.Action != tc.action {
				t.Fatalf("firmware %v action %v, want %v %v", res.Machine.Firmware, res.Plan.Action, tc.fw, tc.action)
			}
			if tc.mt == 0 {
				if res.Reply != nil {
					t.Fatalf("got a reply, want silence:\n%s", res.Reply.Summary())
				}
				return
			}
			if res.Reply == nil {
				t.Fatalf("no reply: %s", res.Reason)
			}
			// Decode what would go on the wire.
			r, err := dhcpv4.FromBytes(res.Reply.ToBytes())
			if err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			checkReply(t, tc.req, r, tc.mt, tc.file, tc.class, tc.opt43)
		})
	}
}

func checkReply(t *testing.T, req, r *dhcpv4.DHCPv4, mt dhcpv4.MessageType, file, class string, opt43 []byte) {
	t.Helper()
	if r.OpCode != dhcpv4.OpcodeBootReply {
		t.Errorf("op = %v, want BOOTREPLY", r.OpCode)
	}
	if r.MessageType() != mt {
		t.Errorf("message type %v, want %v", r.MessageType(), mt)
	}
	if r.TransactionID != req.TransactionID || !bytes.Equal(r.ClientHWAddr, req.ClientHWAddr) {
		t.Errorf("xid/chaddr %v %s, want %v %s", r.TransactionID, r.ClientHWAddr, req.TransactionID, req.ClientHWAddr)
	}
	if !r.YourIPAddr.Equal(net.IPv4zero) {
		t.Errorf("yiaddr = %v, want 0.0.0.0 (ProxyDHCP assigns no address)", r.YourIPAddr)
	}
	if !r.ServerIPAddr.Equal(net.IPv4(192, 0, 2, 1)) {
		t.Errorf("siaddr = %v, want 192.0.2.1", r.ServerIPAddr)
	}
	if !r.GatewayIPAddr.Equal(req.GatewayIPAddr) {
		t.Errorf("giaddr = %v, want the request's %v", r.GatewayIPAddr, req.GatewayIPAddr)
	}
	if !r.ClientIPAddr.Equal(req.ClientIPAddr) {
		t.Errorf("ciaddr = %v, want the request's %v", r.ClientIPAddr, req.ClientIPAddr)
	}
	if r.IsBroadcast() != req.IsBroadcast() {
		t.Errorf("broadcast flag %v, want the request's %v", r.IsBroadcast(), req.IsBroadcast())
	}
	if id := r.ServerIdentifier(); !id.Equal(net.IPv4(192, 0, 2, 1)) {
		t.Errorf("option 54 = %v, want 192.0.2.1", id)
	}
	if got := r.ClassIdentifier(); got != class {
		t.Errorf("option 60 = %q, want %q", got, class)
	}
	if want := req.Options.Get(dhcpv4.GenericOptionCode(97)); want != nil {
		if got := r.Options.Get(dhcpv4.GenericOptionCode(97)); !bytes.Equal(got, want) {
			t.Errorf("option 97 = % x, want the request's % x", got, want)
		}
	}
	if got := r.BootFileNameOption(); got != file {
		t.Errorf("option 67 = %q, want %q", got, file)
	}
	if r.BootFileName != file {
		t.Errorf("file = %q, want %q", r.BootFileName, file)
	}
	got43 := r.Options.Get(dhcpv4.OptionVendorSpecificInformation)
	if opt43 == nil && got43 != nil {
		t.Errorf("option 43 = % x, want none", got43)
	}
	if opt43 != nil && !bytes.Equal(got43, opt43) {
		t.Errorf("option 43 = % x, want % x", got43, opt43)
	}
}

func TestRespondLongBootFile(t *testing.T) {
	cfg := proxyConfig()
	long := strings.Repeat("d/", 70) + "snponly.efi" // 151 bytes: does not fit the 128-byte file field
	cfg.BootFiles["efi-x64"] = long
	res := (&Proxy{Boot: cfg}).Respond(Request{Packet: edk2Discover(t), Port: PortDHCP, Server: server})
	if res.Reply == nil {
		t.Fatalf("no reply: %s", res.Reason)
	}
	r, err := dhcpv4.FromBytes(res.Reply.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	if r.BootFileName != "" || r.BootFileNameOption() != long {
		t.Fatalf("file %q option 67 %q; want file empty and option 67 the full name", r.BootFileName, r.BootFileNameOption())
	}
}

func TestMachine(t *testing.T) {
	tests := []struct {
		name    string
		p       *dhcpv4.DHCPv4
		fw      boot.Firmware
		arch    uint16
		hasArch bool
		class   string
		uuid    string
	}{
		{"EDK II: arch 7 from option 93, UUID from 97", edk2Discover(t), boot.FirmwarePXE, 7, true, "efi-x64", "8b5f1c3e224a4d9aa10d525400000007"},
		{"option 93 wins over option 60", biosDiscover(t, dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64))), boot.FirmwarePXE, 7, true, "efi-x64", "8b5f1c3e224a4d9aa10d525400000007"},
		{"arch from option 60 without 93", discover(t, macARM, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00011"))), boot.FirmwarePXE, 11, true, "efi-arm64", ""},
		{"short option 93 falls back to option 60", discover(t, macARM, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00011")), gen(93, []byte{7})), boot.FirmwarePXE, 11, true, "efi-arm64", ""},
		{"PXEClient without arch", discover(t, macBIOS, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient"))), boot.FirmwarePXE, 0, false, "", ""},
		{"RFC 4578 §2.3 UUID of wrong type ignored", discover(t, macBIOS, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), gen(97, append([]byte{1}, uuidOpt[1:]...))), boot.FirmwarePXE, 0, false, "", ""},
		{"RFC 4578 §2.3 UUID of wrong length ignored", discover(t, macBIOS, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")), gen(97, uuidOpt[:10])), boot.FirmwarePXE, 0, false, "", ""},
		{"HTTPClient", discover(t, macEFI, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016"))), boot.FirmwareHTTP, 16, true, "efi-x64", ""},
		{"iPXE user class wins over PXEClient", ipxeDiscover(t, true, false), boot.FirmwareIPXE, 0, true, "bios", ""},
		{"iPXE user class among others (RFC 3004)", biosDiscover(t, dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"other", "iPXE"}))), boot.FirmwareIPXE, 0, true, "bios", "8b5f1c3e224a4d9aa10d525400000007"},
		{"user class not iPXE", biosDiscover(t, dhcpv4.WithOption(dhcpv4.OptRFC3004UserClass([]string{"gPXE"}))), boot.FirmwarePXE, 0, true, "bios", "8b5f1c3e224a4d9aa10d525400000007"},
		{"malformed RFC 3004 user class is not iPXE", biosDiscover(t, gen(77, []byte{9, 'i', 'P', 'X', 'E'})), boot.FirmwarePXE, 0, true, "bios", "8b5f1c3e224a4d9aa10d525400000007"},
		{"no vendor class", discover(t, macBIOS), boot.FirmwareUnknown, 0, false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Machine(tc.p)
			if m.Firmware != tc.fw || m.Arch != tc.arch || m.HasArch != tc.hasArch || m.Class != tc.class || m.UUID != tc.uuid {
				t.Fatalf("Machine = %+v\nwant firmware %v arch %d/%v class %q uuid %q", m, tc.fw, tc.arch, tc.hasArch, tc.class, tc.uuid)
			}
			if !bytes.Equal(m.MAC, tc.p.ClientHWAddr) {
				t.Fatalf("MAC %s, want %s", m.MAC, tc.p.ClientHWAddr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*dhcpv4.DHCPv4)
		reason string
	}{
		{"good request", func(*dhcpv4.DHCPv4) {}, ""},
		{"RFC 2131 §2 op must be BOOTREQUEST", func(p *dhcpv4.DHCPv4) { p.OpCode = dhcpv4.OpcodeBootReply }, "not a BOOTREQUEST"},
		{"htype not Ethernet", func(p *dhcpv4.DHCPv4) { p.HWType = iana.HWTypeIEEE802 }, "hardware type 6 length 6"},
		{"hlen 8", func(p *dhcpv4.DHCPv4) { p.ClientHWAddr = append(p.ClientHWAddr, 0, 0) }, "hardware type 1 length 8"},
		{"hlen 0", func(p *dhcpv4.DHCPv4) { p.ClientHWAddr = nil }, "length 0"},
		{"zero chaddr", func(p *dhcpv4.DHCPv4) { p.ClientHWAddr = make(net.HardwareAddr, 6) }, "zero or broadcast chaddr"},
		{"broadcast chaddr", func(p *dhcpv4.DHCPv4) {
			p.ClientHWAddr = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}, "zero or broadcast chaddr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := biosDiscover(t)
			tc.mutate(p)
			got := Validate(p)
			if (tc.reason == "") != (got == "") || !strings.Contains(got, tc.reason) {
				t.Fatalf("Validate = %q, want %q", got, tc.reason)
			}
			if tc.reason != "" {
				if res := (&Proxy{Boot: proxyConfig()}).Respond(Request{Packet: p, Port: PortDHCP, Server: server}); res.Reply != nil {
					t.Fatalf("Respond answered an invalid packet")
				}
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	got := Describe(edk2Discover(t))
	if want := "DISCOVER from 52:54:00:00:00:07 firmware=pxe arch=efi-x64"; got != want {
		t.Fatalf("Describe = %q, want %q", got, want)
	}
}
