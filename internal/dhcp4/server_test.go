package dhcp4

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/lease"
)

var (
	macA     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB     = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	macRes   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0c}
	serverIP = netip.MustParseAddr("192.0.2.1")
)

// fullFixture is a Full over a MemStore: 192.0.2.0/24 with range
// .100-.102 and a reservation .50 for macRes, the relayed subnet
// 198.51.100.0/24 with range .10-.11, and a clock the test moves.
type fullFixture struct {
	full  *Full
	store *lease.MemStore
	now   time.Time
}

func newFullFixture(t testing.TB, auth bool) *fullFixture {
	t.Helper()
	fx := &fullFixture{store: lease.NewMemStore(), now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return fx.now }
	mk := func(sn lease.Subnet) *lease.Manager {
		m, err := lease.New(fx.store, lease.Config{Subnet: sn, Authoritative: auth, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	local := &Subnet{
		Leases: mk(lease.Subnet{
			Prefix:       netip.MustParsePrefix("192.0.2.0/24"),
			Ranges:       []lease.Range{{First: netip.MustParseAddr("192.0.2.100"), Last: netip.MustParseAddr("192.0.2.102")}},
			Reservations: []lease.Reservation{{MAC: macRes, Addr: netip.MustParseAddr("192.0.2.50"), Hostname: "node50"}},
			ServerID:     serverIP,
			LeaseTime:    time.Hour,
		}),
		Router: []netip.Addr{serverIP}, DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
		Domain: "lab.example", MTU: 1400, NTP: []netip.Addr{netip.MustParseAddr("192.0.2.123")},
		Options:     []Option{{Code: 252, Value: []byte("http://192.0.2.1/wpad.dat")}},
		HostOptions: map[netip.Addr][]Option{netip.MustParseAddr("192.0.2.50"): {{Code: 66, Value: []byte("tftp.lab.example")}}},
	}
	relayed := &Subnet{
		Leases: mk(lease.Subnet{
			Prefix:   netip.MustParsePrefix("198.51.100.0/24"),
			Ranges:   []lease.Range{{First: netip.MustParseAddr("198.51.100.10"), Last: netip.MustParseAddr("198.51.100.11")}},
			ServerID: serverIP,
		}),
		Router: []netip.Addr{netip.MustParseAddr("198.51.100.1")},
	}
	fx.full = &Full{Subnets: []*Subnet{local, relayed}, Boot: proxyConfig(), Authoritative: auth, Now: clock}
	return fx
}

func (fx *fullFixture) respond(t *testing.T, p *dhcpv4.DHCPv4) Result {
	t.Helper()
	return fx.full.Respond(Request{Packet: p, Port: PortDHCP, Server: server, Ctx: context.Background()})
}

func (fx *fullFixture) lease(t *testing.T, addr string) lease.Lease {
	t.Helper()
	l, err := fx.store.Get(context.Background(), netip.MustParseAddr(addr))
	if err != nil {
		t.Fatalf("lease %s: %v", addr, err)
	}
	return l
}

func msg(t testing.TB, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(mt),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ip4(s string) net.IP { return net.IP(netip.MustParseAddr(s).AsSlice()) }

// wantReply checks the message type and yiaddr of a result.
func wantReply(t *testing.T, res Result, mt dhcpv4.MessageType, yiaddr string) *dhcpv4.DHCPv4 {
	t.Helper()
	if res.Reply == nil {
		t.Fatalf("no reply, want %s: %s", mt, res.Reason)
	}
	if got := res.Reply.MessageType(); got != mt {
		t.Fatalf("reply %s, want %s (%s)", got, mt, res.Reason)
	}
	if got := AddrFromIP(res.Reply.YourIPAddr); yiaddr != "" && got.String() != yiaddr {
		t.Fatalf("yiaddr %v, want %s (%s)", got, yiaddr, res.Reason)
	}
	// Every reply re-decodes.
	if _, err := dhcpv4.FromBytes(res.Reply.ToBytes()); err != nil {
		t.Fatalf("reply does not decode: %v", err)
	}
	return res.Reply
}

func wantSilence(t *testing.T, res Result, reason string) {
	t.Helper()
	if res.Reply != nil {
		t.Fatalf("got %s, want silence (%s)", res.Reply.MessageType(), res.Reason)
	}
	if !strings.Contains(res.Reason, reason) {
		t.Fatalf("reason %q, want it to contain %q", res.Reason, reason)
	}
}

// dora runs DISCOVER, then a SELECTING REQUEST for the offer, and returns
// the ACK.
func (fx *fullFixture) dora(t *testing.T, d *dhcpv4.DHCPv4) (offer, ack *dhcpv4.DHCPv4) {
	t.Helper()
	offer = wantReply(t, fx.respond(t, d), dhcpv4.MessageTypeOffer, "")
	req, err := dhcpv4.NewRequestFromOffer(offer)
	if err != nil {
		t.Fatal(err)
	}
	for code, v := range d.Options { // keep what the client said about itself
		if code != uint8(dhcpv4.OptionDHCPMessageType.Code()) && !req.Options.Has(dhcpv4.GenericOptionCode(code)) {
			req.Options[code] = v
		}
	}
	req.GatewayIPAddr = d.GatewayIPAddr
	ack = wantReply(t, fx.respond(t, req), dhcpv4.MessageTypeAck, AddrFromIP(offer.YourIPAddr).String())
	return offer, ack
}

func TestFullPlainDORA(t *testing.T) {
	fx := newFullFixture(t, true)
	offer, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithOption(dhcpv4.OptHostName("alpha"))))
	if got := offer.YourIPAddr.String(); got != "192.0.2.100" {
		t.Fatalf("RFC 2131 §4.3.1: first offer %s, want the first never-used address 192.0.2.100", got)
	}
	for _, p := range []*dhcpv4.DHCPv4{offer, ack} {
		mt := p.MessageType()
		check := func(code uint8, want []byte) {
			t.Helper()
			if got := p.Options.Get(dhcpv4.GenericOptionCode(code)); !bytes.Equal(got, want) {
				t.Errorf("%s option %d = %v, want %v", mt, code, got, want)
			}
		}
		check(1, []byte{255, 255, 255, 0})
		check(3, []byte{192, 0, 2, 1})
		check(6, []byte{192, 0, 2, 53, 192, 0, 2, 54})
		check(15, []byte("lab.example"))
		check(26, []byte{0x05, 0x78})
		check(42, []byte{192, 0, 2, 123})
		check(51, []byte{0, 0, 0x0e, 0x10})
		check(54, []byte{192, 0, 2, 1})
		check(58, []byte{0, 0, 0x07, 0x08})
		check(59, []byte{0, 0, 0x0c, 0x4e})
		check(252, []byte("http://192.0.2.1/wpad.dat"))
		for _, absent := range []uint8{43, 60, 67, 97} {
			if p.Options.Has(dhcpv4.GenericOptionCode(absent)) {
				t.Errorf("%s: non-PXE client got option %d", mt, absent)
			}
		}
		if p.BootFileName != "" || !p.ServerIPAddr.IsUnspecified() && p.ServerIPAddr != nil {
			t.Errorf("%s: non-PXE client got file %q siaddr %v", mt, p.BootFileName, p.ServerIPAddr)
		}
	}
	l := fx.lease(t, "192.0.2.100")
	if l.State != lease.Bound || l.Key != lease.MACKey(macA) || l.Hostname != "alpha" || !l.Expires.Equal(fx.now.Add(time.Hour)) {
		t.Fatalf("after ACK the store has %+v, want bound to macA for an hour", l)
	}
	// RFC 2131 §4.1: the ACK to a client without an address goes to yiaddr at chaddr.
	req := msg(t, dhcpv4.MessageTypeRequest, macA)
	if d := Destination(req, ack, PortDHCP, netip.AddrPort{}); !d.Link || d.Addr.Addr().String() != "192.0.2.100" {
		t.Fatalf("destination %+v, want link unicast to 192.0.2.100", d)
	}
}

func TestFullPXEDORA(t *testing.T) {
	fx := newFullFixture(t, true)
	offer, ack := fx.dora(t, biosDiscover(t))
	px := (&Proxy{Boot: proxyConfig()}).Respond(Request{Packet: biosDiscover(t), Port: PortDHCP, Server: server})
	for _, p := range []*dhcpv4.DHCPv4{offer, ack} {
		mt := p.MessageType()
		if p.YourIPAddr.String() != "192.0.2.100" {
			t.Errorf("%s yiaddr %v, want an address and boot info in one reply", mt, p.YourIPAddr)
		}
		if !p.ServerIPAddr.Equal(px.Reply.ServerIPAddr) || p.BootFileName != px.Reply.BootFileName || p.ServerHostName != px.Reply.ServerHostName {
			t.Errorf("%s siaddr/file/sname %v %q %q, want as Proxy: %v %q %q", mt, p.ServerIPAddr, p.BootFileName, p.ServerHostName,
				px.Reply.ServerIPAddr, px.Reply.BootFileName, px.Reply.ServerHostName)
		}
		for _, code := range []uint8{43, 60, 67, 97} {
			if got, want := p.Options.Get(dhcpv4.GenericOptionCode(code)), px.Reply.Options.Get(dhcpv4.GenericOptionCode(code)); !bytes.Equal(got, want) {
				t.Errorf("%s option %d = %q, want %q as Proxy sends", mt, code, got, want)
			}
		}
	}
	// EDK II: no option 43, then boot server discovery on port 4011 answered as Proxy does.
	_, ack = fx.dora(t, edk2Discover(t))
	if ack.Options.Has(dhcpv4.GenericOptionCode(43)) || ack.BootFileName != "snponly.efi" {
		t.Errorf("EDK II ACK: option 43 %v file %q, want none and snponly.efi", ack.Options.Get(dhcpv4.GenericOptionCode(43)), ack.BootFileName)
	}
	bs := withType(dhcpv4.MessageTypeRequest, edk2Discover(t, dhcpv4.WithClientIP(ack.YourIPAddr)))
	got := fx.full.Respond(Request{Packet: bs, Port: PortBootServer, Server: server})
	want := (&Proxy{Boot: proxyConfig()}).Respond(Request{Packet: bs, Port: PortBootServer, Server: server})
	if got.Reply == nil || !bytes.Equal(got.Reply.ToBytes(), want.Reply.ToBytes()) {
		t.Fatalf("PXE 2.1 §2.2.5 port 4011: Full answered %v, want exactly Proxy's reply", got.Reply)
	}
}

func TestFullRequestStates(t *testing.T) {
	for _, auth := range []bool{true, false} {
		name := map[bool]string{true: "authoritative", false: "not authoritative"}[auth]
		t.Run(name, func(t *testing.T) {
			fx := newFullFixture(t, auth)
			fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA))
			bound := "192.0.2.100"

			t.Run("RFC 2131 §4.3.2 INIT-REBOOT for its own address: ACK", func(t *testing.T) {
				r := msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(bound))))
				wantReply(t, fx.respond(t, r), dhcpv4.MessageTypeAck, bound)
			})
			t.Run("RFC 2131 §4.3.2 RENEWING (unicast, ciaddr): ACK to ciaddr, lease extended", func(t *testing.T) {
				fx.now = fx.now.Add(30 * time.Minute)
				r := msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ip4(bound)))
				ack := wantReply(t, fx.respond(t, r), dhcpv4.MessageTypeAck, bound)
				if !ack.ClientIPAddr.Equal(ip4(bound)) {
					t.Errorf("ciaddr %v, want copied %s", ack.ClientIPAddr, bound)
				}
				if d := Destination(r, ack, PortDHCP, netip.AddrPort{}); d.Addr.Addr().String() != bound || d.Link {
					t.Errorf("destination %+v, want unicast to ciaddr", d)
				}
				if l := fx.lease(t, bound); !l.Expires.Equal(fx.now.Add(time.Hour)) {
					t.Errorf("expires %v, want extended to now+1h", l.Expires)
				}
			})
			t.Run("RFC 2131 §4.3.2 REBINDING (broadcast, ciaddr): ACK", func(t *testing.T) {
				r := msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ip4(bound)), dhcpv4.WithBroadcast(true))
				wantReply(t, fx.respond(t, r), dhcpv4.MessageTypeAck, bound)
			})
			t.Run("RFC 2131 §4.3.2 SELECTING another server: silence, offer dropped", func(t *testing.T) {
				fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macB))
				r := msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.101"))),
					dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.9"))))
				wantSilence(t, fx.respond(t, r), "chose server")
			})
			wrong := []struct{ name, addr string }{
				{"INIT-REBOOT for another client's address", "192.0.2.100"},
				{"INIT-REBOOT on the wrong network (outside every subnet)", "203.0.113.7"},
				{"INIT-REBOOT for a reserved address", "192.0.2.50"},
			}
			for _, w := range wrong {
				t.Run("RFC 2131 §4.3.2 "+w.name+": NAK if authoritative, else silence", func(t *testing.T) {
					r := msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(w.addr))))
					res := fx.respond(t, r)
					if !auth {
						wantSilence(t, res, "")
						return
					}
					nak := wantReply(t, res, dhcpv4.MessageTypeNak, "0.0.0.0")
					if !nak.ServerIdentifier().Equal(ip4("192.0.2.1")) || nak.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || nak.BootFileName != "" {
						t.Errorf("NAK has server id %v, lease time %v, file %q: want 54 only (RFC 2131 table 3)",
							nak.ServerIdentifier(), nak.Options.Get(dhcpv4.OptionIPAddressLeaseTime), nak.BootFileName)
					}
					if d := Destination(r, nak, PortDHCP, netip.AddrPort{}); d.Addr.Addr() != Broadcast {
						t.Errorf("RFC 2131 §4.1: NAK goes to %v, want broadcast", d.Addr)
					}
				})
			}
			t.Run("REQUEST arriving where no subnet is configured", func(t *testing.T) {
				r := msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("203.0.113.7"))))
				res := fx.full.Respond(Request{Packet: r, Port: PortDHCP, Server: boot.Server{IP: netip.MustParseAddr("203.0.113.1"), HTTPPort: 8080}})
				if auth {
					wantReply(t, res, dhcpv4.MessageTypeNak, "0.0.0.0")
				} else {
					wantSilence(t, res, "no subnet")
				}
			})
		})
	}
}

