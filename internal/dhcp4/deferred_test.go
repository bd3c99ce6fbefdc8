package dhcp4

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/lease"
	"pxed/internal/store"
)

// TestLoopAckAfterDurable: a full server whose reader answers REQUESTs
// with deferred lease writes (lease.Cached over SQLite) sends an ACK only
// once its lease is in SQLite, and withholds (and counts) the ACK whose
// write SQLite refuses. The refusal is real: another server sharing the
// database bound the address after this server loaded its cache.
func TestLoopAckAfterDurable(t *testing.T) {
	ctx := context.Background()
	durable, err := store.Open(ctx, filepath.Join(t.TempDir(), "leases.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer durable.Close()
	cache, err := lease.NewCached(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	first, second := netip.MustParseAddr("127.0.0.100"), netip.MustParseAddr("127.0.0.101")
	m, err := lease.New(cache, lease.Config{Subnet: lease.Subnet{
		Prefix:    netip.MustParsePrefix("127.0.0.0/8"),
		Ranges:    []lease.Range{{First: first, Last: second}},
		ServerID:  netip.MustParseAddr("127.0.0.1"),
		LeaseTime: time.Hour,
	}, Authoritative: true})
	if err != nil {
		t.Fatal(err)
	}
	relay := netip.MustParseAddr("127.0.0.2") // replies go to the relay's port 67
	var (
		srv    *Server
		socks  []*Socket
		client *net.UDPConn
	)
	err = inPrivateNetns(t, func() error {
		srv = &Server{
			Interfaces: []string{"lo"},
			Ports:      []Port{PortDHCP},
			Responder:  &Full{Subnets: []*Subnet{{Leases: m}}, Boot: proxyConfig(), Authoritative: true, NoWait: true},
			ListenAddr: netip.MustParseAddr("127.0.0.1"),
		}
		var err error
		if socks, err = srv.Open(); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay, uint16(PortDHCP))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { srv.Run(runCtx, socks) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(PortDHCP)}
	exchange := func(p *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		t.Helper()
		if _, err := client.WriteToUDP(p.ToBytes(), to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		if err := client.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		for {
			k, err := client.Read(buf)
			if err != nil {
				t.Fatalf("no reply to %v %v: %v", p.MessageType(), p.TransactionID, err)
			}
			r, err := dhcpv4.FromBytes(buf[:k])
			if err != nil {
				t.Fatalf("reply does not decode: %v", err)
			}
			if r.TransactionID == p.TransactionID {
				return r
			}
		}
	}
	giaddr := dhcpv4.WithGatewayIP(relay.AsSlice())

	// A client is offered an address; before it asks for it, another
	// server sharing the store binds that address to its own client
	// (this server's cache does not see that). The bind passes the
	// cache, the durable store refuses it: no ACK.
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 1}
	disc, _ := dhcpv4.NewDiscovery(mac, giaddr)
	offer := exchange(disc)
	taken := AddrFromIP(offer.YourIPAddr)
	if offer.MessageType() != dhcpv4.MessageTypeOffer || (taken != first && taken != second) {
		t.Fatalf("first reply: %v of %v, want an offer from the range", offer.MessageType(), taken)
	}
	free := first
	if taken == first {
		free = second
	}
	other := net.HardwareAddr{0x52, 0x54, 0, 0, 9, 9}
	now := time.Now()
	if _, err := durable.Put(ctx, lease.Lease{Addr: taken, Key: lease.MACKey(other), MAC: other, State: lease.Bound,
		Expires: now.Add(time.Hour), Updated: now}); err != nil {
		t.Fatal(err)
	}
	req, _ := dhcpv4.NewRequestFromOffer(offer, giaddr)
	if _, err := client.WriteToUDP(req.ToBytes(), to); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); srv.Stats().Unsaved == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("REQUEST over a refused write: no reply withheld after 5 s; stats %+v", srv.Stats())
		}
	}
	if st := srv.Stats(); st.Replied != 1 || st.Unsaved != 1 {
		t.Fatalf("stats %+v; want 1 reply sent (the offer), 1 withheld (the ACK)", st)
	}
	if l, _ := durable.Get(ctx, taken); l.Key != lease.MACKey(other) {
		t.Fatalf("durable store: %v held by %q, want the other server's client", taken, l.Key)
	}

	// The next client is offered the free address and its ACK arrives
	// only after its lease is in the durable store.
	mac2 := net.HardwareAddr{0x52, 0x54, 0, 0, 1, 2}
	disc2, _ := dhcpv4.NewDiscovery(mac2, giaddr)
	offer2 := exchange(disc2)
	if got := AddrFromIP(offer2.YourIPAddr); got != free {
		t.Fatalf("second offer: %v, want %v (the other is taken)", got, free)
	}
	req2, _ := dhcpv4.NewRequestFromOffer(offer2, giaddr)
	ack := exchange(req2)
	if ack.MessageType() != dhcpv4.MessageTypeAck || AddrFromIP(ack.YourIPAddr) != free {
		t.Fatalf("reply %v of %v, want an ACK of %v", ack.MessageType(), AddrFromIP(ack.YourIPAddr), free)
	}
	l, err := durable.Get(ctx, free)
	if err != nil || l.Key != lease.MACKey(mac2) || l.State != lease.Bound {
		t.Fatalf("at the ACK the durable store has %+v (%v), want %v bound to the client", l, err, free)
	}
}
