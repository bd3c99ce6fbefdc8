package dhcp6

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/lease"
	"pxed/internal/lograte"
	"pxed/internal/udploop"
)

// AllServers is All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1), the
// group clients send to on their link.
var AllServers = netip.MustParseAddr("ff02::1:2")

// Stats counts what the server did; read with Server.Stats.
type Stats struct {
	Received  uint64 // packets read
	Malformed uint64 // packets that did not decode
	Ignored   uint64 // valid messages not answered (relayed ones included)
	Replied   uint64 // replies sent
	SendErrs  uint64 // replies that could not be sent
	Overload  uint64 // messages dropped because every worker was busy
	// PoolExhausted counts IAs the server role answered NoAddrsAvail.
	PoolExhausted uint64
	// PeerShare counts messages left to the cluster peer that owns the
	// client (Full.Owns).
	PeerShare uint64
}

// Server is the DHCPv6 loop, of the ProxyDHCPv6 or the stateful server
// (Full): per interface, a socket on UDP 547 that joined ff02::1:2 and one
// on 4011 for the boot service, bound to the interface (SO_BINDTODEVICE),
// each served by a udploop.Loop.
type Server struct {
	Interfaces []string // required
	Ports      []Port   // default 547 and 4011
	Proxy      *Proxy   // the ProxyDHCPv6 policy; required unless Full is set
	Full       *Full    // the stateful server policy; when set, it answers instead of Proxy
	HTTPPort   int      // put in script URLs; default 8080
	// DUID is pxed's server identifier on every interface. It must not
	// change across restarts while clients hold leases (RFC 8415 §11):
	// a Request or Renew naming the old one is another server's. nil:
	// a DUID-LL of each interface's MAC (a bridge's MAC can change when
	// ports are added, so the server role keeps one in its data dir).
	DUID   dhcpv6.DUID
	Events *events.Log
	// Fleet notes every boot client the server sees (the machines
	// inventory); nil notes nothing. It must not block.
	Fleet  boot.Observer
	Logger *slog.Logger // nil discards

	loops              udploop.Counters
	malformed, ignored atomic.Uint64
	peerShare          atomic.Uint64
	exhausted          atomic.Uint64
	warnings           lograte.Limiter
	macs               macCache
	repeats            repeater // boot service replies sent again
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	l := s.loops.Stats()
	return Stats{Received: l.Received, Malformed: s.malformed.Load(), Ignored: s.ignored.Load(),
		Replied: l.Replied, SendErrs: l.SendErrs, Overload: l.Overload, PoolExhausted: s.exhausted.Load(), PeerShare: s.peerShare.Load()}
}

// Socket is one bound socket: an interface and a port.
type Socket struct {
	iface *net.Interface
	ip    netip.Addr  // the global or ULA address URLs name
	duid  dhcpv6.DUID // pxed's server identifier there
	port  Port
	conn  *ipv6.PacketConn
	raw   net.PacketConn
	oob   []byte // IPV6_PKTINFO naming the interface, for every reply
}

// Skipped is an interface Open did not serve, and why.
type Skipped struct {
	Interface string
	Reason    string
}