func TestFullDeclineReleaseInform(t *testing.T) {
	fx := newFullFixture(t, true)
	t.Run("RFC 2131 §4.3.3 DECLINE: silence, address quarantined, next client gets another", func(t *testing.T) {
		_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA))
		d := msg(t, dhcpv4.MessageTypeDecline, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ack.YourIPAddr)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1"))))
		wantSilence(t, fx.respond(t, d), "quarantined")
		if l := fx.lease(t, ack.YourIPAddr.String()); l.State != lease.Declined {
			t.Fatalf("state %v, want declined", l.State)
		}
		offer := wantReply(t, fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macA)), dhcpv4.MessageTypeOffer, "")
		if offer.YourIPAddr.Equal(ack.YourIPAddr) {
			t.Fatalf("declined address %v offered again", offer.YourIPAddr)
		}
	})
	t.Run("RFC 2131 §4.3.4 RELEASE: silence, lease released, same address on return", func(t *testing.T) {
		_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macB))
		r := msg(t, dhcpv4.MessageTypeRelease, macB, dhcpv4.WithClientIP(ack.YourIPAddr),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1"))))
		wantSilence(t, fx.respond(t, r), "released")
		if l := fx.lease(t, ack.YourIPAddr.String()); l.State != lease.Released {
			t.Fatalf("state %v, want released", l.State)
		}
		fx.now = fx.now.Add(time.Minute)
		wantReply(t, fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macB)), dhcpv4.MessageTypeOffer, ack.YourIPAddr.String())
	})
	t.Run("RELEASE of an address the client does not hold: silence, nothing changes", func(t *testing.T) {
		r := msg(t, dhcpv4.MessageTypeRelease, macRes, dhcpv4.WithClientIP(ip4("192.0.2.101")))
		wantSilence(t, fx.respond(t, r), "release")
	})
	t.Run("RFC 2131 §4.3.5 INFORM: ACK with options, no yiaddr, no lease time", func(t *testing.T) {
		r := msg(t, dhcpv4.MessageTypeInform, macRes, dhcpv4.WithClientIP(ip4("192.0.2.77")))
		ack := wantReply(t, fx.respond(t, r), dhcpv4.MessageTypeAck, "0.0.0.0")
		for _, code := range []uint8{51, 58, 59} {
			if ack.Options.Has(dhcpv4.GenericOptionCode(code)) {
				t.Errorf("INFORM ACK has option %d", code)
			}
		}
		if !bytes.Equal(ack.Options.Get(dhcpv4.OptionRouter), []byte{192, 0, 2, 1}) || !ack.ClientIPAddr.Equal(ip4("192.0.2.77")) {
			t.Errorf("INFORM ACK router %v ciaddr %v", ack.Options.Get(dhcpv4.OptionRouter), ack.ClientIPAddr)
		}
		if d := Destination(r, ack, PortDHCP, netip.AddrPort{}); d.Addr.Addr().String() != "192.0.2.77" {
			t.Errorf("INFORM ACK goes to %v, want ciaddr", d.Addr)
		}
		if _, err := fx.store.Get(context.Background(), netip.MustParseAddr("192.0.2.77")); err == nil {
			t.Error("INFORM created a lease")
		}
	})
	t.Run("reservation: its address, hostname and per-host options", func(t *testing.T) {
		_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macRes))
		if ack.YourIPAddr.String() != "192.0.2.50" || string(ack.Options.Get(dhcpv4.OptionHostName)) != "node50" ||
			string(ack.Options.Get(dhcpv4.GenericOptionCode(66))) != "tftp.lab.example" {
			t.Fatalf("ACK %v host %q opt66 %q", ack.YourIPAddr, ack.Options.Get(dhcpv4.OptionHostName), ack.Options.Get(dhcpv4.GenericOptionCode(66)))
		}
	})
}

