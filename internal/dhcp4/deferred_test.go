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

// relayLab runs a Server with one socket on 127.0.0.1:67 in a private
// network namespace, and a client that sends as a relay agent (giaddr
// 127.0.0.2) and receives the replies on the relay's port 67.
type relayLab struct {
	t      *testing.T
	srv    *Server
	client *net.UDPConn
	to     *net.UDPAddr
	giaddr dhcpv4.Modifier
	got    map[dhcpv4.TransactionID]*dhcpv4.DHCPv4 // replies read while awaiting others
}

// newRelayLab opens srv (Responder and Workers set by the caller) and runs it.
func newRelayLab(t *testing.T, srv *Server) *relayLab {
	relay := netip.MustParseAddr("127.0.0.2")
	l := &relayLab{t: t, srv: srv, to: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(PortDHCP)},
		giaddr: dhcpv4.WithGatewayIP(relay.AsSlice()), got: map[dhcpv4.TransactionID]*dhcpv4.DHCPv4{}}
	var socks []*Socket
	err := inPrivateNetns(t, func() error {
		srv.Interfaces, srv.Ports, srv.ListenAddr = []string{"lo"}, []Port{PortDHCP}, netip.MustParseAddr("127.0.0.1")
		var err error
		if socks, err = l.srv.Open(); err != nil {
			return err
		}
		l.client, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay, uint16(PortDHCP))))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { l.srv.Run(ctx, socks) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		l.client.Close()
	})
	return l
}

func (l *relayLab) send(p *dhcpv4.DHCPv4) {
	l.t.Helper()
	if _, err := l.client.WriteToUDP(p.ToBytes(), l.to); err != nil {
		l.t.Fatal(err)
	}
}

// await returns the reply to p (the next one with its xid), waiting 5 s
// at most.
func (l *relayLab) await(p *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	l.t.Helper()
	buf := make([]byte, 2048)
	if err := l.client.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		l.t.Fatal(err)
	}
	for l.got[p.TransactionID] == nil {
		k, err := l.client.Read(buf)
		if err != nil {
			l.t.Fatalf("no reply to %v %v: %v", p.MessageType(), p.TransactionID, err)
		}
		r, err := dhcpv4.FromBytes(buf[:k])
		if err != nil {
			l.t.Fatalf("reply does not decode: %v", err)
		}
		l.got[r.TransactionID] = r
	}
	r := l.got[p.TransactionID]
	delete(l.got, p.TransactionID) // a REQUEST made from an OFFER has its xid
	return r
}

func (l *relayLab) exchange(p *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	l.t.Helper()
	l.send(p)
	return l.await(p)
}

// twoAddresses is a Manager over st leasing 127.0.0.100-101.
func twoAddresses(t *testing.T, st lease.Store, probe func(context.Context, netip.Addr) bool) *lease.Manager {
	t.Helper()
	m, err := lease.New(st, lease.Config{Subnet: lease.Subnet{
		Prefix:    netip.MustParsePrefix("127.0.0.0/8"),
		Ranges:    []lease.Range{{First: netip.MustParseAddr("127.0.0.100"), Last: netip.MustParseAddr("127.0.0.101")}},
		ServerID:  netip.MustParseAddr("127.0.0.1"),
		LeaseTime: time.Hour,
	}, Authoritative: true, Probe: probe})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

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
	lab := newRelayLab(t, &Server{Responder: &Full{Subnets: []*Subnet{{Leases: twoAddresses(t, cache, nil)}}, Boot: proxyConfig(),
		Authoritative: true, DeferredWrites: true}})
	srv, exchange, giaddr := lab.srv, lab.exchange, lab.giaddr

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
	lab.send(req)
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

// TestLoopReaderNotStalledByProbe: with address probing on, DISCOVERs go
// to the workers (a probe waits), while REQUESTs are answered on the
// socket's reader. A REQUEST of a client whose DISCOVER is being probed
// cannot be answered without waiting for that client: it goes to a worker
// instead of stalling the reader. With a single worker, held by the
// probe, another client's REQUEST is still answered meanwhile, so the
// reader answered it; the first client's REQUEST is answered once the
// probe ends.
func TestLoopReaderNotStalledByProbe(t *testing.T) {
	ctx := context.Background()
	cache, err := lease.NewCached(ctx, lease.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	probing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	probe := func(ctx context.Context, _ netip.Addr) bool {
		first := false
		once.Do(func() { first = true })
		if first {
			close(probing)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return false
	}
	full := &Full{Subnets: []*Subnet{{Leases: twoAddresses(t, cache, probe)}}, Boot: proxyConfig(), Authoritative: true,
		DeferredWrites: true}
	lab := newRelayLab(t, &Server{Responder: full, Workers: 1})
	initReboot := func(mac net.HardwareAddr, ip string) *dhcpv4.DHCPv4 {
		p, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP(ip))), lab.giaddr)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	a := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 1}
	discA, _ := dhcpv4.NewDiscovery(a, lab.giaddr)
	lab.send(discA)
	select {
	case <-probing:
	case <-time.After(5 * time.Second):
		t.Fatal("the DISCOVER's address probe did not start within 5 s")
	}
	reqA := initReboot(a, "127.0.0.100")
	lab.send(reqA) // A is held by its probe: to a worker, not the reader

	b := net.HardwareAddr{0x52, 0x54, 0, 0, 2, 2}
	if r := lab.exchange(initReboot(b, "127.0.0.101")); r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("REQUEST of a client with no lease, authoritative: %v, want NAK", r.MessageType())
	}
	close(release)
	if r := lab.await(discA); r.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER after its probe: %v, want OFFER", r.MessageType())
	}
	if r := lab.await(reqA); r.MessageType() != dhcpv4.MessageTypeAck && r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("REQUEST handed to a worker: %v, want an ACK or a NAK", r.MessageType())
	}
	if st := lab.srv.Stats(); st.Overload != 0 {
		t.Errorf("stats %+v: packets dropped", st)
	}
}
