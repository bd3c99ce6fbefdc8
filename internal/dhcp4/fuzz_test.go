package dhcp4

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// FuzzDHCPRequest feeds arbitrary packets through everything the loop does
// with one: decode, Validate, Machine, Respond on both ports, Destination.
// None may panic, and a reply must survive the wire with the request's xid
// and chaddr and no address.
func FuzzDHCPRequest(f *testing.F) {
	seeds := []*dhcpv4.DHCPv4{
		edk2Discover(f),
		biosDiscover(f),
		ipxeDiscover(f, true, true),
		ipxeDiscover(f, false, false),
		edk2Discover(f, dhcpv4.WithRelay(relay)),
		withType(dhcpv4.MessageTypeRequest, edk2Discover(f, gen(43, []byte{71, 4, 0x80, 0, 0, 0, 255}))),
		withType(dhcpv4.MessageTypeInform, biosDiscover(f, dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 51)))),
		discover(f, macEFI, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003000")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64_HTTP))),
		discover(f, macBIOS),
	}
	for _, p := range seeds {
		f.Add(p.ToBytes(), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, bootServer bool) {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		_ = Validate(p)
		_ = Machine(p)
		_ = Describe(p)
		px := &Proxy{Boot: proxyConfig()}
		port := PortDHCP
		if bootServer {
			port = PortBootServer
		}
		res := px.Respond(Request{Packet: p, Port: port, Server: server})
		for _, src := range []netip.AddrPort{netip.MustParseAddrPort("192.0.2.50:68"), netip.MustParseAddrPort("0.0.0.0:68")} {
			d := Destination(p, res.Reply, port, src)
			if !d.Addr.IsValid() || d.Addr.Port() == 0 {
				t.Fatalf("Destination = %v (%s): not an address to send to", d.Addr, d.Why)
			}
		}
		if res.Reply == nil {
			if res.Reason == "" {
				t.Fatal("ignored without a reason")
			}
			return
		}
		r, err := dhcpv4.FromBytes(res.Reply.ToBytes())
		if err != nil {
			t.Fatalf("reply does not decode: %v\nrequest % x", err, b)
		}
		if r.TransactionID != p.TransactionID || !bytes.Equal(r.ClientHWAddr, p.ClientHWAddr) {
			t.Fatalf("reply xid %v chaddr %s, want %v %s", r.TransactionID, r.ClientHWAddr, p.TransactionID, p.ClientHWAddr)
		}
		if !r.YourIPAddr.Equal(net.IPv4zero) {
			t.Fatalf("reply yiaddr %v, want 0.0.0.0", r.YourIPAddr)
		}
		if r.OpCode != dhcpv4.OpcodeBootReply {
			t.Fatalf("reply op %v", r.OpCode)
		}
	})
}
