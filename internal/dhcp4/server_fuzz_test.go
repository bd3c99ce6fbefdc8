package dhcp4

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzFullRespond decodes arbitrary packets and runs them through the full
// DHCP server policy over a MemStore (state carries over between inputs,
// as on a real network). It must not panic, every reply must re-decode
// with the request's xid and chaddr, and yiaddr is set only in OFFER and
// ACK.
func FuzzFullRespond(f *testing.F) {
	seeds := []*dhcpv4.DHCPv4{
		msg(f, dhcpv4.MessageTypeDiscover, macA),
		msg(f, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.100"))),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1")))),
		msg(f, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ip4("192.0.2.100"))),
		msg(f, dhcpv4.MessageTypeDecline, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.100")))),
		msg(f, dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(ip4("192.0.2.100"))),
		msg(f, dhcpv4.MessageTypeInform, macA, dhcpv4.WithClientIP(ip4("192.0.2.7"))),
		msg(f, dhcpv4.MessageTypeDiscover, macB, dhcpv4.WithGatewayIP(relay), gen(82, []byte{1, 2, 'p', '1'})),
		biosDiscover(f, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(300))),
		edk2Discover(f),
		ipxeDiscover(f, true, true),
	}
	for _, p := range seeds {
		f.Add(p.ToBytes(), false)
	}
	fx := newFullFixture(f, true)
	f.Fuzz(func(t *testing.T, b []byte, bootServer bool) {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		port := PortDHCP
		if bootServer {
			port = PortBootServer
		}
		res := fx.full.Respond(Request{Packet: p, Port: port, Server: server})
		if res.Reply == nil {
			return
		}
		back, err := dhcpv4.FromBytes(res.Reply.ToBytes())
		if err != nil {
			t.Fatalf("reply does not decode: %v (%s)", err, res.Reason)
		}
		if back.TransactionID != p.TransactionID || back.ClientHWAddr.String() != p.ClientHWAddr.String() {
			t.Fatalf("reply xid %v chaddr %v, request %v %v", back.TransactionID, back.ClientHWAddr, p.TransactionID, p.ClientHWAddr)
		}
		if mt := back.MessageType(); mt != dhcpv4.MessageTypeOffer && mt != dhcpv4.MessageTypeAck && !back.YourIPAddr.Equal(net.IPv4zero) {
			t.Fatalf("%s with yiaddr %v", mt, back.YourIPAddr)
		}
	})
}