func TestFullRelayed(t *testing.T) {
	fx := newFullFixture(t, true)
	agent := []byte{1, 4, 'p', 'o', 'r', 't', 2, 3, 's', 'w', '1'}
	d := msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(relay), gen(82, agent))
	res := fx.respond(t, d)
	offer := wantReply(t, res, dhcpv4.MessageTypeOffer, "198.51.100.10")
	if !bytes.Equal(offer.Options.Get(dhcpv4.OptionRelayAgentInformation), agent) {
		t.Errorf("RFC 3046 §2.2: option 82 = %v, want echoed %v", offer.Options.Get(dhcpv4.OptionRelayAgentInformation), agent)
	}
	if !bytes.Equal(offer.Options.Get(dhcpv4.OptionRouter), []byte{198, 51, 100, 1}) || !offer.GatewayIPAddr.Equal(relay) {
		t.Errorf("router %v giaddr %v, want the relayed subnet's", offer.Options.Get(dhcpv4.OptionRouter), offer.GatewayIPAddr)
	}
	if dst := Destination(d, offer, PortDHCP, netip.AddrPort{}); dst.Addr.String() != "198.51.100.1:67" {
		t.Errorf("RFC 2131 §4.1: relayed reply to %v, want the relay on port 67", dst.Addr)
	}
	_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(relay), gen(82, agent)))
	if !bytes.Equal(ack.Options.Get(dhcpv4.OptionRelayAgentInformation), agent) {
		t.Errorf("ACK option 82 not echoed")
	}
	t.Run("relay of an unknown network: silence on DISCOVER", func(t *testing.T) {
		d := msg(t, dhcpv4.MessageTypeDiscover, macB, dhcpv4.WithGatewayIP(net.IPv4(203, 0, 113, 1)))
		wantSilence(t, fx.respond(t, d), "no subnet")
	})
}

