package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/lease"
	"pxed/internal/lograte"
	"pxed/internal/udploop"
)

// Responder is the policy the loop asks for each packet.
type Responder interface {
	Respond(Request) Result
}

// Quicker is implemented by a Responder that knows which packets it
// answers without waiting (no address probe, no waiting for the disk): the
// socket's reader answers those itself, which saves a hand-off to a worker
// and the thread wake-ups that come with it. Every other packet goes to a
// worker. The reader responds with a lease.Deferred (Request.Deferred):
// lease writes are queued rather than waited for, and a reply that
// announces them leaves only once they are durable (see udploop).
type Quicker interface {
	Quick(*dhcpv4.DHCPv4) bool
}

// Stats counts what the loop did; read with Server.Stats.
type Stats struct {
	Received  uint64 // packets read
	Malformed uint64 // packets that did not decode or failed Validate
	Ignored   uint64 // valid packets not answered
	Replied   uint64 // replies sent
	SendErrs  uint64 // replies that could not be sent
	Overload  uint64 // valid packets dropped because every worker was busy
	Unsaved   uint64 // replies withheld because the lease write they announce failed

	// Anomalies on the boot network (see Result).
	PoolExhausted uint64 // DISCOVERs not answered because their pool was empty
	PeerShare     uint64 // DISCOVERs and REQUESTs left to the peer server that owns the client
	Starvation    uint64 // DISCOVERs of new clients past the starvation threshold
	Foreign       uint64 // DECLINEs and RELEASEs refused as not from the lease holder

	// PXE boot menus (menu.go in boot).
	MenuOffers  uint64 // replies carrying a boot menu
	MenuItems   uint64 // boot server requests for a menu item answered
	MenuUnknown uint64 // boot server requests for an item or layer not served
}

// Server is the DHCPv4 loop: one socket per interface and port, bound to the
// interface (SO_BINDTODEVICE) so pxed answers only where it is told to and
// knows where each packet came from. Each socket is served by a
// udploop.Loop (reads, workers, replies that wait for their lease writes,
// sends); the Server decodes DHCPv4, asks the Responder, picks each
// reply's destination (RFC 2131 §4.1) and records what was answered.
type Server struct {
	Interfaces []string // interface names; required
	Ports      []Port   // default 67 and 4011
	// Workers is the number of requests handled at once per socket by
	// workers (packets the reader may not answer itself, see Quicker); 0
	// means DefaultWorkers. Concurrency lets the lease store batch many
	// clients' commits into one transaction and keeps an address probe from
	// stalling everyone else. Packets beyond Workers plus the queue are
	// dropped and counted (clients retransmit).
	Workers   int
	Responder Responder   // required
	HTTPPort  int         // put in boot URLs; default 8080
	Events    *events.Log // nil records nothing
	// Fleet notes every boot client the server sees, answered or not
	// (the machines inventory); nil notes nothing. Called on the loop:
	// it must not block.
	Fleet  boot.Observer
	Logger *slog.Logger // nil discards
	// ListenAddr overrides the address sockets bind to (tests); default 0.0.0.0.
	ListenAddr netip.Addr
	// BatchWait paces the reader under load: after a read of several
	// packets, or of one that came within BatchWait of the read before,
	// the reader waits BatchWait before it reads again, so that one
	// wake-up takes many packets instead of one each (as a NIC moderates
	// its interrupts). A lone packet is answered at once. 0 means
	// DefaultBatchWait; negative reads again at once.
	BatchWait time.Duration
	// Choices remembers the profile of the menu item each machine chose
	// (from the boot server ACKs sent) and the machines whose PXE
	// firmware (not iPXE) was offered a menu, for the boot decision; nil
	// remembers nothing.
	Choices interface {
		Remember(mac, profile string)
		RememberShown(mac string)
	}
	// MulticastGroups are joined on the boot server sockets (port 4011):
	// the discovery multicast addresses of the boot menus (PXE 2.1 §2.2.5).
	MulticastGroups []netip.Addr

	loops                                                  udploop.Counters // received, replied, send errors, overload, unsaved
	malformed, ignored, poolExhausted, starvation, foreign atomic.Uint64
	peerShare                                              atomic.Uint64
	menuOffers, menuItems, menuUnknown                     atomic.Uint64
	// warnings keeps each anomaly to one warning (and one event) per
	// interval.
	warnings lograte.Limiter
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	l := s.loops.Stats()
	return Stats{
		Received: l.Received, Malformed: s.malformed.Load(), Ignored: s.ignored.Load(),
		Replied: l.Replied, SendErrs: l.SendErrs, Overload: l.Overload, Unsaved: l.Unsaved,
		PoolExhausted: s.poolExhausted.Load(), PeerShare: s.peerShare.Load(), Starvation: s.starvation.Load(), Foreign: s.foreign.Load(),
		MenuOffers: s.menuOffers.Load(), MenuItems: s.menuItems.Load(), MenuUnknown: s.menuUnknown.Load(),
	}
}

