package dhcp4

import (
	"bytes"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestNewReplyMatchesLibrary checks newReply against
// dhcpv4.NewReplyFromRequest, transaction ID included.
func TestNewReplyMatchesLibrary(t *testing.T) {
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	req, err := dhcpv4.NewDiscovery(mac,
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithGatewayIP(net.IPv4(192, 0, 2, 1)),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 3, 'e', 't', '0'})))
	if err != nil {
		t.Fatal(err)
	}
	want, err := dhcpv4.NewReplyFromRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	got := newReply(req)
	if !bytes.Equal(got.ToBytes(), want.ToBytes()) {
		t.Errorf("newReply encodes as\n%x\nwant\n%x", got.ToBytes(), want.ToBytes())
	}
	if got.TransactionID != req.TransactionID {
		t.Errorf("xid %v, want the request's %v", got.TransactionID, req.TransactionID)
	}
}

// TestEncodedLen checks encodedLen against the encoder, around the BOOTP
// minimum and past one option chunk (RFC 3396).
func TestEncodedLen(t *testing.T) {
	for _, size := range []int{0, 1, 20, 50, 254, 255, 256, 510, 511, 1000} {
		d := newReply(&dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, Options: dhcpv4.Options{}})
		d.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
		d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(43), make([]byte, size)))
		d.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(224), nil))
		if got, want := encodedLen(d), len(d.ToBytes()); got != want {
			t.Errorf("option of %d bytes: encodedLen %d, ToBytes %d", size, got, want)
		}
	}
}

// BenchmarkReplyOverhead compares what building and sizing one reply cost
// through the library (NewReplyFromRequest, len(ToBytes)) and here.
func BenchmarkReplyOverhead(b *testing.B) {
	req, err := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56},
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 0x52, 0x54, 0, 0x12, 0x34, 0x56})))
	if err != nil {
		b.Fatal(err)
	}
	fill := func(d *dhcpv4.DHCPv4) {
		d.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
		d.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32)))
		d.UpdateOption(dhcpv4.OptRouter(net.IPv4(192, 0, 2, 1)))
		d.UpdateOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1)))
	}
	b.Run("library", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := dhcpv4.NewReplyFromRequest(req)
			if err != nil {
				b.Fatal(err)
			}
			fill(d)
			if len(d.ToBytes()) < 300 {
				b.Fatal("short")
			}
		}
	})
	b.Run("pxed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := newReply(req)
			fill(d)
			if encodedLen(d) < 300 {
				b.Fatal("short")
			}
		}
	})
}
