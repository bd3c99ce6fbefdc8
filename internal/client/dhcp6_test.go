package client

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
	"pxed/internal/dhcp6"
)

var testIAID = [4]byte{0, 0, 9, 1}

// adv builds an Advertise from server duid byte sid with opts.
func adv(sid byte, opts ...dhcpv6.Option) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeAdvertise, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	m.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, sid}}))
	for _, o := range opts {
		m.AddOption(o)
	}
	return m
}

func iaNA(addr string, status ...iana.StatusCode) dhcpv6.Option {
	ia := &dhcpv6.OptIANA{IaId: testIAID}
	if addr != "" {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(addr), PreferredLifetime: time.Minute, ValidLifetime: time.Minute})
	}
	for _, s := range status {
		ia.Options.Add(&dhcpv6.OptStatusCode{StatusCode: s})
	}
	return ia
}

func vendor(ent uint32, data string) dhcpv6.Option {
	return &dhcpv6.OptVendorClass{EnterpriseNumber: ent, Data: [][]byte{[]byte(data)}}
}

func offer6(m *dhcpv6.Message) Offer6 {
	o := NewOffer6(m, netip.MustParseAddrPort("[fe80::1]:547"), 0, testIAID)
	o.Type = ClassifyPXE6(o)
	return o
}

// TestClassifyPXE6 follows PxeBcParseDhcp6Packet and Dhcp6SeekStsOption.
func TestClassifyPXE6(t *testing.T) {
	url := dhcpv6.OptBootFileURL("tftp://[2001:db8::1]/snponly.efi")
	for _, tc := range []struct {
		name     string
		m        *dhcpv6.Message
		kind     string
		typ      string
		dropped  bool
		wantAddr string
	}{
		{"address only: DhcpOnly", adv(1, iaNA("2001:db8::100")), "dhcp", PXE6DhcpOnly, false, "2001:db8::100"},
		{"address + PXEClient 343: DhcpBinl", adv(1, iaNA("2001:db8::100"), vendor(343, "PXEClient"), url), "dhcp", PXE6DhcpBinl, false, "2001:db8::100"},
		{"PXEClient 343 without IA_NA: ProxyBinl", adv(1, vendor(343, "PXEClient"), url), "proxy", PXE6ProxyBinl, false, ""},
		{"PXEClient under another enterprise: DhcpOnly", adv(1, vendor(311, "PXEClient"), url), "proxy", PXE6DhcpOnly, false, ""},
		{"HTTPClient is not PXE: DhcpOnly", adv(1, vendor(343, "HTTPClient"), url), "proxy", PXE6DhcpOnly, false, ""},
		{"IA_NA with success status counts", adv(1, iaNA("2001:db8::100", iana.StatusSuccess)), "dhcp", PXE6DhcpOnly, false, "2001:db8::100"},
		{"IA_NA NoAddrsAvail: dropped by Dhcp6Dxe", adv(1, iaNA("", iana.StatusNoAddrsAvail), vendor(343, "PXEClient")), "proxy", PXE6ProxyBinl, true, ""},
		{"top-level failure status: dropped", adv(1, &dhcpv6.OptStatusCode{StatusCode: iana.StatusUnspecFail}), "proxy", PXE6DhcpOnly, true, ""},
		{"IA_NA without an address still counts as an address offer", adv(1, iaNA("")), "dhcp", PXE6DhcpOnly, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through the codec, as on a wire.
			m, err := dhcpv6.MessageFromBytes(tc.m.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			o := offer6(m)
			if o.Kind != tc.kind || o.Type != tc.typ || (o.Dropped != "") != tc.dropped {
				t.Errorf("kind %s type %s dropped %q, want %s %s dropped=%v", o.Kind, o.Type, o.Dropped, tc.kind, tc.typ, tc.dropped)
			}
			if got := o.Addr.String(); tc.wantAddr != "" && got != tc.wantAddr {
				t.Errorf("addr %s, want %s", got, tc.wantAddr)
			}
		})
	}
}

// TestSelectPXE6 follows PxeBcSelectDhcp6Offer's default policy.
func TestSelectPXE6(t *testing.T) {
	url := dhcpv6.OptBootFileURL("tftp://[2001:db8::1]/snponly.efi")
	dhcpOnly := adv(1, iaNA("2001:db8::100"))
	dhcpOnlyURL := adv(2, iaNA("2001:db8::101"), url)
	dhcpBinl := adv(3, iaNA("2001:db8::102"), vendor(343, "PXEClient"), url)
	proxy := adv(4, vendor(343, "PXEClient"), url)
	proxy2 := adv(5, vendor(343, "PXEClient"), url)
	dropped := adv(6, iaNA("", iana.StatusNoAddrsAvail))
	for _, tc := range []struct {
		name          string
		in            []*dhcpv6.Message
		address, boot int
		rank          int
	}{
		{"priority 5: DhcpBinl before DhcpOnly + ProxyBinl", []*dhcpv6.Message{dhcpOnly, proxy, dhcpBinl}, 2, 2, 5},
		{"priority 6: first DhcpOnly + first ProxyBinl", []*dhcpv6.Message{proxy, dhcpOnly, proxy2, dhcpOnlyURL}, 1, 0, 6},
		{"priority 7: DhcpOnly with a URL", []*dhcpv6.Message{dhcpOnly, dhcpOnlyURL}, 1, 1, 7},
		{"proxy alone: nothing", []*dhcpv6.Message{proxy}, -1, -1, 0},
		{"address alone, no URL: nothing", []*dhcpv6.Message{dhcpOnly}, -1, -1, 0},
		{"dropped offers do not count", []*dhcpv6.Message{dropped, proxy}, -1, -1, 0},
		{"none", nil, -1, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var offers []Offer6
			for _, m := range tc.in {
				offers = append(offers, offer6(m))
			}
			s := SelectPXE6(offers)
			if s.Address != tc.address || s.Boot != tc.boot || s.Rank != tc.rank || s.Reason == "" {
				t.Errorf("selection %+v, want address %d boot %d rank %d", s, tc.address, tc.boot, tc.rank)
			}
		})
	}
}