// Open creates the sockets of every interface that has a global or ULA
// IPv6 address (the address boot URLs name; a link-local one cannot be
// written in a URL the firmware takes) and reports the others as
// skipped. It fails when an interface does not exist or a port cannot
// be bound. Run serves the sockets.
func (s *Server) Open() ([]*Socket, []Skipped, error) {
	ports := s.Ports
	if len(ports) == 0 {
		ports = []Port{PortDHCP, PortBootServer}
	}
	if len(s.Interfaces) == 0 {
		return nil, nil, errors.New("dhcp6: no interface given")
	}
	var out []*Socket
	var skipped []Skipped
	for _, name := range s.Interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			closeAll(out)
			return nil, nil, fmt.Errorf("dhcp6: interface %q: %w", name, err)
		}
		ip, ok := interfaceIPv6(ifi)
		if !ok {
			skipped = append(skipped, Skipped{name, "no global or ULA IPv6 address to name in boot URLs"})
			continue
		}
		if s.DUID == nil && len(ifi.HardwareAddr) != 6 {
			skipped = append(skipped, Skipped{name, "no Ethernet address to make a DUID-LL from"})
			continue
		}
		duid := s.DUID
		if duid == nil {
			duid = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: ifi.HardwareAddr}
		}
		for _, port := range ports {
			sk, err := openSocket(ifi, port)
			if err != nil {
				closeAll(out)
				return nil, nil, err
			}
			sk.ip, sk.duid = ip, duid
			out = append(out, sk)
		}
	}
	return out, skipped, nil
}

func openSocket(ifi *net.Interface, port Port) (*Socket, error) {
	c, err := udploop.Listen("udp6", ifi.Name, netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(port)), false)
	if err != nil {
		return nil, fmt.Errorf("dhcp6: listen on %s port %d: %w", ifi.Name, port, err)
	}
	pc := ipv6.NewPacketConn(c)
	if err := pc.SetControlMessage(ipv6.FlagInterface|ipv6.FlagDst, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("dhcp6: %s: IPV6_RECVPKTINFO: %w", ifi.Name, err)
	}
	if port == PortDHCP {
		if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: AllServers.AsSlice()}); err != nil {
			c.Close()
			return nil, fmt.Errorf("dhcp6: %s: join %v: %w", ifi.Name, AllServers, err)
		}
	}
	oob := (&ipv6.ControlMessage{IfIndex: ifi.Index}).Marshal()
	return &Socket{iface: ifi, port: port, conn: pc, raw: c, oob: oob}, nil
}

func closeAll(socks []*Socket) {
	for _, s := range socks {
		s.raw.Close()
	}
}

