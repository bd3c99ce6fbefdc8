package dhcp6

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
)

var (
	clientMAC  = net.HardwareAddr{0x52, 0x54, 0x00, 0xde, 0x00, 0x01}
	serverDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}}
	otherDUID  = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}}
	linkLocal  = netip.MustParseAddrPort("[fe80::5054:ff:fede:1%eth0]:546") // EUI-64 of clientMAC
	leased     = netip.MustParseAddrPort("[2001:db8::150]:4011")
	srv        = boot.Server{IP: netip.MustParseAddr("2001:db8::1"), HTTPPort: 8080}
)

func testConfig() *boot.Config {
	return &boot.Config{
		BootFiles: map[string]string{"efi-x64": "snponly.efi", "bios": "undionly.kpxe"},
		Profiles:  map[string]boot.Profile{"default": {Kernel: "/k/vmlinuz", Initrds: []string{"/k/initrd.img"}}},
		Default:   "default",
	}
}

// edk2Solicit is a Solicit as EDK II's PxeBcDxe sends it
// (PxeBcBuildDhcp6Options): ORO 59/60/23/16, NII, arch, vendor class
// under enterprise 343, and an IA_NA from Dhcp6Dxe.
func edk2Solicit(t testing.TB, mt dhcpv6.MessageType, duid dhcpv6.DUID, arch iana.Arch) *dhcpv6.Message {
	t.Helper()
	m := &dhcpv6.Message{MessageType: mt, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	if duid != nil {
		m.AddOption(dhcpv6.OptClientID(duid))
	}
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionBootfileURL, dhcpv6.OptionBootfileParam, dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionVendorClass))
	m.AddOption(&dhcpv6.OptNetworkInterfaceID{Typ: dhcpv6.NII_PXE_GEN_I, Major: 3, Minor: 16})
	m.AddOption(dhcpv6.OptClientArchType(arch))
	m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: [][]byte{[]byte("PXEClient:Arch:00007:UNDI:003016")}})
	m.AddOption(dhcpv6.OptElapsedTime(0))
	if mt == dhcpv6.MessageTypeSolicit {
		m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}})
	}
	return m
}

func ipxeMessage(t testing.TB, mt dhcpv6.MessageType) *dhcpv6.Message {
	t.Helper()
	m := &dhcpv6.Message{MessageType: mt, TransactionID: dhcpv6.TransactionID{4, 5, 6}}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDUUID{UUID: [16]byte{1, 2, 3}}))
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList, dhcpv6.OptionBootfileURL, dhcpv6.OptionBootfileParam))
	m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: [][]byte{[]byte("PXEClient:Arch:00007:UNDI:003010")}})
	m.AddOption(dhcpv6.OptClientArchType(iana.EFI_X86_64))
	m.AddOption(&dhcpv6.OptUserClass{UserClasses: [][]byte{[]byte("iPXE")}})
	if mt == dhcpv6.MessageTypeSolicit {
		m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}})
	}
	return m
}

func llt(mac net.HardwareAddr) dhcpv6.DUID {
	return &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: 12345, LinkLayerAddr: mac}
}

