package client

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/dhcp4"
)

// fakeNet is an in-memory Transport: each Send is answered at once by the
// servers on the "wire", whose replies queue for Receive.
type fakeNet struct {
	t       *testing.T
	servers []func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort)
	replies chan reply
	sent    []netip.AddrPort
}

type reply struct {
	p    *dhcpv4.DHCPv4
	from netip.AddrPort
}

func newFakeNet(t *testing.T) *fakeNet { return &fakeNet{t: t, replies: make(chan reply, 64)} }

func (f *fakeNet) Send(ctx context.Context, p *dhcpv4.DHCPv4, dst netip.AddrPort) error {
	f.sent = append(f.sent, dst)
	// Through the codec, as on a wire.
	in, err := dhcpv4.FromBytes(p.ToBytes())
	if err != nil {
		f.t.Fatalf("client sent a packet that does not decode: %v", err)
	}
	for _, s := range f.servers {
		if r, from := s(in, dst); r != nil {
			out, err := dhcpv4.FromBytes(r.ToBytes())
			if err != nil {
				f.t.Fatalf("server reply does not decode: %v", err)
			}
			f.replies <- reply{out, from}
		}
	}
	return nil
}

func (f *fakeNet) Receive(ctx context.Context) (*dhcpv4.DHCPv4, netip.AddrPort, error) {
	select {
	case r := <-f.replies:
		return r.p, r.from, nil
	case <-ctx.Done():
		return nil, netip.AddrPort{}, ctx.Err()
	}
}

// addressServer is a plain DHCP server at srv leasing lease.
func addressServer(srv, lease string) func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
	sip := net.ParseIP(srv).To4()
	return func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
		if dst.Port() != 67 {
			return nil, netip.AddrPort{}
		}
		var mt dhcpv4.MessageType
		switch p.MessageType() {
		case dhcpv4.MessageTypeDiscover:
			mt = dhcpv4.MessageTypeOffer
		case dhcpv4.MessageTypeRequest:
			if !p.ServerIdentifier().Equal(sip) {
				return nil, netip.AddrPort{}
			}
			mt = dhcpv4.MessageTypeAck
		default:
			return nil, netip.AddrPort{}
		}
		r, _ := dhcpv4.NewReplyFromRequest(p, dhcpv4.WithMessageType(mt),
			dhcpv4.WithYourIP(net.ParseIP(lease)), dhcpv4.WithServerIP(sip),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sip)),
			dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32))),
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(5*time.Minute)))
		return r, netip.AddrPortFrom(netip.MustParseAddr(srv), 67)
	}
}

// pxedProxy is pxed's own ProxyDHCP policy at 192.0.2.1, on ports 67 and 4011.
func pxedProxy() func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
	px := &dhcp4.Proxy{Boot: &boot.Config{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Profiles:  map[string]boot.Profile{"default": {Kernel: "/k/vmlinuz"}},
		Default:   "default",
	}}
	srv := boot.Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	return func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
		port := dhcp4.Port(dst.Port())
		if port == dhcp4.PortBootServer && dst.Addr() != srv.IP {
			return nil, netip.AddrPort{}
		}
		res := px.Respond(dhcp4.Request{Packet: p, Port: port, Server: srv})
		return res.Reply, netip.AddrPortFrom(srv.IP, uint16(port))
	}
}