// interfaceIPv6 is the interface's first global unicast IPv6 address (a
// ULA counts), skipping link-local ones.
func interfaceIPv6(ifi *net.Interface) (netip.Addr, bool) {
	ps, err := udploop.InterfacePrefixes(ifi)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, p := range ps {
		if ip := p.Addr(); ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// Run serves the sockets opened by Open until ctx ends, then closes them.
func (s *Server) Run(ctx context.Context, socks []*Socket) error {
	s.repeats.delays = bootServiceRepeats
	var wg sync.WaitGroup
	for _, sk := range socks {
		h := s.handler(sk)
		h.out = udploop.PreferBatch(sk.raw, sk.conn)
		l := &udploop.Loop[request, answered]{Conn: h.out, Handler: h, Counters: &s.loops, Name: "dhcp6", Logger: h.log,
			OOB: sk.oob, OOBSpace: oobSpace, Workers: 4}
		wg.Go(func() { l.Serve(ctx) })
	}
	<-ctx.Done()
	closeAll(socks)
	wg.Wait()
	return nil
}

// oobSpace is the room for the control messages a read receives.
var oobSpace = len(ipv6.NewControlMessage(ipv6.FlagInterface | ipv6.FlagDst))

// handler is the DHCPv6 part of one socket's loop (udploop.Handler).
// Every message is answered on the reader (Quick): the proxy neither
// waits nor writes.
type handler struct {
	s        *Server
	sk       *Socket
	httpPort int
	log      *slog.Logger
	cm       ipv6.ControlMessage // Decode's, reused: only the reader decodes
	out      udploop.Conn        // the loop's socket, for the boot service reply copies
}

func (s *Server) handler(sk *Socket) *handler {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{s: s, sk: sk, httpPort: s.HTTPPort, log: log.With("iface", sk.iface.Name, "port", int(sk.port))}
	if h.httpPort == 0 {
		h.httpPort = 8080
	}
	return h
}

// request is a message decoded, with where it came from.
type request struct {
	msg *dhcpv6.Message
	src netip.AddrPort
	// relay is the outermost Relay-Forw of a relayed message: the reply
	// goes back wrapped, to the relay's port 547 (RFC 8415 §19.3).
	relay    *dhcpv6.RelayMessage
	relayMAC net.HardwareAddr // the client's MAC as its relay names it (RFC 6939)
	link     netip.Addr       // the link address of the relay on the client's link; zero when not relayed
	// client is the client's own address: src, or the peer address its
	// relay saw (the policy reads a MAC from an EUI-64 link-local one).
	client netip.AddrPort
}

// answered is what a reply carries until it is sent.
type answered struct {
	req    *dhcpv6.Message
	res    Result
	mac    string
	client netip.Addr // the client's own source (see request.client)
}

type reply = udploop.Reply[answered]

// Decode implements udploop.Handler: a packet that is too long or does
// not decode is counted as malformed; a relayed one (Relay-Forw) as
// ignored, for now.
func (h *handler) Decode(pk udploop.Packet) (request, bool) {
	q := request{src: pk.Src}
	if h.cm = (ipv6.ControlMessage{}); len(pk.OOB) > 0 && h.cm.Parse(pk.OOB) == nil {
		if h.cm.IfIndex != 0 && h.cm.IfIndex != h.sk.iface.Index {
			return request{}, false // not ours (cannot happen with SO_BINDTODEVICE, kept as a guard)
		}
	}
	if a := q.src.Addr(); a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
		// Replies go back to the source (RFC 8415 §18.3): a link-local
		// one needs its link.
		q.src = netip.AddrPortFrom(a.WithZone(h.sk.iface.Name), q.src.Port())
	}
	if pk.Truncated {
		h.s.malformed.Add(1)
		h.log.Debug("dhcp6 packet too long, dropped", "src", q.src.String(), "len", len(pk.Data))
		return request{}, false
	}
	msg, outer, inner, err := Decode(pk.Data)
	if err != nil {
		h.s.malformed.Add(1)
		h.log.Debug("dhcp6 malformed packet dropped", "src", q.src.String(), "len", len(pk.Data), "err", err)
		return request{}, false
	}
	q.msg, q.relay, q.client = msg, outer, q.src
	if inner != nil {
		if a, ok := netip.AddrFromSlice(inner.PeerAddr); ok {
			q.client = netip.AddrPortFrom(a.Unmap(), 546)
		}
		q.link = netip.IPv6Unspecified()
		if a, ok := netip.AddrFromSlice(inner.LinkAddr); ok {
			q.link = a.Unmap()
		}
		// RFC 6939: the relay on the client's link may name its MAC.
		if _, mac := inner.Options.ClientLinkLayerAddress(); len(mac) == 6 {
			q.relayMAC = mac
		}
	}
	return q, true
}

// Decode decodes one DHCPv6 packet. A relayed message (Relay-Forw, nested
// up to the hop limit of RFC 8415 §7.6) returns the innermost client
// message, the outermost Relay-Forw (nil when not relayed) and the
// innermost one (the relay on the client's link).
func Decode(b []byte) (m *dhcpv6.Message, outer, inner *dhcpv6.RelayMessage, err error) {
	d, ok := fastDecode(b) // see decode.go
	if !ok {
		if d, err = dhcpv6.FromBytes(b); err != nil {
			return nil, nil, nil, err
		}
	}
	for hops := 0; d.IsRelay(); hops++ {
		if hops > hopLimit {
			return nil, nil, nil, errors.New("dhcp6: relay nesting beyond the hop limit")
		}
		r, ok := d.(*dhcpv6.RelayMessage)
		if !ok || r.MessageType != dhcpv6.MessageTypeRelayForward {
			return nil, nil, nil, errors.New("dhcp6: not a Relay-Forw")
		}
		msg := r.Options.RelayMessage()
		if msg == nil {
			return nil, nil, nil, errors.New("dhcp6: Relay-Forw without a relay message option")
		}
		if outer == nil {
			outer = r
		}
		d, inner = msg, r
	}
	m, ok = d.(*dhcpv6.Message)
	if !ok {
		return nil, nil, nil, errors.New("dhcp6: not a client message")
	}
	return m, outer, inner, nil
}

// relayReply wraps reply in one Relay-Repl per Relay-Forw of the request
// (RFC 8415 §19.3): link and peer addresses, hop count and Interface-ID
// copied, so each relay knows where to pass it on.
func relayReply(outer *dhcpv6.RelayMessage, reply *dhcpv6.Message) ([]byte, error) {
	d, err := dhcpv6.NewRelayReplFromRelayForw(outer, reply)
	if err != nil {
		return nil, fmt.Errorf("dhcp6: relay reply: %w", err)
	}
	// The library leaves the hop counts 0: copy them, layer by layer.
	for fw, rp := dhcpv6.DHCPv6(outer), d; fw != nil && fw.IsRelay() && rp.IsRelay(); {
		f, r := fw.(*dhcpv6.RelayMessage), rp.(*dhcpv6.RelayMessage)
		r.HopCount = f.HopCount
		fw, rp = f.Options.RelayMessage(), r.Options.RelayMessage()
		if rp == nil {
			break
		}
	}
	return d.ToBytes(), nil
}

// hopLimit is HOP_COUNT_LIMIT (RFC 8415 §7.6).
const hopLimit = 8

// Quick implements udploop.Handler: the proxy never waits; the server
// role does not either when its lease writes are deferred.
func (h *handler) Quick(q request) bool {
	if h.s.Full != nil {
		return h.s.Full.Quick(q.msg)
	}
	return true
}

// Answer implements udploop.Handler.
func (h *handler) Answer(ctx context.Context, q request, d *lease.Deferred, buf []byte) (reply, udploop.Outcome) {
	var learned net.HardwareAddr
	cid := q.msg.Options.ClientID()
	var duidBuf [64]byte
	var duid []byte // cid's wire form, without the library's buffers
	if cid != nil {
		duid = appendDUID(duidBuf[:0], cid)
		learned = h.s.macs.get(duid)
	}
	if learned == nil {
		learned = q.relayMAC
	}
	req := Request{Msg: q.msg, Port: h.sk.port, Server: boot.Server{IP: h.sk.ip, HTTPPort: h.httpPort},
		ServerID: h.sk.duid, Src: q.client, MAC: learned, Interface: h.sk.iface.Name, Link: q.link, Ctx: ctx, Deferred: d}
	var res Result
	if h.s.Full != nil {
		res = h.s.Full.Respond(req)
	} else {
		res = h.s.Proxy.Respond(req)
	}
	if res.Busy {
		return reply{}, udploop.Busy // for a worker: nothing counted yet
	}
	if res.PoolExhausted {
		h.s.exhausted.Add(1)
		h.poolExhausted(mac(res), res.Reason)
	}
	mac := mac(res)
	if len(res.Machine.MAC) > 0 {
		if cid != nil && learned == nil {
			h.s.macs.put(duid, res.Machine.MAC)
		}
	}
	if res.Reply == nil {
		h.ignoredMsg(ctx, q, res, mac)
		return reply{}, udploop.Silent
	}
	if q.relay != nil {
		wire, err := relayReply(q.relay, res.Reply)
		if err != nil {
			h.s.malformed.Add(1)
			h.log.Debug("dhcp6 relayed message not answered", "src", q.src.String(), "err", err)
			return reply{}, udploop.Silent
		}
		to := netip.AddrPortFrom(q.src.Addr(), 547)
		return reply{Wire: append(buf, wire...), To: to, Meta: answered{req: q.msg, res: res, mac: mac, client: q.client.Addr()}}, udploop.Send
	}
	return reply{Wire: appendMessage(buf, res.Reply), To: q.src, Meta: answered{req: q.msg, res: res, mac: mac, client: q.client.Addr()}}, udploop.Send
}

// mac is the client's MAC as res names it, normalised; "" if unknown.
func mac(res Result) string {
	if len(res.Machine.MAC) == 0 {
		return ""
	}
	return boot.Normalize(res.Machine.MAC)
}

// poolExhausted warns that a client got no address, at most once per
// lograte interval, and records it on the client's timeline.
func (h *handler) poolExhausted(mac, why string) {
	if ok, suppressed := h.s.warnings.Allow("pool-exhausted"); ok {
		h.log.Warn("dhcp6 pool exhausted: a client got no address (NoAddrsAvail)", "mac", mac, "why", why, "suppressed", suppressed)
	}
	if h.s.Events != nil && mac != "" {
		h.s.Events.Record(events.Event{MAC: mac, Stage: events.StagePoolExhausted, Detail: "dhcpv6: " + why})
	}
}

// learnSLAAC teaches the events log the address a client forms by SLAAC
// (RFC 4862 §5.3) on this interface's /64 from the interface identifier
// of the EUI-64 link-local address it sent from, when that identifier
// names mac: iPXE and EDK II fetch their files from that address, which
// no DHCPv6 message names (an Information-request carries no address).
func (h *handler) learnSLAAC(src netip.Addr, mac string) {
	m := eui64MAC(src)
	if m == nil || boot.Normalize(m) != mac || !h.sk.ip.IsValid() || h.s.Events == nil {
		return
	}
	if a, ok := slaacAddr(h.sk.ip, src); ok {
		h.s.Events.Learn(a, mac)
	}
}

// slaacAddr is the /64 of global with the interface identifier of ll.
func slaacAddr(global, ll netip.Addr) (netip.Addr, bool) {
	if !global.Is6() || global.Is4In6() || !ll.Is6() {
		return netip.Addr{}, false
	}
	g, l := global.As16(), ll.As16()
	copy(g[8:], l[8:])
	return netip.AddrFrom16(g), true
}

// ignoredMsg counts, logs and records a message the policy did not answer.
func (h *handler) ignoredMsg(ctx context.Context, q request, res Result, mac string) {
	h.s.ignored.Add(1)
	if res.Ignored == PeerShare {
		h.s.peerShare.Add(1) // the peer that owns the client records it
		return
	}
	if h.s.Events != nil && mac != "" {
		if res.Learn.IsValid() {
			h.s.Events.Learn(res.Learn, mac)
		}
		h.learnSLAAC(q.client.Addr(), mac)
	}
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.Debug("dhcp6 ignored", "mac", mac, "src", q.src.String(), "xid", q.msg.TransactionID.String(),
			"type", q.msg.MessageType.String(), "why", res.Ignored.String(), "reason", res.Reason)
	}
	if h.s.Fleet != nil && mac != "" && res.Machine.Firmware != boot.FirmwareUnknown {
		h.s.Fleet.Observe(res.Machine, res.Learn, "", res.Plan)
	}
	if h.s.Events != nil && mac != "" && res.Machine.Firmware != boot.FirmwareUnknown && q.msg.MessageType == dhcpv6.MessageTypeSolicit && !res.Plan.Dropped {
		h.s.Events.Record(events.Event{MAC: mac, Stage: events.StageIgnored, Detail: "dhcpv6: " + res.Reason})
	}
}

