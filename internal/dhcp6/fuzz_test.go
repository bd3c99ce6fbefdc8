package dhcp6

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzDecode feeds the request decoding path (Decode, Machine, the
// policy) arbitrary bytes: nothing may panic, and a message that decodes
// encodes to bytes that decode to the same encoding (round trip).
// Seeds: testdata/fuzz/FuzzDecode (nested Relay-Forw, an option running
// past the end, truncated DUIDs) and the messages of the policy tests.
func FuzzDecode(f *testing.F) {
	f.Add(edk2Solicit(f, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_X86_64).ToBytes())
	f.Add(edk2Solicit(f, dhcpv6.MessageTypeRequest, llt(clientMAC), iana.EFI_X86_64).ToBytes())
	f.Add(ipxeMessage(f, dhcpv6.MessageTypeInformationRequest).ToBytes())
	inner := ipxeMessage(f, dhcpv6.MessageTypeSolicit)
	r1, _ := dhcpv6.EncapsulateRelay(inner, dhcpv6.MessageTypeRelayForward, net.ParseIP("2001:db8::"), net.ParseIP("fe80::1"))
	r2, _ := dhcpv6.EncapsulateRelay(r1, dhcpv6.MessageTypeRelayForward, net.ParseIP("2001:db8:1::"), net.ParseIP("2001:db8::2"))
	f.Add(r2.ToBytes())
	p := &Proxy{Boot: testConfig()}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, _, err := Decode(b)
		if err != nil {
			return
		}
		src := netip.MustParseAddrPort("[fe80::5054:ff:fede:1%eth0]:546")
		_ = Machine(m, src.Addr())
		for _, port := range []Port{PortDHCP, PortBootServer} {
			res := p.Respond(Request{Msg: m, Port: port, Server: srv, ServerID: serverDUID, Src: src})
			if res.Reply != nil {
				if _, err := dhcpv6.MessageFromBytes(res.Reply.ToBytes()); err != nil {
					t.Fatalf("reply does not decode: %v", err)
				}
			}
		}
		enc := m.ToBytes()
		m2, _, _, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v\n% x", err, enc)
		}
		if enc2 := m2.ToBytes(); !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip differs:\n% x\n% x", enc, enc2)
		}
	})
}