func TestExchange(t *testing.T) {
	for _, tc := range []struct {
		name      string
		profile   string
		servers   int // 1: address server only; 2: + pxed proxy
		boot      string
		bootType  string
		discovery bool
		err       string
	}{
		{"uefi via 4011", "efi-x64", 2, "snponly.efi", "ProxyBinl", true, ""},
		{"bios use-boot-file", "bios", 2, "undionly.kpxe", "ProxyPxe10", false, ""},
		{"ipxe gets the script URL", "ipxe-efi", 2, "http://192.0.2.1:8080/boot/52-54-00-00-09-01/script.ipxe", "ProxyPxe10", false, ""},
		{"http boot URL", "efi-x64-http", 2, "http://192.0.2.1:8080/files/snponly.efi", "ProxyIpUri", false, ""},
		{"no proxy: PXE-E53", "efi-x64", 1, "", "", false, "PXE-E53"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNet(t)
			n.servers = append(n.servers, addressServer("192.0.2.2", "192.0.2.100"))
			if tc.servers > 1 {
				n.servers = append(n.servers, pxedProxy())
			}
			p, _ := ParseProfile(tc.profile)
			e := &Exchange{Transport: n, Profile: p, ID: Identity{MAC: testMAC}, Scale: 0.005}
			res, err := e.Run(context.Background())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if res.Discovers != len(Windows) {
					t.Errorf("discovers = %d, want %d (every window tried)", res.Discovers, len(Windows))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.BootFile != tc.boot {
				t.Errorf("boot file = %q, want %q", res.BootFile, tc.boot)
			}
			if res.Lease == nil || res.Lease.Addr != netip.MustParseAddr("192.0.2.100") || res.Lease.Mask != "255.255.255.0" {
				t.Errorf("lease = %+v", res.Lease)
			}
			if got := res.Offers[res.Selection.Boot].Type; got != tc.bootType {
				t.Errorf("boot offer type = %s, want %s", got, tc.bootType)
			}
			if (res.BootReply != nil) != tc.discovery {
				t.Errorf("boot reply = %+v, want discovery %v", res.BootReply, tc.discovery)
			}
			if tc.discovery {
				last := n.sent[len(n.sent)-1]
				if last != netip.MustParseAddrPort("192.0.2.1:4011") {
					t.Errorf("boot server request went to %s", last)
				}
			}
			if !strings.HasPrefix(tc.boot, "http") && res.BootServer != netip.MustParseAddr("192.0.2.1") {
				t.Errorf("TFTP server = %s, want 192.0.2.1", res.BootServer)
			}
			if res.Discovers != 1 {
				t.Errorf("discovers = %d, want 1 (offers in the first window)", res.Discovers)
			}
		})
	}
}

// TestExchangeRetriesUntilAnswer: a server that misses the first two
// DISCOVERs is found in the third window.
func TestExchangeRetriesUntilAnswer(t *testing.T) {
	n := newFakeNet(t)
	as := addressServer("192.0.2.2", "192.0.2.100")
	px := pxedProxy()
	seen := 0
	n.servers = append(n.servers, func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
		if p.MessageType() == dhcpv4.MessageTypeDiscover {
			if seen++; seen <= 2 {
				return nil, netip.AddrPort{}
			}
		}
		return as(p, dst)
	}, px)
	p, _ := ParseProfile("bios")
	e := &Exchange{Transport: n, Profile: p, ID: Identity{MAC: testMAC}, Scale: 0.005}
	res, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Discovers != 3 || res.BootFile != "undionly.kpxe" {
		t.Errorf("discovers = %d boot file %q, want 3 and undionly.kpxe", res.Discovers, res.BootFile)
	}
	// The proxy answered every DISCOVER; its offer is kept once.
	if len(res.Offers) != 2 {
		t.Errorf("offers = %d, want 2 (duplicates dropped)", len(res.Offers))
	}
}

// nakFirst wraps an address server so that it refuses the first n REQUESTs
// with a DHCPNAK, as dnsmasq does when it offered one address to two clients.
func nakFirst(n int, srv string, as func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort)) func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
	sip := net.ParseIP(srv).To4()
	return func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
		if p.MessageType() == dhcpv4.MessageTypeRequest && dst.Port() == 67 && n > 0 {
			n--
			r, _ := dhcpv4.NewReplyFromRequest(p, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sip)),
				dhcpv4.WithOption(dhcpv4.OptMessage("address in use")))
			return r, netip.AddrPortFrom(netip.MustParseAddr(srv), 67)
		}
		return as(p, dst)
	}
}

