package dhcp4

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/events"
	"pxed/internal/lease"
	"pxed/internal/udploop"
)

// Policy tests for a hostile boot network (issue 13), no sockets.

// from answers p as if it came from src (a client's own address, or a
// relay's).
func (fx *fullFixture) from(t *testing.T, p *dhcpv4.DHCPv4, src string) Result {
	t.Helper()
	return fx.full.Respond(Request{Packet: p, Port: PortDHCP, Server: server, Ctx: context.Background(),
		Src: netip.AddrPortFrom(netip.MustParseAddr(src), 68)})
}

func floodMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xee, 0, 0, byte(i >> 8), byte(i)}
}

func TestFullPoolExhausted(t *testing.T) {
	fx := newFullFixture(t, true)
	for i := range 3 {
		fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, floodMAC(i)))
	}
	res := fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macB))
	wantSilence(t, res, "pool 192.0.2.0/24 exhausted")
	if !res.PoolExhausted || res.Foreign {
		t.Errorf("PoolExhausted %v Foreign %v, want only PoolExhausted", res.PoolExhausted, res.Foreign)
	}
	res = fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, floodMAC(1)))
	wantReply(t, res, dhcpv4.MessageTypeOffer, "192.0.2.101")
	if res.PoolExhausted {
		t.Error("a bound client's DISCOVER marked PoolExhausted")
	}
}

// TestFullStarvation: past StarvationClients new clients in a window the
// next new ones are marked; known clients (a lease, an offer, a
// reservation) are never counted and keep their leases and renewals
// through the flood; a new window starts the count again.
func TestFullStarvation(t *testing.T) {
	fx := newFullFixture(t, true)
	fx.full.StarvationClients = 5
	_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA)) // new client 1
	if ack.YourIPAddr.String() != "192.0.2.100" {
		t.Fatalf("A got %v", ack.YourIPAddr)
	}
	const flood = 50
	marked, exhausted := 0, 0
	for i := range flood { // new clients 2 to 51 within a second
		if i%6 == 0 {
			fx.now = fx.now.Add(time.Second / 10)
		}
		res := fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, floodMAC(i)))
		if res.Starvation {
			marked++
		}
		if res.PoolExhausted {
			exhausted++
		}
		if i == 10 { // mid-flood, the known client renews and reboots
			renew := msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ack.YourIPAddr))
			r := fx.from(t, renew, "192.0.2.100")
			wantReply(t, r, dhcpv4.MessageTypeAck, "192.0.2.100")
			if r.Starvation {
				t.Error("a known client's renewal marked Starvation")
			}
			r = fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macA))
			wantReply(t, r, dhcpv4.MessageTypeOffer, "192.0.2.100")
			if r.Starvation {
				t.Error("a known client's DISCOVER marked Starvation")
			}
			r = fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macRes))
			wantReply(t, r, dhcpv4.MessageTypeOffer, "192.0.2.50")
			if r.Starvation {
				t.Error("a reserved client's DISCOVER marked Starvation")
			}
		}
	}
	if want := flood + 1 - 5; marked != want {
		t.Errorf("%d new clients marked, want %d (all but the first 5)", marked, want)
	}
	if exhausted != flood-2 {
		t.Errorf("%d DISCOVERs found the pool exhausted, want %d (two addresses were left)", exhausted, flood-2)
	}
	if r := fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, floodMAC(0))); r.Starvation {
		t.Error("the retransmission of a client holding an offer marked Starvation")
	}
	fx.now = fx.now.Add(DefaultStarvationWindow)
	if r := fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macB)); r.Starvation {
		t.Error("the first new client of a new window marked Starvation")
	}
	fx.now = fx.now.Add(time.Hour / 2)
	renew := msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ack.YourIPAddr))
	wantReply(t, fx.from(t, renew, "192.0.2.100"), dhcpv4.MessageTypeAck, "192.0.2.100")
}

func TestFullStarvationThresholds(t *testing.T) {
	count := func(limit int) (marked int) {
		fx := newFullFixture(t, true)
		fx.full.StarvationClients = limit
		for i := range DefaultStarvationClients + 3 {
			if fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, floodMAC(i))).Starvation {
				marked++
			}
		}
		return marked
	}
	if got := count(0); got != 3 {
		t.Errorf("default: %d marked of %d new clients, want 3", got, DefaultStarvationClients+3)
	}
	if got := count(-1); got != 0 {
		t.Errorf("check off: %d marked, want 0", got)
	}
}

