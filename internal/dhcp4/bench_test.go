package dhcp4

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/lease"
)

// BenchmarkFullDORA is the server's work for one plain client (as perfdhcp
// sends it) without sockets: decode the DISCOVER, Respond, encode the OFFER;
// decode the REQUEST, Respond, encode the ACK. Leases are read through
// lease.Cached over a MemStore, as the server reads them over SQLite.
// Distinct MACs, 60,000 of them before they repeat.
func BenchmarkFullDORA(b *testing.B) {
	ctx := context.Background()
	cache, err := lease.NewCached(ctx, lease.NewMemStore())
	if err != nil {
		b.Fatal(err)
	}
	m, err := lease.New(cache, lease.Config{Subnet: lease.Subnet{
		Prefix:    netip.MustParsePrefix("198.18.0.0/15"),
		Ranges:    []lease.Range{{First: netip.MustParseAddr("198.18.1.0"), Last: netip.MustParseAddr("198.19.255.250")}},
		ServerID:  netip.MustParseAddr("198.18.0.1"),
		LeaseTime: time.Hour,
	}, Authoritative: true})
	if err != nil {
		b.Fatal(err)
	}
	full := &Full{Subnets: []*Subnet{{Leases: m}}, Boot: proxyConfig(), Authoritative: true}
	srv := server
	srv.IP = netip.MustParseAddr("198.18.0.1")
	relay := net.IPv4(198, 18, 0, 2)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		j := i % 60000
		mac := net.HardwareAddr{0x02, 0, 0, 0, byte(j >> 8), byte(j)}
		d, _ := dhcpv4.NewDiscovery(mac, dhcpv4.WithGatewayIP(relay))
		in, err := dhcpv4.FromBytes(d.ToBytes())
		if err != nil {
			b.Fatal(err)
		}
		off := full.Respond(Request{Packet: in, Port: PortDHCP, Server: srv, Ctx: ctx})
		if off.Reply == nil {
			b.Fatalf("no offer: %s", off.Reason)
		}
		wire := off.Reply.ToBytes()
		o, _ := dhcpv4.FromBytes(wire)
		r, _ := dhcpv4.NewRequestFromOffer(o)
		in, err = dhcpv4.FromBytes(r.ToBytes())
		if err != nil {
			b.Fatal(err)
		}
		ack := full.Respond(Request{Packet: in, Port: PortDHCP, Server: srv, Ctx: ctx})
		if ack.Reply == nil || ack.Reply.MessageType() != dhcpv4.MessageTypeAck {
			b.Fatalf("no ack: %s", ack.Reason)
		}
		_ = ack.Reply.ToBytes()
	}
}

// TestQuick: the reader answers itself only what needs no probe and no
// wait for the disk: every ProxyDHCP packet, and with deferred lease
// writes every packet of a full server but the DISCOVERs it probes for.
func TestQuick(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	disc, _ := dhcpv4.NewDiscovery(mac)
	req, _ := dhcpv4.NewRequestFromOffer(disc)
	rel, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease))
	manager := func(probe func(context.Context, netip.Addr) bool) *Subnet {
		m, err := lease.New(lease.NewMemStore(), lease.Config{Subnet: lease.Subnet{
			Prefix:   netip.MustParsePrefix("192.0.2.0/24"),
			Ranges:   []lease.Range{{First: netip.MustParseAddr("192.0.2.10"), Last: netip.MustParseAddr("192.0.2.20")}},
			ServerID: netip.MustParseAddr("192.0.2.1"),
		}, Probe: probe})
		if err != nil {
			t.Fatal(err)
		}
		return &Subnet{Leases: m}
	}
	plain := manager(nil)
	probing := manager(func(context.Context, netip.Addr) bool { return false })
	deferred := func(sns ...*Subnet) *Full { return &Full{DeferredWrites: true, Subnets: sns} }
	for _, tc := range []struct {
		name string
		q    Quicker
		p    *dhcpv4.DHCPv4
		want bool
	}{
		{"proxy discover", &Proxy{}, disc, true},
		{"proxy request", &Proxy{}, req, true},
		{"full discover, no probe", deferred(plain), disc, true},
		{"full discover, probing", deferred(probing), disc, false},
		{"full discover, one subnet probing", deferred(plain, probing), disc, false},
		{"full request, writes deferred", deferred(plain), req, true},
		{"full release, writes deferred", deferred(plain), rel, true},
		{"full request, probing, writes deferred", deferred(probing), req, true},
		{"full request, writes not deferred", &Full{Subnets: []*Subnet{plain}}, req, false},
		{"full discover, writes not deferred", &Full{Subnets: []*Subnet{plain}}, disc, false},
	} {
		if got := tc.q.Quick(tc.p); got != tc.want {
			t.Errorf("%s: Quick = %v, want %v", tc.name, got, tc.want)
		}
	}
}
