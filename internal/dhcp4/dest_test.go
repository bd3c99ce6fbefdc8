package dhcp4

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func TestDestination(t *testing.T) {
	ap := netip.MustParseAddrPort
	ci := net.IPv4(192, 0, 2, 50)
	yi := net.IPv4(192, 0, 2, 60)
	req := func(broadcast bool, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		p := biosDiscover(t, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(broadcast)}, mods...)...)
		return p
	}
	reply := func(mt dhcpv4.MessageType, yiaddr net.IP) *dhcpv4.DHCPv4 {
		r, err := dhcpv4.New(dhcpv4.WithMessageType(mt), dhcpv4.WithYourIP(yiaddr), dhcpv4.WithBroadcast(false))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name         string
		req, reply   *dhcpv4.DHCPv4
		port         Port
		src          netip.AddrPort
		want         netip.AddrPort
		link         bool
		setBroadcast bool // reply must have the broadcast bit set afterwards
	}{
		{"RFC 2131 §4.1 giaddr set: to relay port 67", req(false, dhcpv4.WithRelay(relay)), reply(dhcpv4.MessageTypeOffer, yi), PortDHCP,
			ap("198.51.100.1:67"), ap("198.51.100.1:67"), false, false},
		{"giaddr wins over ciaddr and broadcast flag", req(true, dhcpv4.WithRelay(relay), dhcpv4.WithClientIP(ci)), reply(dhcpv4.MessageTypeAck, yi), PortDHCP,
			ap("198.51.100.1:67"), ap("198.51.100.1:67"), false, false},
		{"RFC 2131 §4.1 NAK via relay sets the broadcast bit", req(false, dhcpv4.WithRelay(relay)), reply(dhcpv4.MessageTypeNak, nil), PortDHCP,
			ap("198.51.100.1:67"), ap("198.51.100.1:67"), false, true},
		{"RFC 2131 §4.1 NAK without relay: broadcast", req(false, dhcpv4.WithClientIP(ci)), reply(dhcpv4.MessageTypeNak, nil), PortDHCP,
			ap("192.0.2.50:68"), ap("255.255.255.255:68"), false, false},
		{"RFC 2131 §4.1 ciaddr set: unicast to ciaddr", req(false, dhcpv4.WithClientIP(ci), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest)),
			reply(dhcpv4.MessageTypeAck, yi), PortDHCP, ap("192.0.2.50:68"), ap("192.0.2.50:68"), false, false},
		{"ciaddr wins over the broadcast flag", req(true, dhcpv4.WithClientIP(ci), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform)),
			reply(dhcpv4.MessageTypeAck, nil), PortDHCP, ap("192.0.2.50:68"), ap("192.0.2.50:68"), false, false},
		{"RFC 2131 Table 5: a DISCOVER's ciaddr is a claim, never unicast to (ProxyDHCP: broadcast)", req(false, dhcpv4.WithClientIP(ci)),
			reply(dhcpv4.MessageTypeOffer, net.IPv4zero), PortDHCP, ap("0.0.0.0:68"), ap("255.255.255.255:68"), false, false},
		{"a DISCOVER's ciaddr is ignored (server: unicast to yiaddr at chaddr)", req(false, dhcpv4.WithClientIP(ci)),
			reply(dhcpv4.MessageTypeOffer, yi), PortDHCP, ap("0.0.0.0:68"), ap("192.0.2.60:68"), true, false},
		{"RFC 2131 §4.1 broadcast bit set: broadcast", req(true), reply(dhcpv4.MessageTypeOffer, yi), PortDHCP,
			ap("0.0.0.0:68"), ap("255.255.255.255:68"), false, false},
		{"ProxyDHCP offer (yiaddr 0): broadcast", req(false), reply(dhcpv4.MessageTypeOffer, net.IPv4zero), PortDHCP,
			ap("0.0.0.0:68"), ap("255.255.255.255:68"), false, false},
		{"no reply given: broadcast", req(false), nil, PortDHCP, ap("0.0.0.0:68"), ap("255.255.255.255:68"), false, false},
		{"RFC 2131 §4.1 no broadcast bit: unicast to yiaddr at chaddr (Link)", req(false), reply(dhcpv4.MessageTypeOffer, yi), PortDHCP,
			ap("0.0.0.0:68"), ap("192.0.2.60:68"), true, false},
		{"PXE 2.1 §2.2.5 4011 reply to the request's source", req(false, dhcpv4.WithClientIP(ci)), reply(dhcpv4.MessageTypeAck, nil), PortBootServer,
			ap("192.0.2.50:4011"), ap("192.0.2.50:4011"), false, false},
		{"4011 reply to source port 68", req(false), reply(dhcpv4.MessageTypeAck, nil), PortBootServer,
			ap("192.0.2.51:68"), ap("192.0.2.51:68"), false, false},
		{"4011 reply to source even when relayed", req(false, dhcpv4.WithRelay(relay)), reply(dhcpv4.MessageTypeAck, nil), PortBootServer,
			ap("198.51.100.1:67"), ap("198.51.100.1:67"), false, false},
		{"4011 from 0.0.0.0: broadcast to the source port", req(true), reply(dhcpv4.MessageTypeAck, nil), PortBootServer,
			ap("0.0.0.0:4011"), ap("255.255.255.255:4011"), false, false},
		{"4011 from 0.0.0.0 port 0: broadcast to 68", req(true), reply(dhcpv4.MessageTypeAck, nil), PortBootServer,
			ap("0.0.0.0:0"), ap("255.255.255.255:68"), false, false},
		{"4011 with no source: broadcast to 68", req(true), reply(dhcpv4.MessageTypeAck, nil), PortBootServer,
			netip.AddrPort{}, ap("255.255.255.255:68"), false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Destination(tc.req, tc.reply, tc.port, tc.src)
			if d.Addr != tc.want || d.Link != tc.link {
				t.Fatalf("Destination = %v link %v (%s), want %v link %v", d.Addr, d.Link, d.Why, tc.want, tc.link)
			}
			if d.Why == "" {
				t.Fatal("Destination gave no reason")
			}
			if tc.reply != nil && tc.reply.IsBroadcast() != tc.setBroadcast {
				t.Fatalf("reply broadcast bit = %v, want %v", tc.reply.IsBroadcast(), tc.setBroadcast)
			}
		})
	}
}

func TestAddrFromIP(t *testing.T) {
	tests := []struct {
		name string
		ip   net.IP
		want netip.Addr
	}{
		{"4-byte", net.IP{192, 0, 2, 1}, netip.MustParseAddr("192.0.2.1")},
		{"16-byte IPv4 is unmapped", net.IPv4(192, 0, 2, 1), netip.MustParseAddr("192.0.2.1")},
		{"IPv6", net.ParseIP("2001:db8::1"), netip.MustParseAddr("2001:db8::1")},
		{"nil", nil, netip.Addr{}},
		{"bad length", net.IP{1, 2, 3}, netip.Addr{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AddrFromIP(tc.ip); got != tc.want {
				t.Fatalf("AddrFromIP(%v) = %v, want %v", tc.ip, got, tc.want)
			}
		})
	}
}