// Socket is one bound socket: an interface and a port.
type Socket struct {
	iface *net.Interface
	ip    netip.Addr
	port  Port
	conn  *ipv4.PacketConn
	raw   net.PacketConn
	oob   []byte // IP_PKTINFO naming the interface, for every reply
}

// Open creates the sockets; it fails when an interface does not exist or has
// no IPv4 address, or a port cannot be bound. Run serves them.
func (s *Server) Open() ([]*Socket, error) {
	ports := s.Ports
	if len(ports) == 0 {
		ports = []Port{PortDHCP, PortBootServer}
	}
	if len(s.Interfaces) == 0 {
		return nil, errors.New("dhcp4: no interface given")
	}
	var out []*Socket
	for _, name := range s.Interfaces {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("dhcp4: interface %q: %w", name, err)
		}
		ip, err := interfaceIPv4(ifi)
		if err != nil {
			closeAll(out)
			return nil, err
		}
		for _, port := range ports {
			c, err := listen(ifi.Name, s.ListenAddr, port)
			if err != nil {
				closeAll(out)
				return nil, err
			}
			pc := ipv4.NewPacketConn(c)
			if err := pc.SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
				c.Close()
				closeAll(out)
				return nil, fmt.Errorf("dhcp4: %s: IP_PKTINFO: %w", name, err)
			}
			if port == PortBootServer {
				for _, g := range s.MulticastGroups {
					if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: g.AsSlice()}); err != nil {
						c.Close()
						closeAll(out)
						return nil, fmt.Errorf("dhcp4: %s: join boot server discovery group %s: %w", name, g, err)
					}
				}
			}
			oob := (&ipv4.ControlMessage{IfIndex: ifi.Index}).Marshal()
			out = append(out, &Socket{iface: ifi, ip: ip, port: port, conn: pc, raw: c, oob: oob})
		}
	}
	return out, nil
}

// Close closes the socket (for a caller that opened it and will not Run it).
func (s *Socket) Close() error { return s.raw.Close() }

func closeAll(socks []*Socket) {
	for _, s := range socks {
		s.raw.Close()
	}
}

func interfaceIPv4(ifi *net.Interface) (netip.Addr, error) {
	ps, err := udploop.InterfacePrefixes(ifi)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp4: interface %q addresses: %w", ifi.Name, err)
	}
	for _, p := range ps {
		if p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("dhcp4: interface %q has no IPv4 address (pxed needs one to name itself as next server)", ifi.Name)
}

// listen opens the socket of port on the interface ifname.
func listen(ifname string, addr netip.Addr, port Port) (net.PacketConn, error) {
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	c, err := udploop.Listen("udp4", ifname, netip.AddrPortFrom(addr, uint16(port)), true)
	if err != nil {
		return nil, fmt.Errorf("dhcp4: listen on %s port %d: %w", ifname, port, err)
	}
	return c, nil
}

// Run serves the sockets opened by Open until ctx ends, then closes them.
func (s *Server) Run(ctx context.Context, socks []*Socket) error {
	var wg sync.WaitGroup
	for _, sk := range socks {
		wg.Go(func() { s.loop(sk).Serve(ctx) })
	}
	<-ctx.Done()
	closeAll(socks) // the loops' reads fail: they stop their workers
	wg.Wait()
	return nil
}