// TestParseBootFileURL6 follows PxeBcExtractBootFileUrl.
func TestParseBootFileURL6(t *testing.T) {
	for _, tc := range []struct {
		url, server, host, file, err string
	}{
		{"tftp://[2001:db8::1]/snponly.efi", "2001:db8::1", "", "snponly.efi", ""},
		{"tftp://[2001:db8::1]/dir/a.efi;mode=octet", "2001:db8::1", "", "dir/a.efi", ""},
		{"tftp://boot.example/x.efi", "", "boot.example", "x.efi", ""},
		{"tftp://[2001:db8::1]/a;mode=netascii", "", "", "", "mode"},
		{"tftp://[2001:db8::1]snponly.efi", "", "", "", "'/'"},
		{"tftp://[2001:db8::1/x", "", "", "", "']'"},
		{"tftp://[192.0.2.1]/x", "", "", "", "not an IPv6"},
		{"http://[2001:db8::1]/x", "", "", "", "tftp"},
		{"tftp://", "", "", "", "tftp"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			b, err := ParseBootFileURL6(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Server.String() != tc.server && tc.server != "" || b.Host != tc.host || b.File != tc.file {
				t.Errorf("got %+v", b)
			}
		})
	}
}

// TestSolicit6 checks the Solicit carries what PxeBcBuildDhcp6Options and
// Dhcp6SendSolicitMsg put in it.
func TestSolicit6(t *testing.T) {
	p, _ := ParseProfile("efi-x64")
	for _, duid := range []string{DUIDUUID, DUIDLLT} {
		id := Identity6{MAC: testMAC, UUID: UUIDFromMAC(testMAC), DUID: duid}
		m, err := dhcpv6.MessageFromBytes(NewSolicit6(p, id, dhcpv6.TransactionID{1, 2, 3}).ToBytes())
		if err != nil {
			t.Fatal(err)
		}
		oro := m.Options.RequestedOptions()
		if len(oro) != 4 || oro[0] != 59 || oro[1] != 60 || oro[2] != 23 || oro[3] != 16 {
			t.Errorf("ORO %v, want 59 60 23 16", oro)
		}
		if a := m.Options.ArchTypes(); len(a) != 1 || a[0] != 7 {
			t.Errorf("arch %v, want 7", a)
		}
		if vc := m.Options.VendorClass(343); len(vc) != 1 || string(vc[0]) != "PXEClient:Arch:00007:UNDI:003016" {
			t.Errorf("vendor class %q", vc)
		}
		if m.Options.GetOne(dhcpv6.OptionNII) == nil || m.Options.OneIANA() == nil || m.Options.GetOne(dhcpv6.OptionElapsedTime) == nil {
			t.Errorf("missing NII, IA_NA or elapsed time: %s", m)
		}
		mc := dhcp6.Machine(m, netip.MustParseAddr("fe80::1"))
		if mc.Firmware != boot.FirmwarePXE || mc.Arch != 7 {
			t.Errorf("pxed reads the Solicit as %+v", mc)
		}
		if duid == DUIDLLT && mc.MAC.String() != testMAC.String() {
			t.Errorf("DUID-LLT: pxed reads MAC %v, want %v", mc.MAC, testMAC)
		}
	}
}

// fakeNet6 answers each message at once with every server's reply.
type fakeNet6 struct {
	t       *testing.T
	servers []func(m *dhcpv6.Message, dst netip.AddrPort) (*dhcpv6.Message, netip.AddrPort)
	replies chan packet6
	sent    []netip.AddrPort
}

func (f *fakeNet6) Send(ctx context.Context, m *dhcpv6.Message, dst netip.AddrPort) error {
	f.sent = append(f.sent, dst)
	in, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		f.t.Fatalf("client sent a message that does not decode: %v", err)
	}
	for _, s := range f.servers {
		if r, from := s(in, dst); r != nil {
			out, err := dhcpv6.MessageFromBytes(r.ToBytes())
			if err != nil {
				f.t.Fatalf("server reply does not decode: %v", err)
			}
			f.replies <- packet6{out, from}
		}
	}
	return nil
}