// TestExchangeNAKRestart: after a DHCPNAK the client starts over with a new
// DISCOVER and a new transaction ID (RFC 2131 §3.1), as often as
// NAKRestarts allows, and says so in a warning per NAK.
func TestExchangeNAKRestart(t *testing.T) {
	for _, tc := range []struct {
		name            string
		naks, restarts  int
		wantErr         bool
		wantNAKs, wantD int
	}{
		{"no restarts: the NAK fails", 1, 0, true, 0, 1},
		{"one NAK, restarted", 1, 3, false, 1, 2},
		{"three NAKs, three restarts", 3, 3, false, 3, 4},
		{"more NAKs than restarts", 5, 2, true, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNet(t)
			var xids []dhcpv4.TransactionID
			as := nakFirst(tc.naks, "192.0.2.2", addressServer("192.0.2.2", "192.0.2.100"))
			n.servers = append(n.servers, func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
				if p.MessageType() == dhcpv4.MessageTypeDiscover {
					xids = append(xids, p.TransactionID)
				}
				return as(p, dst)
			}, pxedProxy())
			p, _ := ParseProfile("bios")
			e := &Exchange{Transport: n, Profile: p, ID: Identity{MAC: testMAC}, Scale: 0.005, NAKRestarts: tc.restarts}
			res, err := e.Run(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && !errors.Is(err, ErrNAK) {
				t.Errorf("err = %v, want it to wrap ErrNAK", err)
			}
			if !tc.wantErr && (res.Lease == nil || res.BootFile != "undionly.kpxe") {
				t.Errorf("lease %+v boot file %q after restarts", res.Lease, res.BootFile)
			}
			if res.NAKs != tc.wantNAKs || res.Discovers != tc.wantD {
				t.Errorf("naks = %d discovers = %d, want %d and %d", res.NAKs, res.Discovers, tc.wantNAKs, tc.wantD)
			}
			warned := 0
			for _, w := range res.Warnings {
				if w.Code == WarnNAK {
					warned++
				}
			}
			if warned != tc.wantNAKs {
				t.Errorf("%d %s warnings, want %d: %+v", warned, WarnNAK, tc.wantNAKs, res.Warnings)
			}
			for i := 1; i < len(xids); i++ {
				if xids[i] == xids[i-1] {
					t.Errorf("DISCOVER %d reused transaction ID %s after a NAK", i+1, xids[i])
				}
			}
		})
	}
}

// withOffer makes an address server's offers name an iPXE script and carry
// option 60 class, and with noWait iPXE's option 175.176 no-pxedhcp.
func withOffer(as func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort), class string, noWait bool) func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
	return func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
		r, from := as(p, dst)
		if r != nil {
			r.UpdateOption(dhcpv4.OptBootFileName("http://192.0.2.2/boot.ipxe"))
		}
		if r != nil && class != "" {
			r.UpdateOption(dhcpv4.OptClassIdentifier(class))
		}
		if r != nil && noWait {
			r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(175), []byte{176, 1, 1}))
		}
		return r, from
	}
}

// TestExchangeIPXEProxyWait: iPXE leaves discovery at once when the
// address offer carries PXE information (vendor class PXEClient) or tells
// it not to wait (175.176), and otherwise waits DHCP_DISC_PROXY_TIMEOUT_SEC
// for a ProxyDHCP offer; its DISCOVER windows start at 1 s.
func TestExchangeIPXEProxyWait(t *testing.T) {
	p, _ := ParseProfile("ipxe-efi")
	for _, tc := range []struct {
		name    string
		class   string
		noWait  bool
		scale   float64
		waits   bool // at least the proxy wait passes before the REQUEST
		wantDis int
	}{
		{"PXEClient offer: no wait", "PXEClient", false, 1, false, 1},
		{"no-pxedhcp: no wait", "", true, 1, false, 1},
		{"plain offer: waits for ProxyDHCP", "", false, 0.05, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNet(t)
			n.servers = append(n.servers, withOffer(addressServer("192.0.2.2", "192.0.2.100"), tc.class, tc.noWait))
			e := &Exchange{Transport: n, Profile: p, ID: Identity{MAC: testMAC}, Scale: tc.scale}
			start := time.Now()
			res := &DHCPResult{Selection: Selection{Address: -1, Boot: -1}}
			if err := e.discover(context.Background(), res); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if res.Selection.Address < 0 || res.Offers[res.Selection.Address].YourIP != netip.MustParseAddr("192.0.2.100") {
				t.Fatalf("selection %+v of %d offers, want the address offer", res.Selection, len(res.Offers))
			}
			wait := time.Duration(float64(IPXEProxyWait) * tc.scale)
			if tc.waits && took < wait {
				t.Errorf("requested after %v, before the ProxyDHCP wait of %v", took, wait)
			}
			if !tc.waits && took >= wait {
				t.Errorf("requested after %v: iPXE does not wait when the offer has PXE information", took)
			}
			if res.Discovers != tc.wantDis {
				t.Errorf("discovers = %d, want %d (iPXE windows 1, 2, 4, 8 s)", res.Discovers, tc.wantDis)
			}
		})
	}
}