// oobSpace is the room for the control messages a read receives.
var oobSpace = len(ipv4.NewControlMessage(ipv4.FlagInterface | ipv4.FlagDst))

// loop is the udploop.Loop serving sk.
func (s *Server) loop(sk *Socket) *udploop.Loop[request, answered] {
	h := s.handler(sk)
	return &udploop.Loop[request, answered]{Conn: udploop.PreferBatch(sk.raw, sk.conn), Handler: h, Counters: &s.loops, Name: "dhcp", Logger: h.log,
		OOB: sk.oob, OOBSpace: oobSpace, Workers: s.Workers, BatchWait: s.BatchWait}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// DefaultBatchWait is Server.BatchWait when 0: at most 1 ms added to a
// reply under load, for about a third less CPU per DORA at 8,000/s.
const DefaultBatchWait = udploop.DefaultBatchWait

// DefaultWorkers is Server.Workers when 0.
const DefaultWorkers = udploop.DefaultWorkers

// handler is the DHCPv4 part of one socket's loop (udploop.Handler):
// decoding, the Responder, destinations, counts, logs and events.
type handler struct {
	s        *Server
	sk       *Socket
	quick    Quicker // nil when the Responder answers nothing on the reader
	httpPort int
	log      *slog.Logger
	cm       ipv4.ControlMessage // Decode's, reused: only the reader decodes
}

func (s *Server) handler(sk *Socket) *handler {
	h := &handler{s: s, sk: sk, httpPort: s.HTTPPort, log: s.logger().With("iface", sk.iface.Name, "port", int(sk.port))}
	if h.httpPort == 0 {
		h.httpPort = 8080
	}
	h.quick, _ = s.Responder.(Quicker)
	return h
}

// request is a packet decoded, with where it came from and went to.
type request struct {
	pkt *dhcpv4.DHCPv4
	src netip.AddrPort
	dst netip.Addr // IP_PKTINFO; zero when unknown
}

// answered is what a reply carries until it is sent: the request, the
// policy's answer and the destination rule that applied.
type answered struct {
	pkt *dhcpv4.DHCPv4 // the request
	res Result
	mac string
	dst Dest       // dst.Addr is the Reply's To
	in  netip.Addr // the request's destination address (IP_PKTINFO); zero when unknown
}

// reply is a reply ready to send.
type reply = udploop.Reply[answered]

// Decode implements udploop.Handler: a packet that is too long, does not
// decode or fails Validate is counted as malformed and dropped.
func (h *handler) Decode(pk udploop.Packet) (request, bool) {
	q := request{src: pk.Src}
	if h.cm = (ipv4.ControlMessage{}); len(pk.OOB) > 0 && h.cm.Parse(pk.OOB) == nil {
		if h.cm.IfIndex != 0 && h.cm.IfIndex != h.sk.iface.Index {
			return request{}, false // not ours (cannot happen with SO_BINDTODEVICE, kept as a guard)
		}
		q.dst = AddrFromIP(h.cm.Dst)
	}
	if pk.Truncated {
		h.s.malformed.Add(1)
		h.log.Debug("dhcp packet too long, dropped", "src", q.src.String(), "len", len(pk.Data))
		return request{}, false
	}
	pkt, err := dhcpv4.FromBytes(pk.Data)
	if err != nil {
		h.s.malformed.Add(1)
		h.log.Debug("dhcp malformed packet dropped", "src", q.src.String(), "len", len(pk.Data), "err", err)
		return request{}, false
	}
	if why := Validate(pkt); why != "" {
		h.s.malformed.Add(1)
		h.log.Debug("dhcp packet dropped", "src", q.src.String(), "xid", pkt.TransactionID.String(), "why", why)
		return request{}, false
	}
	q.pkt = pkt
	return q, true
}

// Quick implements udploop.Handler with the Responder's Quicker.
func (h *handler) Quick(q request) bool { return h.quick != nil && h.quick.Quick(q.pkt) }

// Answer implements udploop.Handler: it asks the Responder about q and,
// when it answers, returns the reply with its destination (RFC 2131 §4.1)
// and its bytes, encoded into buf (which may grow). d goes to the
// Responder as Request.Deferred.
func (h *handler) Answer(ctx context.Context, q request, d *lease.Deferred, buf []byte) (reply, udploop.Outcome) {
	pkt := q.pkt
	mac := boot.Normalize(pkt.ClientHWAddr)
	res := h.s.Responder.Respond(Request{Packet: pkt, Port: h.sk.port, Server: boot.Server{IP: h.sk.ip, HTTPPort: h.httpPort}, Ctx: ctx,
		Deferred: d, Src: q.src, Dst: q.dst})
	if res.Busy {
		return reply{}, udploop.Busy // for a worker: nothing counted yet
	}
	h.s.notice(res, mac, h.log)
	if res.Reply != nil {
		h.s.chose(res, mac)
	}
	if res.Reply == nil {
		h.ignored(ctx, pkt, res, mac)
		return reply{}, udploop.Silent
	}
	to := Destination(pkt, res.Reply, h.sk.port, q.src)
	if to.Link {
		// RFC 2131 §4.1: unicast to yiaddr at chaddr. The client cannot
		// answer ARP yet, so install its neighbour entry first (as dnsmasq
		// does); when that fails, broadcast, which every client accepts.
		if err := h.s.linkUnicast(h.sk, to.Addr.Addr(), pkt.ClientHWAddr); err != nil {
			h.log.Debug("dhcp unicast to chaddr unavailable, broadcasting", "mac", mac, "err", err)
			to = Dest{Addr: netip.AddrPortFrom(Broadcast, 68), Why: to.Why + " (sent as broadcast)"}
		}
	}
	return reply{Wire: appendPacket(buf, res.Reply), To: to.Addr, Meta: answered{pkt: pkt, res: res, mac: mac, dst: to, in: q.dst}}, udploop.Send
}

// ignored counts, logs and records a request the Responder did not answer.
func (h *handler) ignored(ctx context.Context, pkt *dhcpv4.DHCPv4, res Result, mac string) {
	h.s.ignored.Add(1)
	if res.PeerShare {
		h.s.peerShare.Add(1) // the peer that owns the client records it
		return
	}
	ev := h.s.Events
	if ev != nil && res.Learn.IsValid() {
		ev.Learn(res.Learn, mac)
	}
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.Debug("dhcp ignored", "mac", mac, "xid", pkt.TransactionID.String(), "type", pkt.MessageType().String(),
			"why", res.Reason, "firmware", res.Machine.Firmware.String())
	}
	if h.s.Fleet != nil && res.Machine.Firmware != boot.FirmwareUnknown {
		h.s.Fleet.Observe(res.Machine, res.Learn, hostname(pkt), res.Plan)
	}
	if ev != nil && res.Machine.Firmware != boot.FirmwareUnknown && pkt.MessageType() == dhcpv4.MessageTypeDiscover && !res.Plan.Dropped {
		ev.Record(events.Event{MAC: mac, Stage: events.StageIgnored, Detail: res.Reason})
	}
	if mp := res.Plan.Menu; mp != nil && mp.Chosen != nil {
		// A boot server request for an item or layer this server does
		// not serve: silent (PXE 2.1 §2.2.5), counted and on the timeline.
		h.s.menuUnknown.Add(1)
		if ev != nil {
			ev.Record(events.Event{MAC: mac, Stage: events.StageMenuUnknown, Detail: res.Reason})
		}
	}
}

