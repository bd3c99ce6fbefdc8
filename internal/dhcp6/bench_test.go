package dhcp6

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"pxed/internal/lease"
)

// BenchmarkFullSARR is the server role's work for one client's
// Solicit-Advertise-Request-Reply over an in-memory store (writes are
// not deferred here: the store's cost is not the policy's), decoding each
// message from its wire form and encoding each reply, as the socket loop
// does: the policy's share of the CPU per exchange in bench/dhcp.sh -6.
func BenchmarkFullSARR(b *testing.B) {
	// Leases are read from memory, as in pxed (lease.Cached indexes them).
	st, err := lease.NewCached(context.Background(), lease.NewMemStore())
	if err != nil {
		b.Fatal(err)
	}
	m, err := lease.New(st, lease.Config{Authoritative: true, Subnet: lease.Subnet{
		Prefix:    netip.MustParsePrefix("2001:db8::/64"),
		Ranges:    []lease.Range{{First: netip.MustParseAddr("2001:db8::1:0"), Last: netip.MustParseAddr("2001:db8::ffff:ffff")}},
		LeaseTime: time.Hour,
	}})
	if err != nil {
		b.Fatal(err)
	}
	f := &Full{Boot: testConfig(), Preference: 255, Subnets: []*Subnet{{Leases: m, Interface: "eth0"}}}
	ctx := context.Background()
	wire := func(msg *dhcpv6.Message) *dhcpv6.Message {
		d, _, _, err := Decode(msg.ToBytes())
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	var buf []byte // replies are encoded into a reused buffer, as the loop does
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		duid := llt(net.HardwareAddr{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)})
		res := f.Respond(Request{Msg: wire(plain(dhcpv6.MessageTypeSolicit, duid, nil, 1)), Port: PortDHCP, Server: srv, ServerID: serverDUID, Src: linkLocal, Interface: "eth0", Ctx: ctx})
		if res.Reply == nil {
			b.Fatalf("solicit: %s", res.Reason)
		}
		buf = appendMessage(buf[:0], res.Reply)
		addr := res.Reply.Options.OneIANA().Options.OneAddress().IPv6Addr.String()
		res = f.Respond(Request{Msg: wire(plain(dhcpv6.MessageTypeRequest, duid, serverDUID, 1, addr)), Port: PortDHCP, Server: srv, ServerID: serverDUID, Src: linkLocal, Interface: "eth0", Ctx: ctx})
		if res.Learn.String() != addr {
			b.Fatalf("request: %s", res.Reason)
		}
		buf = appendMessage(buf[:0], res.Reply)
	}
}