func TestProxyRespond(t *testing.T) {
	p := &Proxy{Boot: testConfig()}
	request4011 := func(sid dhcpv6.DUID) *dhcpv6.Message {
		m := edk2Solicit(t, dhcpv6.MessageTypeRequest, llt(clientMAC), iana.EFI_X86_64)
		if sid != nil {
			m.AddOption(dhcpv6.OptServerID(sid))
		}
		return m
	}
	requestTo := func(sid dhcpv6.DUID) *dhcpv6.Message {
		m := request4011(sid)
		ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}}
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::150")})
		m.AddOption(ia)
		return m
	}
	plainRequest := requestTo(otherDUID)
	plainRequest.Options.Del(dhcpv6.OptionVendorClass)
	plainRequest.Options.Del(dhcpv6.OptionClientArchType)
	plain := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit}
	plain.AddOption(dhcpv6.OptClientID(llt(clientMAC)))
	plain.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}})
	wrongEnterprise := edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_X86_64)
	wrongEnterprise.UpdateOption(&dhcpv6.OptVendorClass{EnterpriseNumber: 311, Data: [][]byte{[]byte("PXEClient")}})
	solicitWithSID := edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_X86_64)
	solicitWithSID.AddOption(dhcpv6.OptServerID(serverDUID))

	for _, tc := range []struct {
		name    string
		msg     *dhcpv6.Message
		port    Port
		src     netip.AddrPort
		mac     net.HardwareAddr
		want    Ignore
		reply   dhcpv6.MessageType
		url     string
		pxe     bool // vendor class PXEClient in the reply (else none)
		learned netip.Addr
	}{
		{name: "EDK II PXEv6 Solicit (DUID-LLT) → Advertise, NBP URL (UEFI 2.10 §24.3.1)", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_X86_64),
			port: PortDHCP, src: linkLocal, reply: dhcpv6.MessageTypeAdvertise, url: "tftp://[2001:db8::1]/snponly.efi", pxe: true},
		{name: "EDK II arch 9 (EFI BC) is x64 too", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_BC),
			port: PortDHCP, src: linkLocal, reply: dhcpv6.MessageTypeAdvertise, url: "tftp://[2001:db8::1]/snponly.efi", pxe: true},
		{name: "EDK II DUID-UUID: MAC from the EUI-64 link-local source", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, &dhcpv6.DUIDUUID{UUID: [16]byte{9}}, iana.EFI_X86_64),
			port: PortDHCP, src: linkLocal, reply: dhcpv6.MessageTypeAdvertise, url: "tftp://[2001:db8::1]/snponly.efi", pxe: true},
		{name: "DUID-UUID, opaque source: MAC unknown", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, &dhcpv6.DUIDUUID{UUID: [16]byte{9}}, iana.EFI_X86_64),
			port: PortDHCP, src: netip.MustParseAddrPort("[fe80::1234:5678:9abc:def0%eth0]:546"), want: NoMAC},
		{name: "DUID-UUID, MAC learned by the loop", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, &dhcpv6.DUIDUUID{UUID: [16]byte{9}}, iana.EFI_X86_64),
			port: PortDHCP, src: netip.MustParseAddrPort("[fe80::1234:5678:9abc:def0%eth0]:546"), mac: clientMAC,
			reply: dhcpv6.MessageTypeAdvertise, url: "tftp://[2001:db8::1]/snponly.efi", pxe: true},
		{name: "boot service Request on 4011 → Reply with the NBP URL, source learned", msg: request4011(serverDUID), port: PortBootServer, src: leased,
			reply: dhcpv6.MessageTypeReply, url: "tftp://[2001:db8::1]/snponly.efi", pxe: true, learned: leased.Addr()},
		{name: "4011 Request for another server (RFC 8415 §16.4)", msg: request4011(otherDUID), port: PortBootServer, src: leased, want: OtherServer},
		{name: "4011 Request without server ID (EDK II after a DhcpBinl offer) → Reply with the NBP URL", msg: request4011(nil), port: PortBootServer, src: leased,
			reply: dhcpv6.MessageTypeReply, url: "tftp://[2001:db8::1]/snponly.efi", pxe: true, learned: leased.Addr()},
		{name: "Request on 547 is the address server's business (its address is learned)", msg: requestTo(otherDUID), port: PortDHCP, src: linkLocal, want: Unsupported,
			learned: netip.MustParseAddr("2001:db8::150")},
		{name: "a plain client's Request teaches nothing", msg: plainRequest, port: PortDHCP, src: linkLocal, want: Unsupported},
		{name: "Solicit with a server ID (RFC 8415 §16.2)", msg: solicitWithSID, port: PortDHCP, src: linkLocal, want: OtherServer},
		{name: "Solicit without client ID (RFC 8415 §16.2)", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, nil, iana.EFI_X86_64), port: PortDHCP, src: linkLocal, want: NoClientID},
		{name: "Solicit on 4011", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_X86_64), port: PortBootServer, src: leased, want: Unsupported},
		{name: "iPXE Information-request → Reply with its script URL", msg: ipxeMessage(t, dhcpv6.MessageTypeInformationRequest), port: PortDHCP, src: linkLocal,
			reply: dhcpv6.MessageTypeReply, url: "http://[2001:db8::1]:8080/boot/52-54-00-de-00-01/script.ipxe"},
		{name: "iPXE Solicit (stateful): only the address server can answer", msg: ipxeMessage(t, dhcpv6.MessageTypeSolicit), port: PortDHCP, src: linkLocal, want: StatefulIPXE},
		{name: "plain DHCPv6 client", msg: plain, port: PortDHCP, src: linkLocal, want: NotBootClient},
		{name: "PXEClient under another enterprise number", msg: wrongEnterprise, port: PortDHCP, src: linkLocal, want: NotBootClient},
		{name: "arm64 without a boot file", msg: edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_ARM64), port: PortDHCP, src: linkLocal, want: NoPlan},
		{name: "Renew", msg: edk2Solicit(t, dhcpv6.MessageTypeRenew, llt(clientMAC), iana.EFI_X86_64), port: PortDHCP, src: linkLocal, want: Unsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := p.Respond(Request{Msg: tc.msg, Port: tc.port, Server: srv, ServerID: serverDUID, Src: tc.src, MAC: tc.mac})
			if res.Ignored != tc.want {
				t.Fatalf("Ignored = %v (%s), want %v", res.Ignored, res.Reason, tc.want)
			}
			if res.Reason == "" {
				t.Errorf("no reason")
			}
			if tc.want != Answered {
				if res.Reply != nil {
					t.Errorf("ignored with a reply")
				}
				if res.Learn != tc.learned {
					t.Errorf("Learn = %v, want %v", res.Learn, tc.learned)
				}
				return
			}
			vclass := ""
			if tc.pxe {
				vclass = "PXEClient"
			}
			checkReply(t, tc.msg, res.Reply, tc.reply, tc.url, vclass)
			if res.Learn != tc.learned {
				t.Errorf("Learn = %v, want %v", res.Learn, tc.learned)
			}
			if got := boot.Normalize(res.Machine.MAC); got != boot.Normalize(clientMAC) {
				t.Errorf("machine MAC %s, want %s", got, clientMAC)
			}
		})
	}
}