func TestFullExhaustionAndBadInput(t *testing.T) {
	fx := newFullFixture(t, true)
	for i := range 3 {
		fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 1, byte(i)}))
	}
	t.Run("RFC 2131 §4.3.1 no address available: silence", func(t *testing.T) {
		wantSilence(t, fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macB)), "exhausted")
	})
	t.Run("a bound client still gets its own address", func(t *testing.T) {
		wantReply(t, fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 1, 1})), dhcpv4.MessageTypeOffer, "192.0.2.101")
	})
	for _, c := range []struct {
		name string
		mac  net.HardwareAddr
	}{
		{"zero chaddr dropped", net.HardwareAddr{0, 0, 0, 0, 0, 0}},
		{"broadcast chaddr dropped", net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"hlen 8 dropped", net.HardwareAddr{2, 0, 0, 0, 0, 1, 2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantSilence(t, fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, c.mac)), "")
		})
	}
}

func TestFullFitsOption57(t *testing.T) {
	fx := newFullFixture(t, true)
	big := bytes.Repeat([]byte{'x'}, 200)
	fx.full.Subnets[0].Options = append(fx.full.Subnets[0].Options, Option{Code: 240, Value: big}, Option{Code: 241, Value: big}, Option{Code: 242, Value: big})
	t.Run("RFC 2131 §2: without option 57 the reply fits 576 bytes, essentials kept", func(t *testing.T) {
		offer := wantReply(t, fx.respond(t, biosDiscover(t, dhcpv4.WithOption(dhcpv4.OptParameterRequestList(prl(1, 3, 241, 6, 15)...)))), dhcpv4.MessageTypeOffer, "")
		if n := len(offer.ToBytes()); n > 576-28 {
			t.Fatalf("reply is %d bytes, want <= 548", n)
		}
		for _, code := range []uint8{1, 3, 51, 53, 54, 60, 43, 67, 97} {
			if !offer.Options.Has(dhcpv4.GenericOptionCode(code)) {
				t.Errorf("essential option %d dropped", code)
			}
		}
		if !offer.Options.Has(dhcpv4.GenericOptionCode(241)) {
			t.Error("option 241, asked for early in option 55, dropped before unrequested ones")
		}
		if offer.Options.Has(dhcpv4.GenericOptionCode(15)) {
			t.Error("option 15, asked for last, kept while 241 was at risk")
		}
	})
	t.Run("RFC 2132 §9.10 option 57 of 1500: everything fits", func(t *testing.T) {
		offer := wantReply(t, fx.respond(t, biosDiscover(t, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)))), dhcpv4.MessageTypeOffer, "")
		for _, code := range []uint8{240, 241, 242} {
			if !offer.Options.Has(dhcpv4.GenericOptionCode(code)) {
				t.Errorf("option %d dropped although it fits", code)
			}
		}
	})
}

