package dhcp4

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/lease"
	"pxed/internal/lograte"
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
// announces them leaves only once they are durable (see Server.Run).
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
	Starvation    uint64 // DISCOVERs of new clients past the starvation threshold
	Foreign       uint64 // DECLINEs and RELEASEs refused as not from the lease holder
}

// Server is the DHCPv4 loop: one socket per interface and port, bound to the
// interface (SO_BINDTODEVICE) so pxed answers only where it is told to and
// knows where each packet came from.
type Server struct {
	Interfaces []string // interface names; required
	Ports      []Port   // default 67 and 4011
	// Workers is the number of requests handled at once per socket; 0
	// means DefaultWorkers. Concurrency lets the lease store batch many
	// clients' commits into one transaction and keeps an address probe from
	// stalling everyone else. Packets beyond Workers plus the queue are
	// dropped and counted (clients retransmit).
	Workers   int
	Responder Responder    // required
	HTTPPort  int          // put in boot URLs; default 8080
	Events    *events.Log  // nil records nothing
	Logger    *slog.Logger // nil discards
	// ListenAddr overrides the address sockets bind to (tests); default 0.0.0.0.
	ListenAddr netip.Addr
	// BatchWait paces the reader under load: after a read of several
	// packets, or of one that came within BatchWait of the read before,
	// the reader waits BatchWait before it reads again, so that one
	// wake-up takes many packets instead of one each (as a NIC moderates
	// its interrupts). A lone packet is answered at once. 0 means
	// DefaultBatchWait; negative reads again at once.
	BatchWait time.Duration

	received, malformed, ignored, replied, sendErrs, overload, unsaved atomic.Uint64
	poolExhausted, starvation, foreign                                 atomic.Uint64
	// warnings keeps each anomaly to one warning (and one event) per
	// interval.
	warnings lograte.Limiter
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Received: s.received.Load(), Malformed: s.malformed.Load(), Ignored: s.ignored.Load(),
		Replied: s.replied.Load(), SendErrs: s.sendErrs.Load(), Overload: s.overload.Load(), Unsaved: s.unsaved.Load(),
		PoolExhausted: s.poolExhausted.Load(), Starvation: s.starvation.Load(), Foreign: s.foreign.Load(),
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
			c, err := listen(ifi.Name, s.ListenAddr, int(port))
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
			oob := (&ipv4.ControlMessage{IfIndex: ifi.Index}).Marshal()
			out = append(out, &Socket{iface: ifi, ip: ip, port: port, conn: pc, raw: c, oob: oob})
		}
	}
	return out, nil
}

func closeAll(socks []*Socket) {
	for _, s := range socks {
		s.raw.Close()
	}
}

func interfaceIPv4(ifi *net.Interface) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp4: interface %q addresses: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		if pn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("dhcp4: interface %q has no IPv4 address (pxed needs one to name itself as next server)", ifi.Name)
}

func listen(ifname string, addr netip.Addr, port int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			// A rack powering on sends hundreds of DISCOVERs within
			// milliseconds: a large receive buffer queues the burst
			// instead of dropping it (FORCE passes rmem_max as root).
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
			}
			// Replies waiting for a neighbour (ARP) to resolve are charged
			// to the send buffer: room for a flood of them, so replies to
			// everyone else still fit (and see send below).
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	host := "0.0.0.0"
	if addr.IsValid() {
		host = addr.String()
	}
	c, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort(host, fmt.Sprint(port)))
	if err != nil {
		return nil, fmt.Errorf("dhcp4: listen on %s port %d: %w", ifname, port, err)
	}
	return c, nil
}

