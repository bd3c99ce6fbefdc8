package dhcp4

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// encodeSeeds are replies and requests with what the encoder must get
// right: relay agent information (last), long options (split), empty
// options, long server and file names, a long chaddr, no addresses.
func encodeSeeds(t testing.TB) []*dhcpv4.DHCPv4 {
	long := bytes.Repeat([]byte{'x'}, 600)
	p, err := dhcpv4.New(
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 2, 'a', 'b'})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(224), long)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(80), nil)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionEnd, []byte{1})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionPad, []byte{1})),
		dhcpv4.WithYourIP(net.IPv4(198, 18, 1, 2)),
		dhcpv4.WithServerIP(net.ParseIP("2001:db8::1")),
	)
	if err != nil {
		t.Fatal(err)
	}
	p.ServerHostName = strings.Repeat("s", 70)
	p.BootFileName = strings.Repeat("f", 130)
	p.ClientHWAddr = bytes.Repeat([]byte{0xaa}, 20)
	bare := &dhcpv4.DHCPv4{}
	return []*dhcpv4.DHCPv4{edk2Discover(t), biosDiscover(t), ipxeDiscover(t, true, true),
		edk2Discover(t, dhcpv4.WithRelay(relay)), p, bare}
}

func TestAppendPacketMatchesToBytes(t *testing.T) {
	for i, p := range encodeSeeds(t) {
		if p.ServerIPAddr != nil && p.ServerIPAddr.To4() == nil {
			// ToBytes panics on an IPv6 address; appendPacket writes zeros.
			got := appendPacket(nil, p)
			p.ServerIPAddr = nil
			if want := p.ToBytes(); !bytes.Equal(got, want) {
				t.Errorf("seed %d with an IPv6 siaddr: not zeros:\n got %x\nwant %x", i, got, want)
			}
			continue
		}
		if got, want := appendPacket([]byte{1, 2}, p), p.ToBytes(); !bytes.Equal(got[2:], want) || got[0] != 1 {
			t.Errorf("seed %d:\n got %x\nwant %x", i, got[2:], want)
		}
	}
}

// FuzzAppendPacket: every packet the library decodes encodes to the
// library's own bytes.
func FuzzAppendPacket(f *testing.F) {
	for _, p := range encodeSeeds(f) {
		p.ServerIPAddr = nil
		f.Add(p.ToBytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		if got, want := appendPacket(nil, p), p.ToBytes(); !bytes.Equal(got, want) {
			t.Fatalf("appendPacket != ToBytes:\n got %x\nwant %x", got, want)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	p := encodeSeeds(b)[0]
	b.Run("ToBytes", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = p.ToBytes()
		}
	})
	b.Run("appendPacket", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, replyCapacity)
		for b.Loop() {
			buf = appendPacket(buf[:0], p)
		}
	})
}