// Retry implements udploop.Handler: nothing to retry.
func (h *handler) Retry(*reply, error) bool { return false }

// RequestAttrs implements udploop.Handler.
func (h *handler) RequestAttrs(q request) []any {
	return []any{"src", q.src.String(), "xid", q.msg.TransactionID.String()}
}

// ReplyAttrs implements udploop.Handler.
func (h *handler) ReplyAttrs(r *reply) []any {
	return []any{"mac", r.Meta.mac, "xid", r.Meta.req.TransactionID.String(), "reply", r.Meta.res.Reply.MessageType.String()}
}

// Sent implements udploop.Handler: it logs the reply and records its
// event, and the address the client is now known to use.
func (h *handler) Sent(ctx context.Context, r *reply) {
	a := &r.Meta
	res := a.res
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.Debug("dhcp6 replied", "mac", a.mac, "xid", a.req.TransactionID.String(), "type", a.req.MessageType.String(),
			"reply", res.Reply.MessageType.String(), "dst", r.To.String(), "url", res.URL)
	}
	if h.sk.port == PortBootServer {
		h.repeat(ctx, r)
	}
	if h.s.Fleet != nil && a.mac != "" && res.Machine.Firmware != boot.FirmwareUnknown {
		h.s.Fleet.Observe(res.Machine, res.Learn, "", res.Plan)
	}
	ev := h.s.Events
	if ev == nil || a.mac == "" {
		return
	}
	if res.Learn.IsValid() {
		ev.Learn(res.Learn, a.mac)
	}
	h.learnSLAAC(a.client, a.mac)
	stage := events.StageAck
	if res.Reply.MessageType == dhcpv6.MessageTypeAdvertise {
		stage = events.StageOffer
	}
	var detail string
	if h.s.Full != nil && h.sk.port == PortDHCP {
		detail = "dhcpv6 " + res.Reason // what was leased, and the boot URL
	} else {
		detail = replyDetail(res, h.sk.port)
	}
	ev.Record(events.Event{MAC: a.mac, Stage: stage, Detail: detail})
}