// Retry implements udploop.Handler: a reply that could not be unicast to
// chaddr is broadcast instead.
func (h *handler) Retry(r *reply, err error) bool {
	if !r.Meta.dst.Link {
		return false
	}
	h.log.Debug("dhcp unicast to chaddr failed, broadcasting", "mac", r.Meta.mac, "dst", r.To.String(), "err", err)
	r.Meta.dst = Dest{Addr: netip.AddrPortFrom(Broadcast, 68), Why: r.Meta.dst.Why + " (sent as broadcast)"}
	r.To = r.Meta.dst.Addr
	return true
}

// RequestAttrs implements udploop.Handler.
func (h *handler) RequestAttrs(q request) []any {
	return []any{"src", q.src.String(), "xid", q.pkt.TransactionID.String()}
}

// ReplyAttrs implements udploop.Handler.
func (h *handler) ReplyAttrs(r *reply) []any {
	return []any{"mac", r.Meta.mac, "xid", r.Meta.pkt.TransactionID.String(), "reply", r.Meta.res.Reply.MessageType().String()}
}

// Sent implements udploop.Handler: it logs the reply and records its
// event, and the address the client is now known to use.
func (h *handler) Sent(ctx context.Context, r *reply) {
	a := &r.Meta
	res := a.res
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.Debug("dhcp replied", "mac", a.mac, "xid", a.pkt.TransactionID.String(), "type", a.pkt.MessageType().String(),
			"reply", res.Reply.MessageType().String(), "dst", r.To.String(), "file", res.Plan.BootFile)
	}
	if h.s.Fleet != nil && res.Machine.Firmware != boot.FirmwareUnknown {
		ip := res.Learn
		if y, ok := netip.AddrFromSlice(res.Reply.YourIPAddr.To4()); ok && !y.IsUnspecified() {
			ip = y
		}
		h.s.Fleet.Observe(res.Machine, ip, hostname(a.pkt), res.Plan)
	}
	ev := h.s.Events
	if ev == nil {
		return
	}
	if res.Learn.IsValid() {
		ev.Learn(res.Learn, a.mac)
	}
	stage := events.StageOffer
	switch res.Reply.MessageType() {
	case dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNone: // a BOOTREPLY binds at once
		stage = events.StageAck
	case dhcpv4.MessageTypeNak:
		stage = events.StageNak
	}
	ev.Record(events.Event{MAC: a.mac, Stage: stage, Detail: replyDetail(res.Machine, res.Plan.BootFile, h.sk.port)})
	if mp := res.Plan.Menu; mp != nil {
		d := menuDetail(mp, res.Plan.BootFile)
		if mp.Chosen != nil {
			d += arrival(a.in, h.sk.ip, h.sk.port)
		}
		ev.Record(events.Event{MAC: a.mac, Stage: menuStage(mp), Detail: d})
	}
}