// Run serves the sockets opened by Open until ctx ends, then closes them.
func (s *Server) Run(ctx context.Context, socks []*Socket) error {
	var wg sync.WaitGroup
	for _, sk := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serve(ctx, sk)
		}()
	}
	<-ctx.Done()
	closeAll(socks)
	wg.Wait()
	return nil
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) serve(ctx context.Context, sk *Socket) {
	log := s.logger().With("iface", sk.iface.Name, "port", int(sk.port))
	httpPort := s.HTTPPort
	if httpPort == 0 {
		httpPort = 8080
	}
	workers := s.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	quick, _ := s.Responder.(Quicker)
	jobs := make(chan job, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]reply, 0, 1)
			buf := make([]byte, 0, replyCapacity)
			for j := range jobs {
				if r, ok := s.answer(ctx, nil, sk, j.pkt, j.src, j.dst, httpPort, log, buf[:0]); ok {
					out = append(out[:0], r)
					s.send(ctx, sk, out, log)
					buf = r.wire // keep a buffer that grew
				}
			}
		}()
	}
	// Replies the reader made that announce lease writes wait here, a
	// read's worth at a time, until the writes are on disk, while the
	// reader goes on; their buffers come back through spare. The queue
	// holds a commit interval's reads at any rate the reader keeps up
	// with, so that the reader (and the OFFERs it sends) never waits for
	// a commit.
	durable := make(chan []reply, 4096)
	spare := make(chan []byte, 1024)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for rs := range durable {
			s.sendDurable(ctx, sk, rs, log)
			for _, r := range rs {
				select {
				case spare <- r.wire[:0]:
				default:
				}
			}
		}
	}()
	defer func() {
		close(jobs)
		close(durable)
		wg.Wait()
	}()
	// One recvmmsg reads every packet already queued (up to readBatch);
	// the replies the reader makes itself leave in one sendmmsg.
	msgs := make([]ipv4.Message, readBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, packetBuffer)}
		msgs[i].OOB = ipv4.NewControlMessage(ipv4.FlagInterface | ipv4.FlagDst)
	}
	batchWait := s.BatchWait
	if batchWait == 0 {
		batchWait = DefaultBatchWait
	}
	var lastRead time.Time
	var cm ipv4.ControlMessage
	out := make([]reply, 0, readBatch)
	bufs := make([][]byte, readBatch) // the wire form of out[i], reused
	for i := range bufs {
		bufs[i] = make([]byte, 0, replyCapacity)
	}
	for {
		n, err := sk.conn.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			log.Warn("dhcp read", "err", err)
			time.Sleep(10 * time.Millisecond) // avoid a hot loop on a persistent error
			continue
		}
		now := time.Now()
		busy := batchWait > 0 && n < len(msgs) && (n > 1 || now.Sub(lastRead) < batchWait)
		lastRead = now
		out = out[:0]
		var waiting []reply
		for i := range msgs[:n] {
			m := &msgs[i]
			s.received.Add(1)
			var dst netip.Addr
			if cm = (ipv4.ControlMessage{}); m.NN > 0 && cm.Parse(m.OOB[:m.NN]) == nil {
				if cm.IfIndex != 0 && cm.IfIndex != sk.iface.Index {
					continue // not ours (cannot happen with SO_BINDTODEVICE, kept as a guard)
				}
				dst = AddrFromIP(cm.Dst)
			}
			srcAP := netip.AddrPort{}
			if ua, ok := m.Addr.(*net.UDPAddr); ok {
				srcAP = ua.AddrPort()
				srcAP = netip.AddrPortFrom(srcAP.Addr().Unmap(), srcAP.Port())
			}
			if m.Flags&unix.MSG_TRUNC != 0 {
				s.malformed.Add(1)
				log.Debug("dhcp packet too long, dropped", "src", srcAP.String(), "len", m.N)
				continue
			}
			pkt, err := dhcpv4.FromBytes(m.Buffers[0][:m.N])
			if err != nil {
				s.malformed.Add(1)
				log.Debug("dhcp malformed packet dropped", "src", srcAP.String(), "len", m.N, "err", err)
				continue
			}
			if why := Validate(pkt); why != "" {
				s.malformed.Add(1)
				log.Debug("dhcp packet dropped", "src", srcAP.String(), "xid", pkt.TransactionID.String(), "why", why)
				continue
			}
			if quick != nil && quick.Quick(pkt) {
				d := new(lease.Deferred)
				r, ok := s.answer(ctx, d, sk, pkt, srcAP, dst, httpPort, log, bufs[len(out)][:0])
				switch {
				case r.res.Busy:
					s.dispatch(jobs, job{pkt, srcAP, dst}, log)
				case !ok:
				case d.Queued():
					// Its buffer travels with it; the slot gets another.
					r.durable = d
					waiting = append(waiting, r)
					select {
					case bufs[len(out)] = <-spare:
					default:
						bufs[len(out)] = make([]byte, 0, replyCapacity)
					}
				default:
					bufs[len(out)] = r.wire
					out = append(out, r)
				}
				continue
			}
			s.dispatch(jobs, job{pkt, srcAP, dst}, log)
		}
		s.send(ctx, sk, out, log)
		if len(waiting) > 0 {
			durable <- waiting
		}
		if busy {
			time.Sleep(batchWait)
		}
	}
}