// TestFullForeign: a DECLINE or RELEASE that is not the lease holder's
// changes nothing and is marked Foreign; the holder's own still works.
func TestFullForeign(t *testing.T) {
	fx := newFullFixture(t, true)
	fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA)) // .100
	fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macB)) // .101
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1")))
	release := func(mac net.HardwareAddr, ciaddr string) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeRelease, mac, dhcpv4.WithClientIP(ip4(ciaddr)), sid)
	}
	decline := func(mac net.HardwareAddr, addr string) *dhcpv4.DHCPv4 {
		return msg(t, dhcpv4.MessageTypeDecline, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(addr))), sid)
	}
	wantBound := func(t *testing.T, addr string, mac net.HardwareAddr) {
		t.Helper()
		if l := fx.lease(t, addr); l.State != lease.Bound || l.MAC.String() != mac.String() {
			t.Fatalf("%s: %v of %v, want bound to %v", addr, l.State, l.MAC, mac)
		}
	}
	for _, c := range []struct {
		name string
		res  func() Result
		why  string
	}{
		{"RFC 2131 §4.4.6 RELEASE of A's address from B's address", func() Result { return fx.from(t, release(macB, "192.0.2.100"), "192.0.2.101") }, "released from 192.0.2.101"},
		{"RELEASE with A's chaddr from another address", func() Result { return fx.from(t, release(macA, "192.0.2.100"), "192.0.2.101") }, "released from 192.0.2.101"},
		{"RELEASE with A's chaddr from 0.0.0.0", func() Result { return fx.from(t, release(macA, "192.0.2.100"), "0.0.0.0") }, "released from 0.0.0.0"},
		{"RELEASE of A's address by B from A's address", func() Result { return fx.from(t, release(macB, "192.0.2.100"), "192.0.2.100") }, "held by another client"},
		{"relayed RELEASE not from the relay", func() Result {
			r := release(macA, "192.0.2.100")
			r.GatewayIPAddr = relay
			return fx.from(t, r, "192.0.2.101")
		}, "released from 192.0.2.101"},
		{"RFC 2131 §4.3.3 DECLINE of A's address by B", func() Result { return fx.from(t, decline(macB, "192.0.2.100"), "0.0.0.0") }, "held by another client"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := c.res()
			wantSilence(t, res, c.why)
			if !res.Foreign {
				t.Errorf("not marked Foreign: %s", res.Reason)
			}
			wantBound(t, "192.0.2.100", macA)
		})
	}
	t.Run("DECLINE of the address offered to another client: the offer stands", func(t *testing.T) {
		offer := wantReply(t, fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, floodMAC(9))), dhcpv4.MessageTypeOffer, "192.0.2.102")
		res := fx.from(t, decline(macB, "192.0.2.102"), "0.0.0.0")
		wantSilence(t, res, "held by another client")
		if !res.Foreign {
			t.Error("not marked Foreign")
		}
		req, err := dhcpv4.NewRequestFromOffer(offer)
		if err != nil {
			t.Fatal(err)
		}
		wantReply(t, fx.respond(t, req), dhcpv4.MessageTypeAck, "192.0.2.102")
	})
	t.Run("RELEASE of a free address is stale, not foreign", func(t *testing.T) {
		res := fx.from(t, release(macB, "192.0.2.120"), "192.0.2.120")
		wantSilence(t, res, "release")
		if res.Foreign {
			t.Errorf("marked Foreign: %s", res.Reason)
		}
	})
	t.Run("the holder's own RELEASE from its address releases", func(t *testing.T) {
		res := fx.from(t, release(macA, "192.0.2.100"), "192.0.2.100")
		wantSilence(t, res, "192.0.2.100 released")
		if res.Foreign {
			t.Error("marked Foreign")
		}
		if l := fx.lease(t, "192.0.2.100"); l.State != lease.Released {
			t.Errorf("state %v, want released", l.State)
		}
	})
	t.Run("a relayed RELEASE from the relay releases", func(t *testing.T) {
		_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA, dhcpv4.WithGatewayIP(relay)))
		r := release(macA, ack.YourIPAddr.String())
		r.GatewayIPAddr = relay
		res := fx.from(t, r, relay.String())
		wantSilence(t, res, "released")
		if res.Foreign {
			t.Error("marked Foreign")
		}
	})
	t.Run("the holder's own DECLINE quarantines", func(t *testing.T) {
		res := fx.from(t, decline(macB, "192.0.2.101"), "0.0.0.0")
		wantSilence(t, res, "quarantined")
		if res.Foreign {
			t.Error("marked Foreign")
		}
	})
}