// chose counts a reply's boot menu and, for the answer to a boot server
// request, remembers the item's profile before the reply goes out (the
// NBP it names may ask for the profile's script at once).
func (s *Server) chose(res Result, mac string) {
	mp := res.Plan.Menu
	switch {
	case mp == nil:
	case mp.Chosen == nil && len(mp.Items) == 0: // iPXE discovers an item's boot servers
	case mp.Chosen == nil:
		s.menuOffers.Add(1)
		if s.Choices != nil && res.Machine.Firmware == boot.FirmwarePXE {
			s.Choices.RememberShown(mac)
		}
	default:
		s.menuItems.Add(1)
		if s.Choices != nil && mp.Profile != "" {
			s.Choices.Remember(mac, mp.Profile)
		}
	}
}

func menuStage(mp *boot.MenuPlan) events.Stage {
	if mp.Chosen == nil {
		return events.StageMenu
	}
	return events.StageMenuItem
}

// menuDetail is the event detail of a reply with a menu: its items and
// prompt, or the item chosen, its layer and what it boots.
func menuDetail(mp *boot.MenuPlan, file string) string {
	if mp.Chosen == nil && len(mp.Items) == 0 {
		var sb strings.Builder
		fmt.Fprintf(&sb, "discovery of %q by iPXE (%s) from", mp.Item, file)
		for _, bs := range mp.Servers {
			fmt.Fprintf(&sb, " type %d: %v", bs.Type, bs.Addrs)
		}
		return sb.String()
	}
	if mp.Chosen == nil {
		var sb strings.Builder
		fmt.Fprintf(&sb, "%d items (", len(mp.Items))
		for i, it := range mp.Items {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "%q type %d", it.Desc, it.Type)
		}
		fmt.Fprintf(&sb, "), prompt %q timeout %d", mp.Prompt, mp.Timeout)
		return sb.String()
	}
	d := fmt.Sprintf("type %d layer %d → %s", mp.Chosen.Type, mp.Chosen.Layer, file)
	if mp.Item != "" {
		d = fmt.Sprintf("%q ", mp.Item) + d
	}
	if mp.Profile != "" {
		d += " (profile " + mp.Profile + ")"
	}
	return d
}