// dispatch queues a packet for the workers, or drops and counts it when
// every worker is busy and the queue is full (clients retransmit).
func (s *Server) dispatch(jobs chan<- job, j job, log *slog.Logger) {
	select {
	case jobs <- j:
	default:
		s.overload.Add(1)
		log.Debug("dhcp overloaded, packet dropped", "src", j.src.String(), "xid", j.pkt.TransactionID.String())
	}
}

// sendDurable sends the replies once the lease writes each announces are
// durable; a reply whose write failed is withheld (the client asks again).
func (s *Server) sendDurable(ctx context.Context, sk *Socket, rs []reply, log *slog.Logger) {
	ok := rs[:0:0]
	for _, r := range rs {
		if err := r.durable.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return // shutting down: nothing more is sent
			}
			s.unsaved.Add(1)
			log.Warn("dhcp reply withheld: its lease was not saved", "mac", r.mac, "xid", r.pkt.TransactionID.String(),
				"reply", r.res.Reply.MessageType().String(), "err", err)
			continue
		}
		ok = append(ok, r)
	}
	s.send(ctx, sk, ok, log)
}

// socketBuffer is the receive buffer of each DHCP socket.
const socketBuffer = 4 << 20

// readBatch is the most packets one read takes from a socket's queue.
const readBatch = 32

// packetBuffer is the size of each packet's read buffer: a DHCP message
// in a jumbo frame fits; a longer one is dropped as malformed.
const packetBuffer = 9216

// DefaultBatchWait is Server.BatchWait when 0: at most 1 ms added to a
// reply under load, for about a third less CPU per DORA at 8,000/s.
const DefaultBatchWait = time.Millisecond

// DefaultWorkers is Server.Workers when 0.
const DefaultWorkers = 256

// job is a packet for a worker.
type job struct {
	pkt *dhcpv4.DHCPv4
	src netip.AddrPort
	dst netip.Addr
}

// reply is an answer ready to send.
type reply struct {
	pkt  *dhcpv4.DHCPv4 // the request
	res  Result
	mac  string
	dst  Dest
	wire []byte
	// durable, when set, holds the lease writes the reply announces;
	// it is sent only once they are on disk.
	durable *lease.Deferred
}

// answer asks the Responder about pkt and, when it answers, returns the
// reply with its destination (RFC 2131 §4.1) and its bytes, encoded into
// buf (which may grow).
func (s *Server) answer(ctx context.Context, d *lease.Deferred, sk *Socket, pkt *dhcpv4.DHCPv4, src netip.AddrPort, dst netip.Addr, httpPort int, log *slog.Logger, buf []byte) (reply, bool) {
	mac := boot.Normalize(pkt.ClientHWAddr)
	res := s.Responder.Respond(Request{Packet: pkt, Port: sk.port, Server: boot.Server{IP: sk.ip, HTTPPort: httpPort}, Ctx: ctx,
		Deferred: d, Src: src, Dst: dst})
	if res.Busy {
		return reply{pkt: pkt, res: res}, false // for a worker: nothing counted yet
	}
	s.notice(res, mac, log)
	if res.Reply == nil {
		s.ignored.Add(1)
		if s.Events != nil && res.Learn.IsValid() {
			s.Events.Learn(res.Learn, mac)
		}
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("dhcp ignored", "mac", mac, "xid", pkt.TransactionID.String(), "type", pkt.MessageType().String(),
				"why", res.Reason, "firmware", res.Machine.Firmware.String())
		}
		if s.Events != nil && res.Machine.Firmware != boot.FirmwareUnknown && pkt.MessageType() == dhcpv4.MessageTypeDiscover {
			s.Events.Record(events.Event{MAC: mac, Stage: events.StageIgnored, Detail: res.Reason})
		}
		return reply{}, false
	}
	to := Destination(pkt, res.Reply, sk.port, src)
	if to.Link {
		// RFC 2131 §4.1: unicast to yiaddr at chaddr. The client cannot
		// answer ARP yet, so install its neighbour entry first (as dnsmasq
		// does); when that fails, broadcast, which every client accepts.
		if err := s.linkUnicast(sk, to.Addr.Addr(), pkt.ClientHWAddr); err != nil {
			log.Debug("dhcp unicast to chaddr unavailable, broadcasting", "mac", mac, "err", err)
			to = Dest{Addr: netip.AddrPortFrom(Broadcast, 68), Why: to.Why + " (sent as broadcast)"}
		}
	}
	return reply{pkt: pkt, res: res, mac: mac, dst: to, wire: appendPacket(buf, res.Reply)}, true
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