// TestLearn: what each policy says a client uses (Result.Learn), for
// TFTP and HTTP to name machines by address. Only what the server knows:
// a full server the addresses it acknowledges, ProxyDHCP what a PXE
// client's own exchange shows; never a non-PXE client's claim.
func TestLearn(t *testing.T) {
	px := &Proxy{Boot: proxyConfig()}
	fx := newFullFixture(t, true)
	_, ack := fx.dora(t, msg(t, dhcpv4.MessageTypeDiscover, macA))
	unicast := func(p *dhcpv4.DHCPv4, port Port, src string) Request {
		return Request{Packet: p, Port: port, Server: server, Src: netip.AddrPortFrom(netip.MustParseAddr(src), 68), Dst: server.IP}
	}
	broadcast := func(p *dhcpv4.DHCPv4, port Port, src string) Request {
		r := unicast(p, port, src)
		r.Dst = Broadcast
		return r
	}
	opt50 := func(a string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(a))) }
	pxeRequest := func(mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
		return withType(dhcpv4.MessageTypeRequest, edk2Discover(t, mods...))
	}
	for _, c := range []struct {
		name string
		pol  Responder
		req  Request
		want string // "" for nothing
	}{
		{"proxy: PXE REQUEST to the address server, option 50", px, broadcast(pxeRequest(opt50("192.0.2.60")), PortDHCP, "0.0.0.0"), "192.0.2.60"},
		{"proxy: PXE REQUEST renewing, ciaddr", px, unicast(pxeRequest(dhcpv4.WithClientIP(ip4("192.0.2.61"))), PortDHCP, "192.0.2.61"), "192.0.2.61"},
		{"proxy: iPXE REQUEST, option 50", px, broadcast(withType(dhcpv4.MessageTypeRequest, ipxeDiscover(t, true, false, opt50("192.0.2.62"))), PortDHCP, "0.0.0.0"), "192.0.2.62"},
		{"proxy: non-PXE REQUEST, option 50", px, broadcast(msg(t, dhcpv4.MessageTypeRequest, macB, opt50("192.0.2.63")), PortDHCP, "0.0.0.0"), ""},
		{"proxy: non-PXE DISCOVER with ciaddr", px, broadcast(msg(t, dhcpv4.MessageTypeDiscover, macB, dhcpv4.WithClientIP(ip4("192.0.2.64"))), PortDHCP, "192.0.2.64"), ""},
		{"proxy: PXE DISCOVER with ciaddr", px, broadcast(edk2Discover(t, dhcpv4.WithClientIP(ip4("192.0.2.65"))), PortDHCP, "192.0.2.65"), ""},
		{"proxy: PXE REQUEST, option 50 broadcast", px, broadcast(pxeRequest(opt50("255.255.255.255")), PortDHCP, "0.0.0.0"), ""},
		{"proxy: PXE REQUEST, option 50 multicast", px, broadcast(pxeRequest(opt50("224.0.0.1")), PortDHCP, "0.0.0.0"), ""},
		{"proxy: PXE REQUEST unicast to port 4011, source", px, unicast(pxeRequest(), PortBootServer, "192.0.2.66"), "192.0.2.66"},
		{"proxy: PXE REQUEST broadcast to port 4011", px, broadcast(pxeRequest(), PortBootServer, "192.0.2.67"), ""},
		{"proxy: non-PXE REQUEST unicast to port 4011", px, unicast(msg(t, dhcpv4.MessageTypeRequest, macB), PortBootServer, "192.0.2.68"), ""},
		{"proxy: PXE REQUEST to port 4011 from 0.0.0.0", px, unicast(pxeRequest(), PortBootServer, "0.0.0.0"), ""},
		{"full: ACK, yiaddr", fx.full, unicast(msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithClientIP(ack.YourIPAddr)), PortDHCP, "192.0.2.100"), "192.0.2.100"},
		{"full: OFFER", fx.full, broadcast(msg(t, dhcpv4.MessageTypeDiscover, macB), PortDHCP, "0.0.0.0"), ""},
		{"full: DISCOVER with a claimed ciaddr", fx.full, broadcast(msg(t, dhcpv4.MessageTypeDiscover, floodMAC(1), dhcpv4.WithClientIP(ip4("192.0.2.70"))), PortDHCP, "0.0.0.0"), ""},
		{"full: NAK", fx.full, broadcast(msg(t, dhcpv4.MessageTypeRequest, floodMAC(2), opt50("192.0.2.71"), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1")))), PortDHCP, "0.0.0.0"), ""},
		{"full: INFORM", fx.full, unicast(msg(t, dhcpv4.MessageTypeInform, floodMAC(3), dhcpv4.WithClientIP(ip4("192.0.2.72"))), PortDHCP, "192.0.2.72"), ""},
		{"full: PXE REQUEST unicast to port 4011", fx.full, unicast(pxeRequest(), PortBootServer, "192.0.2.73"), ""},
		{"full: PXE REQUEST of another client's address", fx.full, broadcast(pxeRequest(opt50("192.0.2.100"), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1")))), PortDHCP, "0.0.0.0"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := c.pol.Respond(c.req)
			got := ""
			if res.Learn.IsValid() {
				got = res.Learn.String()
			}
			if got != c.want {
				t.Errorf("Learn %q, want %q (%s)", got, c.want, res.Reason)
			}
			if strings.HasPrefix(c.name, "full: ACK") && (res.Reply == nil || res.Reply.MessageType() != dhcpv4.MessageTypeAck) {
				t.Errorf("no ACK: %s", res.Reason)
			}
		})
	}
}

// fakeSocket is a Socket with no file: Answer and Sent need only its
// interface, address and port (a reply that would go to chaddr falls back
// to broadcast, and nothing is written).
func fakeSocket(port Port) *Socket {
	return &Socket{iface: &net.Interface{Name: "test0", Index: 7}, ip: server.IP, port: port}
}

// TestLoopNotices: the loop counts each anomaly in Stats, warns of it and
// records its event at most once per interval (with the number
// suppressed), and remembers an address for a MAC only from Result.Learn,
// an ACK's once it is sent. No socket: the handler's Answer and Sent are
// called as the loop calls them.
func TestLoopNotices(t *testing.T) {
	fx := newFullFixture(t, true)
	fx.full.StarvationClients = 2
	var logs strings.Builder
	ev := &events.Log{}
	srv := &Server{Responder: fx.full, Events: ev, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	lim := fx.now
	srv.warnings.Now = func() time.Time { return lim }
	h := srv.handler(fakeSocket(PortDHCP))
	ctx := context.Background()
	ask := func(p *dhcpv4.DHCPv4, src string) (reply, bool) {
		t.Helper()
		r, how := h.Answer(ctx, request{pkt: p, src: netip.AddrPortFrom(netip.MustParseAddr(src), 68), dst: server.IP}, nil, nil)
		return r, how == udploop.Send
	}

	// A known client binds; its ACK teaches its address only once sent.
	if _, ok := ask(msg(t, dhcpv4.MessageTypeDiscover, macA), "0.0.0.0"); !ok {
		t.Fatal("no OFFER")
	}
	r, ok := ask(msg(t, dhcpv4.MessageTypeRequest, macA, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.100"))),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ip4("192.0.2.1")))), "0.0.0.0")
	if !ok || r.Meta.res.Reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK: %s", r.Meta.res.Reason)
	}
	if got := ev.MACForIP(netip.MustParseAddr("192.0.2.100")); got != "" {
		t.Errorf("address learned before its ACK was sent: %q", got)
	}
	h.Sent(ctx, &r)
	if got := ev.MACForIP(netip.MustParseAddr("192.0.2.100")); got != macA.String() {
		t.Errorf("after the ACK: 192.0.2.100 is %q, want %v", got, macA)
	}

	// A flood with claimed addresses: counted, one warning each, nothing learned.
	const flood = 20
	for i := range flood {
		ask(msg(t, dhcpv4.MessageTypeDiscover, floodMAC(i), dhcpv4.WithClientIP(ip4("192.0.2.200"))), "0.0.0.0")
	}
	if got := ev.MACForIP(netip.MustParseAddr("192.0.2.200")); got != "" {
		t.Errorf("a claimed ciaddr was learned: %q", got)
	}
	// Clients 1 (A) and 2 are under the threshold; pool .101 and .102 go to the first two of the flood.
	st := srv.Stats()
	if st.Starvation != flood-1 || st.PoolExhausted != flood-2 || st.Foreign != 0 {
		t.Errorf("stats %+v, want %d starvation, %d pool exhausted, 0 foreign", st, flood-1, flood-2)
	}
	if n := strings.Count(logs.String(), "dhcp starvation"); n != 1 {
		t.Errorf("%d starvation warnings, want 1:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "dhcp pool exhausted"); n != 1 {
		t.Errorf("%d pool exhausted warnings, want 1:\n%s", n, logs.String())
	}
	stages := func() map[events.Stage][]events.Event {
		out := map[events.Stage][]events.Event{}
		for _, m := range ev.Machines() {
			for _, e := range ev.Timeline(m) {
				out[e.Stage] = append(out[e.Stage], e)
			}
		}
		return out
	}
	got := stages()
	// Starvation is a pattern: one event per interval. Pool exhaustion is
	// each client's answer: an event on every client that got no address.
	if len(got[events.StageStarvation]) != 1 || len(got[events.StagePoolExhausted]) != flood-2 {
		t.Fatalf("events: %d starvation, %d pool exhausted; want 1 and %d", len(got[events.StageStarvation]), len(got[events.StagePoolExhausted]), flood-2)
	}
	for i := 2; i < flood; i++ {
		tl := ev.Timeline(floodMAC(i).String())
		if !slices.ContainsFunc(tl, func(e events.Event) bool {
			return e.Stage == events.StagePoolExhausted && strings.Contains(e.Detail, "exhausted")
		}) {
			t.Errorf("client %v got no address and its timeline does not say why: %+v", floodMAC(i), tl)
		}
	}

	// A foreign RELEASE: counted, warned, the lease kept.
	ask(msg(t, dhcpv4.MessageTypeRelease, macA, dhcpv4.WithClientIP(ip4("192.0.2.100"))), "192.0.2.150")
	if st := srv.Stats(); st.Foreign != 1 {
		t.Errorf("foreign %d, want 1", st.Foreign)
	}
	if l := fx.lease(t, "192.0.2.100"); l.State != lease.Bound {
		t.Errorf("192.0.2.100 %v after a foreign RELEASE, want bound", l.State)
	}
	if e := stages()[events.StageForeign]; len(e) != 1 || e[0].MAC != macA.String() {
		t.Errorf("foreign events %+v, want one on %v", e, macA)
	}

	// An interval later the next one warns again with the number suppressed.
	lim = lim.Add(time.Minute)
	ask(msg(t, dhcpv4.MessageTypeDiscover, floodMAC(flood)), "0.0.0.0")
	if n := strings.Count(logs.String(), "dhcp starvation"); n != 2 || !strings.Contains(logs.String(), "suppressed="+strconv.Itoa(flood-2)) {
		t.Errorf("%d starvation warnings, want 2, the second with suppressed=%d:\n%s", n, flood-2, logs.String())
	}
	if e := stages()[events.StageStarvation]; len(e) != 2 || !strings.Contains(e[1].Detail, strconv.Itoa(flood-2)+" more") {
		t.Errorf("starvation events %+v", e)
	}
}

// TestLoopLearnProxy: ProxyDHCP learns a PXE client's address from its
// REQUEST to the address server, which it does not answer, and nothing
// from a non-PXE client's.
func TestLoopLearnProxy(t *testing.T) {
	ev := &events.Log{}
	srv := &Server{Responder: &Proxy{Boot: proxyConfig()}, Events: ev}
	h := srv.handler(fakeSocket(PortDHCP))
	for _, p := range []*dhcpv4.DHCPv4{
		withType(dhcpv4.MessageTypeRequest, edk2Discover(t, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.60"))))),
		msg(t, dhcpv4.MessageTypeRequest, macB, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4("192.0.2.61")))),
	} {
		if _, how := h.Answer(context.Background(), request{pkt: p, src: netip.AddrPortFrom(netip.IPv4Unspecified(), 68), dst: Broadcast}, nil, nil); how == udploop.Send {
			t.Fatal("ProxyDHCP answered a REQUEST on port 67")
		}
	}
	if got := ev.MACForIP(netip.MustParseAddr("192.0.2.60")); got != macEFI.String() {
		t.Errorf("PXE REQUEST: 192.0.2.60 is %q, want %v", got, macEFI)
	}
	if got := ev.MACForIP(netip.MustParseAddr("192.0.2.61")); got != "" {
		t.Errorf("non-PXE REQUEST taught 192.0.2.61 = %q", got)
	}
}