// repeat sends the boot service reply r again later (bootServiceRepeats),
// as the loop sends replies (the socket's interface in its control
// message) but never waiting: a copy that finds the send buffer full is
// dropped, so no timer goroutine is left blocked on the socket.
func (h *handler) repeat(ctx context.Context, r *reply) {
	to := net.UDPAddrFromAddrPort(r.To)
	xid := r.Meta.req.TransactionID.String()
	if !h.s.repeats.repeat(r.Wire, r.To, func(b []byte) {
		if ctx.Err() != nil {
			return
		}
		msg := []ipv4.Message{{Buffers: [][]byte{b}, OOB: h.sk.oob, Addr: to}}
		if n, err := h.out.WriteBatch(msg, unix.MSG_DONTWAIT); n != 1 {
			h.log.Debug("dhcp6 boot service reply not repeated", "dst", to.String(), "xid", xid, "err", err)
		}
	}) {
		h.log.Debug("dhcp6 boot service reply not repeated: one to it already waits, or too many do", "dst", to.String(), "xid", xid)
	}
}

// replyDetail is the event detail of a reply: "dhcpv6 firmware arch → URL (port N)".
func replyDetail(res Result, port Port) string {
	arch := res.Machine.Class
	if arch == "" {
		arch = "arch-" + strconv.Itoa(int(res.Machine.Arch))
	}
	return "dhcpv6 " + res.Machine.Firmware.String() + " " + arch + " → " + res.URL + " (port " + strconv.Itoa(int(port)) + ")"
}

// macCache remembers the MAC of each DUID the policy saw one for, so that
// a later message showing none (a DUID-UUID from a global address, as
// the boot service Request) still names its machine. Bounded: when full
// it starts over.
type macCache struct {
	mu sync.Mutex
	m  map[string]net.HardwareAddr
}

const macCacheMax = 4096

func (c *macCache) get(duid []byte) net.HardwareAddr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[string(duid)]
}

func (c *macCache) put(duid []byte, mac net.HardwareAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= macCacheMax {
		c.m = make(map[string]net.HardwareAddr)
	}
	c.m[string(duid)] = slices.Clone(mac) // not the decoded packet's (see fastDecode)
}

// Close closes a socket that Open returned and Run will not serve.
func (s *Socket) Close() error { return s.raw.Close() }