// checkReply checks what EDK II and iPXE need of a reply (and that a
// proxy offers no address).
func checkReply(t *testing.T, req, r *dhcpv6.Message, mt dhcpv6.MessageType, url, vclass string) {
	t.Helper()
	// The reply goes through the wire and back, as the client sees it.
	got, err := dhcpv6.MessageFromBytes(r.ToBytes())
	if err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	if got.MessageType != mt || got.TransactionID != req.TransactionID {
		t.Errorf("reply %s xid %v, want %s xid %v", got.MessageType, got.TransactionID, mt, req.TransactionID)
	}
	if sid := got.Options.ServerID(); sid == nil || !sid.Equal(serverDUID) {
		t.Errorf("server ID %v, want %v", sid, serverDUID)
	}
	if cid := req.Options.ClientID(); cid != nil && (got.Options.ClientID() == nil || !got.Options.ClientID().Equal(cid)) {
		t.Errorf("client ID %v not echoed (%v)", got.Options.ClientID(), cid)
	}
	for _, code := range []dhcpv6.OptionCode{dhcpv6.OptionIANA, dhcpv6.OptionIATA, dhcpv6.OptionStatusCode, dhcpv6.OptionPreference} {
		if got.GetOneOption(code) != nil {
			t.Errorf("a proxy reply carries option %v", code)
		}
	}
	if got.Options.BootFileURL() != url {
		t.Errorf("boot file URL %q, want %q", got.Options.BootFileURL(), url)
	}
	vc := got.Options.VendorClass(EnterprisePXE)
	if vclass == "" {
		if got.GetOneOption(dhcpv6.OptionVendorClass) != nil {
			t.Errorf("vendor class %q, want none", vc)
		}
		return
	}
	if len(vc) != 1 || string(vc[0]) != vclass {
		t.Errorf("vendor class %q, want %q", vc, vclass)
	}
	// EDK II (PxeBcParseDhcp6Packet, HttpBootParseDhcp6Packet):
	// enterprise 343 in the first four bytes of the option data, the
	// class from the seventh.
	raw := (&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: vc}).ToBytes()
	if len(raw) < 6+len(vclass) || raw[3] != 0x57 || !strings.HasPrefix(string(raw[6:]), vclass) {
		t.Errorf("vendor class bytes % x", raw)
	}
}

// httpSolicit is a message as EDK II's HttpBootDxe sends it
// (HttpBootBuildDhcp6Options): ORO 59/60/23/16, NII, arch, vendor class
// "HTTPClient:Arch:…" under enterprise 343, and an IA_NA from Dhcp6Dxe in
// a Solicit.
func httpSolicit(t testing.TB, mt dhcpv6.MessageType, arch iana.Arch) *dhcpv6.Message {
	t.Helper()
	m := edk2Solicit(t, mt, llt(clientMAC), arch)
	m.UpdateOption(&dhcpv6.OptNetworkInterfaceID{Typ: dhcpv6.NII_PXE_GEN_I, Major: 3, Minor: 0})
	m.UpdateOption(&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: [][]byte{[]byte(fmt.Sprintf("HTTPClient:Arch:%05d:UNDI:003000", arch))}})
	return m
}

