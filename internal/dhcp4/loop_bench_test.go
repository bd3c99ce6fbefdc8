package dhcp4

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/fleet"
	"pxed/internal/lease"
)

// BenchmarkLoop is the socket loop's cost per packet, policy included:
// a client on 127.0.0.2 (a relay agent for the full server) sends windows
// of packets to a Server on lo in a private network namespace and reads
// every reply before the next window. ns/packet is per packet answered;
// the reader does not pace itself (BatchWait < 0), so that the figure is
// the work done, not the 1 ms waits that batch reads under load.
//
//   - proxy: ProxyDHCP REQUESTs on port 4011, answered on the reader;
//   - workers: a full server whose writes are not deferred, so that every
//     packet goes to a worker (DISCOVER, then REQUEST);
//   - durable: a full server over lease.Cached on a MemStore (an
//     AsyncStore): the reader answers, and each ACK goes through the
//     per-socket queue of replies that wait for their writes.
func BenchmarkLoop(b *testing.B) {
	full := func(deferred bool) Responder {
		cache, err := lease.NewCached(context.Background(), lease.NewMemStore())
		if err != nil {
			b.Fatal(err)
		}
		m, err := lease.New(cache, lease.Config{Subnet: lease.Subnet{
			Prefix:    netip.MustParsePrefix("127.0.0.0/8"),
			Ranges:    []lease.Range{{First: netip.MustParseAddr("127.1.0.0"), Last: netip.MustParseAddr("127.1.255.255")}},
			ServerID:  netip.MustParseAddr("127.0.0.1"),
			LeaseTime: time.Hour,
		}, Authoritative: true})
		if err != nil {
			b.Fatal(err)
		}
		return &Full{Subnets: []*Subnet{{Leases: m}}, Boot: proxyConfig(), Authoritative: true, DeferredWrites: deferred}
	}
	b.Run("proxy", func(b *testing.B) {
		benchLoop(b, &Proxy{Boot: proxyConfig()}, PortBootServer, false)
	})
	b.Run("proxy-inventory", func(b *testing.B) {
		// The same, each machine noted in the inventory (fleet.Observe):
		// 60,000 MACs cycle through an inventory of 20,000, so most
		// packets also evict a machine.
		f := &fleet.Fleet{Catalog: &boot.Catalog{}}
		if err := f.Open(context.Background(), proxyConfig()); err != nil {
			b.Fatal(err)
		}
		benchLoopWith(b, &Proxy{Boot: f.Catalog}, PortBootServer, false, f)
	})
	b.Run("workers", func(b *testing.B) { benchLoop(b, full(false), PortDHCP, true) })
	b.Run("durable", func(b *testing.B) { benchLoop(b, full(true), PortDHCP, true) })
}

// benchLoop runs the benchmark of one Responder on port: with dora, each
// window is DISCOVERs then the REQUESTs made from their OFFERs.
func benchLoop(b *testing.B, r Responder, port Port, dora bool) { benchLoopWith(b, r, port, dora, nil) }

// benchLoopWith is benchLoop with an inventory observer.
func benchLoopWith(b *testing.B, r Responder, port Port, dora bool, obs boot.Observer) {
	const window = 64
	relay := netip.MustParseAddr("127.0.0.2")
	srv := &Server{Interfaces: []string{"lo"}, Ports: []Port{port}, Responder: r, ListenAddr: netip.MustParseAddr("127.0.0.1"),
		BatchWait: -1, Fleet: obs}
	var (
		socks  []*Socket
		client *net.UDPConn
	)
	err := inPrivateNetns(b, func() error {
		var err error
		if socks, err = srv.Open(); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay, uint16(PortDHCP))))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(ctx, socks) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)}
	buf := make([]byte, 2048)
	exchange := func(ps []*dhcpv4.DHCPv4) []*dhcpv4.DHCPv4 {
		for _, p := range ps {
			if _, err := client.WriteToUDP(p.ToBytes(), to); err != nil {
				b.Fatal(err)
			}
		}
		out := make([]*dhcpv4.DHCPv4, 0, len(ps))
		if err := client.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			b.Fatal(err)
		}
		for range ps {
			k, err := client.Read(buf)
			if err != nil {
				b.Fatalf("%d of %d replies: %v; stats %+v", len(out), len(ps), err, srv.Stats())
			}
			p, err := dhcpv4.FromBytes(buf[:k])
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	giaddr := dhcpv4.WithGatewayIP(relay.AsSlice())
	i := 0
	packets := 0
	b.ReportAllocs()
	b.ResetTimer()
	for packets < b.N {
		ps := make([]*dhcpv4.DHCPv4, 0, window)
		for range window {
			i++
			j := i % 60000
			mac := net.HardwareAddr{0x02, 0, 0, 0, byte(j >> 8), byte(j)}
			if dora {
				d, _ := dhcpv4.NewDiscovery(mac, giaddr)
				ps = append(ps, d)
			} else {
				req := withType(dhcpv4.MessageTypeRequest, edk2Discover(b))
				req.ClientHWAddr = mac
				ps = append(ps, req)
			}
		}
		replies := exchange(ps)
		packets += len(ps)
		if !dora {
			continue
		}
		reqs := ps[:0]
		for _, o := range replies {
			r, err := dhcpv4.NewRequestFromOffer(o, giaddr)
			if err != nil {
				b.Fatal(err)
			}
			reqs = append(reqs, r)
		}
		for _, a := range exchange(reqs) {
			if a.MessageType() != dhcpv4.MessageTypeAck {
				b.Fatalf("reply %v to a REQUEST, want ACK", a.MessageType())
			}
		}
		packets += len(reqs)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(packets), "ns/packet")
}