func TestARPRequestLayout(t *testing.T) {
	// struct arpreq of <net/if_arp.h> on Linux: 3 sockaddrs, an int flags and a 16-byte name.
	if n := unsafe.Sizeof(arpreq{}); n != 68 {
		t.Fatalf("sizeof(arpreq) = %d, want 68 as the kernel expects", n)
	}
}

func TestProberLoopback(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ICMP probe needs a raw socket (root or CAP_NET_RAW)")
	}
	p := &Prober{Timeout: 2 * time.Second}
	used, err := p.probe(context.Background(), netip.MustParseAddr("127.0.0.1"))
	if err != nil || !used {
		t.Fatalf("probe 127.0.0.1 = %v, %v; want in use (the kernel answers)", used, err)
	}
}

// TestFullOwnsLeavesPeersClients: in a cluster (Full.Owns) the messages
// every server may get (DISCOVER, INIT-REBOOT, REBINDING, relayed
// REQUESTs) of a client this server does not own are left to its owner;
// a SELECTING REQUEST names its server and a unicast renewal comes to this
// one, so those are still answered here.
func TestFullOwnsLeavesPeersClients(t *testing.T) {
	fx := newFullFixture(t, true)
	fx.full.Owns = func([]byte) bool { return false }
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0x0c, 0x01}
	local := netip.MustParseAddr("192.0.2.1")
	for _, c := range []struct {
		name string
		p    *dhcpv4.DHCPv4
		dst  netip.Addr
		peer bool
	}{
		{"discover", msg(t, dhcpv4.MessageTypeDiscover, mac), Broadcast, true},
		{"init-reboot", msg(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.100")))), Broadcast, true},
		{"rebinding", msg(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip4("192.0.2.100"))), Broadcast, true},
		{"relayed renewal", msg(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip4("198.51.100.10")), dhcpv4.WithGatewayIP(ip4("198.51.100.1"))), local, true},
		{"renewal to this server", msg(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip4("192.0.2.100"))), local, false},
		{"selecting", msg(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithServerIP(ip4("192.0.2.1")),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.100")))), Broadcast, false},
	} {
		res := fx.full.Respond(Request{Packet: c.p, Port: PortDHCP, Server: server, Ctx: context.Background(), Dst: c.dst})
		if res.PeerShare != c.peer {
			t.Errorf("%s: PeerShare %v (%s), want %v", c.name, res.PeerShare, res.Reason, c.peer)
		}
	}
}