func TestProxyRespondHTTPBoot(t *testing.T) {
	plain := &Proxy{Boot: testConfig()}
	arm := testConfig()
	arm.BootFiles["efi-arm64"] = "arm64/snp.efi"
	withImage := testConfig()
	withImage.Profiles["default"] = boot.Profile{Kernel: "/k/vmlinuz", Image: "/images/live.iso"}
	requestTo := func(sid dhcpv6.DUID) *dhcpv6.Message {
		m := httpSolicit(t, dhcpv6.MessageTypeRequest, iana.EFI_X86_64_HTTP)
		m.AddOption(dhcpv6.OptServerID(sid))
		ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}}
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP("2001:db8::150")})
		m.AddOption(ia)
		return m
	}
	for _, tc := range []struct {
		name    string
		p       *Proxy
		msg     *dhcpv6.Message
		port    Port
		want    Ignore
		url     string
		learned netip.Addr
	}{
		// UEFI 2.10 §24.7.3; EDK II HttpBootDxe takes this ProxyIpUri
		// offer with the address server's.
		{name: "HTTP Boot x64 (arch 16) Solicit → Advertise with HTTPClient and the NBP's URL", p: plain,
			msg: httpSolicit(t, dhcpv6.MessageTypeSolicit, iana.EFI_X86_64_HTTP), port: PortDHCP, url: "http://[2001:db8::1]:8080/files/snponly.efi"},
		{name: "HTTP Boot of a profile with an image: the image's URL", p: &Proxy{Boot: withImage},
			msg: httpSolicit(t, dhcpv6.MessageTypeSolicit, iana.EFI_X86_64_HTTP), port: PortDHCP, url: "http://[2001:db8::1]:8080/boot/52-54-00-de-00-01/live.iso"},
		{name: "HTTP Boot arm64 (arch 19) gets the arm64 NBP", p: &Proxy{Boot: arm},
			msg: httpSolicit(t, dhcpv6.MessageTypeSolicit, iana.EFI_ARM64_HTTP), port: PortDHCP, url: "http://[2001:db8::1]:8080/files/arm64/snp.efi"},
		{name: "HTTP Boot arm64 without an arm64 NBP", p: plain,
			msg: httpSolicit(t, dhcpv6.MessageTypeSolicit, iana.EFI_ARM64_HTTP), port: PortDHCP, want: NoPlan},
		{name: "HTTP Boot Request to the address server: its address is learned", p: plain,
			msg: requestTo(otherDUID), port: PortDHCP, want: Unsupported, learned: netip.MustParseAddr("2001:db8::150")},
		{name: "HTTP Boot Request on 4011: HTTP Boot asks no boot service", p: plain,
			msg: requestTo(serverDUID), port: PortBootServer, want: HTTPBoot},
		{name: "HTTP Boot Information-request", p: plain,
			msg: httpSolicit(t, dhcpv6.MessageTypeInformationRequest, iana.EFI_X86_64_HTTP), port: PortDHCP, want: HTTPBoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.p.Respond(Request{Msg: tc.msg, Port: tc.port, Server: srv, ServerID: serverDUID, Src: linkLocal})
			if res.Ignored != tc.want {
				t.Fatalf("Ignored = %v (%s), want %v", res.Ignored, res.Reason, tc.want)
			}
			if res.Learn != tc.learned {
				t.Errorf("Learn = %v, want %v", res.Learn, tc.learned)
			}
			if tc.want != Answered {
				if res.Reply != nil {
					t.Errorf("ignored with a reply")
				}
				return
			}
			checkReply(t, tc.msg, res.Reply, dhcpv6.MessageTypeAdvertise, tc.url, "HTTPClient")
			if res.URL != tc.url || res.Machine.Firmware != boot.FirmwareHTTP {
				t.Errorf("Result URL %q firmware %v", res.URL, res.Machine.Firmware)
			}
		})
	}
}

func TestMAC(t *testing.T) {
	for _, tc := range []struct {
		name string
		duid dhcpv6.DUID
		src  string
		want string
	}{
		{"DUID-LLT", llt(clientMAC), "fe80::1", "52:54:00:de:00:01"},
		{"DUID-LL", &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: clientMAC}, "fe80::1", "52:54:00:de:00:01"},
		{"DUID-LLT of another hardware type, EUI-64 source", &dhcpv6.DUIDLLT{HWType: iana.HWTypeInfiniband, LinkLayerAddr: clientMAC}, "fe80::5054:ff:fede:1", "52:54:00:de:00:01"},
		{"DUID-UUID, EUI-64 link-local", &dhcpv6.DUIDUUID{}, "fe80::5054:ff:fede:1", "52:54:00:de:00:01"},
		{"universal bit flipped back", nil, "fe80::ff:fe00:1", "02:00:00:00:00:01"},
		{"DUID-UUID, global EUI-64 source (could be anyone's prefix)", &dhcpv6.DUIDUUID{}, "2001:db8::5054:ff:fede:1", ""},
		{"DUID-UUID, privacy address", &dhcpv6.DUIDUUID{}, "fe80::1234:5678:9abc:def0", ""},
		{"IPv4-mapped", nil, "::ffff:192.0.2.1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MAC(tc.duid, netip.MustParseAddr(tc.src))
			if got.String() != tc.want {
				t.Errorf("MAC = %q, want %q", got, tc.want)
			}
		})
	}
}