// arrival says how a boot server request reached the socket of address
// ip and port (PXE 2.1 §2.2.5: unicast to port 4011, broadcast to port
// 67, or the discovery multicast address on 4011), for its event: the
// firmware chose the method from the offer's discovery control.
func arrival(dst, ip netip.Addr, port Port) string {
	switch {
	case !dst.IsValid():
		return ""
	case dst.IsMulticast():
		return fmt.Sprintf(", request by multicast to %s:%d", dst, port)
	case dst == ip:
		return fmt.Sprintf(", request by unicast to port %d", port)
	}
	return fmt.Sprintf(", request by broadcast to port %d", port)
}

// notice counts the anomalies res reports and warns of each, with an
// event on the client at hand, at most once per lograte interval: a flood
// of made-up clients must neither flood the log nor push the timelines of
// real machines out of the event log. PXE clients that go unanswered
// still get their dhcp-ignored event with the reason.
func (s *Server) notice(res Result, mac string, log *slog.Logger) {
	if res.PoolExhausted {
		s.poolExhausted.Add(1)
		s.warn(log, events.StagePoolExhausted, mac, res.Reason, "dhcp pool exhausted: a client got no address")
	}
	if res.Starvation {
		s.starvation.Add(1)
		s.warn(log, events.StageStarvation, mac, res.Reason, "dhcp starvation: many new clients in a short time, a flood of made-up client IDs?")
	}
	if res.Foreign {
		s.foreign.Add(1)
		s.warn(log, events.StageForeign, mac, res.Reason, "dhcp foreign DECLINE or RELEASE refused: not from the lease holder")
	}
}

// warn records an event of stage on mac and logs msg unless it was logged
// less than an interval ago. A pool exhausted or a foreign DECLINE/RELEASE
// is recorded on every client it concerns (its timeline then says why it
// got no address, or what was refused); a starvation pattern is one event
// per interval, on the client that tripped it.
func (s *Server) warn(log *slog.Logger, stage events.Stage, mac, why, msg string) {
	ok, suppressed := s.warnings.Allow(string(stage))
	if ok {
		log.Warn(msg, "mac", mac, "why", why, "suppressed", suppressed)
	}
	if s.Events == nil || (!ok && stage == events.StageStarvation) {
		return
	}
	if ok && suppressed > 0 && stage == events.StageStarvation {
		why += " (" + strconv.Itoa(suppressed) + " more since the last warning)"
	}
	s.Events.Record(events.Event{MAC: mac, Stage: stage, Detail: why})
}

// replyDetail is the event detail of a reply: "firmware arch → file (port N)".
func replyDetail(m boot.Machine, file string, port Port) string {
	return m.Firmware.String() + " " + archName(m) + " → " + file + " (port " + strconv.Itoa(int(port)) + ")"
}

// linkUnicast makes yiaddr reachable at chaddr on the socket's interface.
func (s *Server) linkUnicast(sk *Socket, yiaddr netip.Addr, chaddr net.HardwareAddr) error {
	sc, ok := sk.raw.(syscall.Conn)
	if !ok {
		return errors.New("dhcp4: socket has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("dhcp4: arp entry for %v: %w", yiaddr, err)
	}
	return setARP(rc, sk.iface.Name, yiaddr, chaddr)
}

func archName(m boot.Machine) string {
	if m.Class != "" {
		return m.Class
	}
	if m.HasArch {
		return "arch-" + strconv.Itoa(int(m.Arch))
	}
	return "arch-?"
}

// hostname is the client's option 12, "" when absent or not printable.
func hostname(p *dhcpv4.DHCPv4) string {
	h := p.HostName()
	if len(h) > 63 {
		return ""
	}
	for _, r := range h {
		if r <= ' ' || r >= 0x7f {
			return ""
		}
	}
	return h
}