func (f *fakeNet6) Receive(ctx context.Context) (*dhcpv6.Message, netip.AddrPort, error) {
	select {
	case r := <-f.replies:
		return r.msg, r.from, nil
	case <-ctx.Done():
		return nil, netip.AddrPort{}, ctx.Err()
	}
}

// addressServer6 leases lease from fe80::2, as dnsmasq does.
func addressServer6(lease string) func(*dhcpv6.Message, netip.AddrPort) (*dhcpv6.Message, netip.AddrPort) {
	sid := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	return func(m *dhcpv6.Message, dst netip.AddrPort) (*dhcpv6.Message, netip.AddrPort) {
		if dst != AllDHCP6 {
			return nil, netip.AddrPort{}
		}
		var mt dhcpv6.MessageType
		switch m.MessageType {
		case dhcpv6.MessageTypeSolicit:
			mt = dhcpv6.MessageTypeAdvertise
		case dhcpv6.MessageTypeRequest:
			if !sameDUID(m.Options.ServerID(), sid) {
				return nil, netip.AddrPort{}
			}
			mt = dhcpv6.MessageTypeReply
		default:
			return nil, netip.AddrPort{}
		}
		r := &dhcpv6.Message{MessageType: mt, TransactionID: m.TransactionID}
		r.AddOption(dhcpv6.OptServerID(sid))
		r.AddOption(dhcpv6.OptClientID(m.Options.ClientID()))
		ia := &dhcpv6.OptIANA{IaId: m.Options.OneIANA().IaId}
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(lease), PreferredLifetime: time.Minute, ValidLifetime: 5 * time.Minute})
		r.AddOption(ia)
		return r, netip.MustParseAddrPort("[fe80::2]:547")
	}
}

// pxedProxy6 is pxed's ProxyDHCPv6 policy at 2001:db8::1 (ports 547, 4011).
func pxedProxy6() func(*dhcpv6.Message, netip.AddrPort) (*dhcpv6.Message, netip.AddrPort) {
	px := &dhcp6.Proxy{Boot: &boot.Config{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Profiles:  map[string]boot.Profile{"default": {Kernel: "/k/vmlinuz"}},
		Default:   "default",
	}}
	ip := netip.MustParseAddr("2001:db8::1")
	sid := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	return func(m *dhcpv6.Message, dst netip.AddrPort) (*dhcpv6.Message, netip.AddrPort) {
		port := dhcp6.Port(dst.Port())
		from := netip.MustParseAddrPort("[fe80::1]:547")
		if port == dhcp6.PortBootServer {
			if dst.Addr() != ip {
				return nil, netip.AddrPort{}
			}
			from = netip.AddrPortFrom(ip, 4011)
		}
		res := px.Respond(dhcp6.Request{Msg: m, Port: port, Server: boot.Server{IP: ip, HTTPPort: 8080}, ServerID: sid,
			Src: netip.MustParseAddrPort("[fe80::5054:ff:fe00:901]:546")})
		if res.Reply == nil {
			return nil, netip.AddrPort{}
		}
		return res.Reply, from
	}
}

func TestExchange6(t *testing.T) {
	for _, tc := range []struct {
		name     string
		profile  string
		proxy    bool
		bootFile string
		bootType string
		err      string
	}{
		{"EDK II PXE: DhcpOnly + ProxyBinl, boot service on 4011", "efi-x64", true, "tftp://[2001:db8::1]/snponly.efi", PXE6ProxyBinl, ""},
		{"HTTP boot: DhcpOnly + ProxyIpUri", "efi-x64-http", true, "http://[2001:db8::1]:8080/files/snponly.efi", HTTPProxyIpUri, ""},
		{"no proxy: no boot file", "efi-x64", false, "", "", "no usable offer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &fakeNet6{t: t, replies: make(chan packet6, 64)}
			n.servers = append(n.servers, addressServer6("2001:db8::100"))
			if tc.proxy {
				n.servers = append(n.servers, pxedProxy6())
			}
			p, _ := ParseProfile(tc.profile)
			e := &Exchange6{Transport: n, Profile: p, ID: Identity6{MAC: testMAC, UUID: UUIDFromMAC(testMAC)}, Scale: 0.005}
			res, err := e.Run(context.Background())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v (offers %+v)", err, res.Offers)
			}
			if res.BootFile != tc.bootFile || res.Lease == nil || res.Lease.Addr != netip.MustParseAddr("2001:db8::100") {
				t.Errorf("boot file %q lease %+v", res.BootFile, res.Lease)
			}
			if got := res.Offers[res.Selection.Boot].Type; got != tc.bootType {
				t.Errorf("boot offer type %s, want %s", got, tc.bootType)
			}
			if !p.HTTPBoot() && (res.BootRequests != 1 || res.BootServer != netip.MustParseAddr("2001:db8::1") || res.BootName != "snponly.efi") {
				t.Errorf("boot requests %d server %v name %q", res.BootRequests, res.BootServer, res.BootName)
			}
			if res.Solicits != 1 {
				t.Errorf("solicits %d, want 1 (offers within the first window)", res.Solicits)
			}
		})
	}
}
