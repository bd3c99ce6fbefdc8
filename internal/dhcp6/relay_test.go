package dhcp6

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// TestRelayReply: a Solicit relayed through two relays (RFC 8415 §19) is
// decoded to the client's message, the client's MAC comes from the inner
// relay's Client Link-Layer Address (RFC 6939), and the reply goes back in
// one Relay-Repl per Relay-Forw with hop count, link/peer address and
// Interface-ID copied (§19.3).
func TestRelayReply(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 0x06, 0x07}
	sol := edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(mac), iana.EFI_X86_64)
	in, err := dhcpv6.EncapsulateRelay(sol, dhcpv6.MessageTypeRelayForward, net.ParseIP("2001:db8:1::1"), net.ParseIP("fe80::5054:ff:fe00:607"))
	if err != nil {
		t.Fatal(err)
	}
	in.AddOption(dhcpv6.OptInterfaceID([]byte("eth7")))
	in.AddOption(dhcpv6.OptClientLinkLayerAddress(iana.HWTypeEthernet, mac))
	out, err := dhcpv6.EncapsulateRelay(in, dhcpv6.MessageTypeRelayForward, net.ParseIP("2001:db8:2::1"), net.ParseIP("2001:db8:1::1"))
	if err != nil {
		t.Fatal(err)
	}
	out.HopCount = 1
	out.AddOption(dhcpv6.OptInterfaceID([]byte("uplink")))

	m, outer, inner, err := Decode(out.ToBytes())
	if err != nil || outer == nil || inner == nil {
		t.Fatalf("Decode: %v (outer %v, inner %v)", err, outer, inner)
	}
	if m.MessageType != dhcpv6.MessageTypeSolicit || m.TransactionID != sol.TransactionID {
		t.Fatalf("inner message %v, want the Solicit", m.Summary())
	}
	if _, got := inner.Options.ClientLinkLayerAddress(); got.String() != mac.String() {
		t.Fatalf("client link-layer address %v, want %v", got, mac)
	}
	rep, err := dhcpv6.NewAdvertiseFromSolicit(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := relayReply(outer, rep)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dhcpv6.FromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		hops uint8
		link string
		iid  string
	}{{1, "2001:db8:2::1", "uplink"}, {0, "2001:db8:1::1", "eth7"}} {
		r, ok := d.(*dhcpv6.RelayMessage)
		if !ok || r.MessageType != dhcpv6.MessageTypeRelayReply {
			t.Fatalf("layer %d: %v, want a Relay-Repl", i, d.Summary())
		}
		if r.HopCount != want.hops || !r.LinkAddr.Equal(net.ParseIP(want.link)) || !bytes.Equal(r.Options.InterfaceID(), []byte(want.iid)) {
			t.Errorf("layer %d: hops %d link %v interface-id %q, want %d %s %q", i, r.HopCount, r.LinkAddr, r.Options.InterfaceID(), want.hops, want.link, want.iid)
		}
		d = r.Options.RelayMessage()
	}
	if got, ok := d.(*dhcpv6.Message); !ok || got.MessageType != dhcpv6.MessageTypeAdvertise || got.TransactionID != sol.TransactionID {
		t.Fatalf("innermost %v, want the Advertise", d)
	}
}

func TestSLAACAddr(t *testing.T) {
	a, ok := slaacAddr(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("fe80::5054:ff:fe00:4601"))
	if !ok || a != netip.MustParseAddr("2001:db8::5054:ff:fe00:4601") {
		t.Fatalf("slaacAddr = %v %v", a, ok)
	}
	if mac := eui64MAC(netip.MustParseAddr("fe80::5054:ff:fe00:4601")); mac.String() != "52:54:00:00:46:01" {
		t.Fatalf("eui64MAC = %v", mac)
	}
}