// send writes the replies, as many as the kernel takes per sendmmsg; a
// reply that fails is retried alone (broadcast when unicast to chaddr
// failed) and counted when it cannot be sent.
func (s *Server) send(ctx context.Context, sk *Socket, rs []reply, log *slog.Logger) {
	if len(rs) == 0 {
		return
	}
	msgs := make([]ipv4.Message, len(rs))
	for i := range rs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{rs[i].wire}, OOB: sk.oob, Addr: net.UDPAddrFromAddrPort(rs[i].dst.Addr)}
	}
	// The reader never waits long for the send buffer: replies to
	// addresses nobody answers ARP for (a flood of claimed ciaddrs or
	// giaddrs) stay charged to it until the neighbour fails, seconds later.
	_ = sk.conn.SetWriteDeadline(time.Now().Add(sendWait))
	for len(rs) > 0 {
		n, err := sk.conn.WriteBatch(msgs, 0)
		n = max(n, 0)
		for i := range rs[:n] {
			s.sent(ctx, sk, &rs[i], log)
		}
		rs, msgs = rs[n:], msgs[n:]
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.sendFull(log, rs)
			return
		}
		if len(rs) > 0 && (err != nil || n == 0) {
			// The first reply left failed: on its own, with its fallback.
			if !s.sendOne(ctx, sk, &rs[0], log) {
				s.sendFull(log, rs[1:])
				return
			}
			rs, msgs = rs[1:], msgs[1:]
		}
	}
}

// sendWait is the longest the loop waits for room in a socket's send
// buffer before it drops the replies left (counted in SendErrs).
const sendWait = 20 * time.Millisecond

// sendFull counts and reports replies dropped because the send buffer
// stayed full for sendWait.
func (s *Server) sendFull(log *slog.Logger, rs []reply) {
	if len(rs) == 0 {
		return
	}
	s.sendErrs.Add(uint64(len(rs)))
	if ok, n := s.warnings.Allow("send-buffer-full"); ok {
		log.Warn("dhcp replies dropped: the socket's send buffer is full (replies to addresses that do not answer ARP?)",
			"dropped", len(rs), "first_dst", rs[0].dst.Addr.String(), "suppressed", n)
	}
}

// sendOne writes one reply, as a broadcast when unicast to chaddr fails;
// false when the send buffer stayed full (the caller drops the rest).
func (s *Server) sendOne(ctx context.Context, sk *Socket, r *reply, log *slog.Logger) bool {
	cm := &ipv4.ControlMessage{IfIndex: sk.iface.Index}
	_, err := sk.conn.WriteTo(r.wire, cm, net.UDPAddrFromAddrPort(r.dst.Addr))
	if err != nil && r.dst.Link && !errors.Is(err, os.ErrDeadlineExceeded) {
		log.Debug("dhcp unicast to chaddr failed, broadcasting", "mac", r.mac, "dst", r.dst.Addr.String(), "err", err)
		r.dst = Dest{Addr: netip.AddrPortFrom(Broadcast, 68), Why: r.dst.Why + " (sent as broadcast)"}
		_, err = sk.conn.WriteTo(r.wire, cm, net.UDPAddrFromAddrPort(r.dst.Addr))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.sendFull(log, []reply{*r})
		return false
	}
	if err != nil {
		s.sendErrs.Add(1)
		if ok, n := s.warnings.Allow("send-failed"); ok {
			log.Warn("dhcp send failed", "mac", r.mac, "dst", r.dst.Addr.String(), "err", err, "suppressed", n)
		}
		return true
	}
	s.sent(ctx, sk, r, log)
	return true
}

// sent counts a reply that left and records it.
func (s *Server) sent(ctx context.Context, sk *Socket, r *reply, log *slog.Logger) {
	s.replied.Add(1)
	res := r.res
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("dhcp replied", "mac", r.mac, "xid", r.pkt.TransactionID.String(), "type", r.pkt.MessageType().String(),
			"reply", res.Reply.MessageType().String(), "dst", r.dst.Addr.String(), "file", res.Plan.BootFile)
	}
	if s.Events != nil {
		if res.Learn.IsValid() {
			s.Events.Learn(res.Learn, r.mac)
		}
		stage := events.StageOffer
		switch res.Reply.MessageType() {
		case dhcpv4.MessageTypeAck:
			stage = events.StageAck
		case dhcpv4.MessageTypeNak:
			stage = events.StageNak
		}
		s.Events.Record(events.Event{MAC: r.mac, Stage: stage, Detail: replyDetail(res.Machine, res.Plan.BootFile, sk.port)})
	}
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
