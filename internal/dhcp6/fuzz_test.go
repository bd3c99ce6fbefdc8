package dhcp6

import (
	"bytes"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// checkAppend fails t unless appendMessage encodes m as the library's
// ToBytes does, after a prefix already in the buffer.
func checkAppend(t *testing.T, m *dhcpv6.Message) {
	t.Helper()
	prefix := []byte{0xde, 0xad}
	want := append(append([]byte(nil), prefix...), m.ToBytes()...)
	if got := appendMessage(append([]byte(nil), prefix...), m); !bytes.Equal(got, want) {
		t.Fatalf("appendMessage differs from ToBytes:\n% x\n% x", got, want)
	}
}

// FuzzDecode feeds the request decoding path (Decode, Machine, the
// proxy and server policies) arbitrary bytes: nothing may panic, and a message that decodes
// encodes to bytes that decode to the same encoding (round trip, after
// the library's first normalisation); appendMessage encodes it and every
// reply exactly as the library does.
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
	f.Add(plain(dhcpv6.MessageTypeRequest, llt(clientMAC), serverDUID, 1, "2001:db8::100").ToBytes())
	f.Add(plain(dhcpv6.MessageTypeRenew, llt(clientMAC), serverDUID, 1, "2001:db8::100", "2001:db8:9::1").ToBytes())
	f.Add(plain(dhcpv6.MessageTypeRelease, llt(clientMAC), serverDUID, 1, "2001:db8::100").ToBytes())
	f.Add(plain(dhcpv6.MessageTypeConfirm, llt(clientMAC), nil, 1, "2001:db8::100").ToBytes())
	p := &Proxy{Boot: testConfig()}
	// The server role over one store for the whole run: state from
	// earlier inputs (leases, offers) meets later ones, as on a network.
	full, _ := newFull(f, func(x *Full) { x.RapidCommit, x.Preference = true, 255 })
	f.Fuzz(func(t *testing.T, b []byte) {
		// pxed's decoder takes a message only as the library decodes it.
		if fm, ok := fastDecode(b); ok {
			lm, err := dhcpv6.FromBytes(b)
			if err != nil {
				t.Fatalf("fastDecode took a message the library rejects (%v):\n% x", err, b)
			}
			if !reflect.DeepEqual(fm, lm) {
				t.Fatalf("fastDecode differs from the library:\n%s\n%s", fm.LongString(2), lm.LongString(2))
			}
		}
		m, _, _, err := Decode(b)
		if err != nil {
			return
		}
		src := netip.MustParseAddrPort("[fe80::5054:ff:fede:1%eth0]:546")
		_ = Machine(m, src.Addr())
		for _, port := range []Port{PortDHCP, PortBootServer} {
			for _, res := range []Result{
				p.Respond(Request{Msg: m, Port: port, Server: srv, ServerID: serverDUID, Src: src}),
				full.Respond(Request{Msg: m, Port: port, Server: srv, ServerID: serverDUID, Src: src, Interface: "eth0"}),
			} {
				if res.Reply != nil {
					if _, err := dhcpv6.MessageFromBytes(res.Reply.ToBytes()); err != nil {
						t.Fatalf("reply does not decode: %v", err)
					}
					checkAppend(t, res.Reply)
				}
			}
		}
		// Encoding is stable once decoded: the library normalises some
		// fields on the first pass (the prefix bits of an IA Prefix
		// beyond its length, option 26), so compare the second and third.
		enc := m.ToBytes()
		checkAppend(t, m)
		m2, _, _, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v\n% x", err, enc)
		}
		enc2 := m2.ToBytes()
		m3, _, _, err := Decode(enc2)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v\n% x", err, enc2)
		}
		if enc3 := m3.ToBytes(); !bytes.Equal(enc2, enc3) {
			t.Fatalf("round trip differs:\n% x\n% x", enc2, enc3)
		}
	})
}
