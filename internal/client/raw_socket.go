package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// dhcpClientPort is where servers send replies (RFC 2131 §4.1); simulated
// clients send from it too, also to port 4011 (PXE 2.1 §2.2.5).
const dhcpClientPort = 68

// rawFilter accepts ARP and unfragmented IPv4 UDP to port 68: what the
// simulated clients must see (replies, and ARP requests for their leased
// addresses). Everything else stays in the kernel.
func rawFilter() ([]bpf.RawInstruction, error) {
	const accept, reject = 0x40000, 0
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                                   // 0: ethertype
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: etherTypeARP, SkipTrue: 8},      // 1: → accept
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv4, SkipTrue: 8},  // 2: → reject
		bpf.LoadAbsolute{Off: 23, Size: 1},                                   // 3: IP protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoUDP, SkipTrue: 6},       // 4: → reject
		bpf.LoadAbsolute{Off: 20, Size: 2},                                   // 5: flags, fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 4},          // 6: fragment → reject
		bpf.LoadMemShift{Off: etherHeaderLen},                                // 7: X = IP header length
		bpf.LoadIndirect{Off: etherHeaderLen + 2, Size: 2},                   // 8: UDP destination port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: dhcpClientPort, SkipTrue: 1}, // 9: → reject
		bpf.RetConstant{Val: accept},                                         // 10
		bpf.RetConstant{Val: reject},                                         // 11
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("client: assemble raw socket filter: %w", err)
	}
	return raw, nil
}

// RawSocket is one AF_PACKET socket on an interface shared by many
// simulated clients, each with its own MAC address (pxed storm). One reader
// goroutine demultiplexes DHCP replies to the clients by transaction ID
// (checking chaddr) and answers ARP requests for the addresses the clients
// hold, as their own network stacks would, so that servers can unicast to
// them (boot server replies go to ciaddr).
type RawSocket struct {
	conn  *packet.Conn
	iface string
	log   *slog.Logger

	mu      sync.Mutex
	byXID   map[dhcpv4.TransactionID]*RawTransport
	arp     map[netip.Addr]net.HardwareAddr // leased address → client MAC
	servers map[netip.Addr]net.HardwareAddr // server address → MAC, learned from replies

	bufs sync.Pool // *[]byte for encoding frames

	// Counters for the report.
	framesIn, unclaimed, dropped, arpReplies atomic.Int64
	kernelDrops                              atomic.Int64 // summed: the kernel resets its counter on each read

	done chan struct{}
}

// RawStats are the counters of a RawSocket.
type RawStats struct {
	FramesIn   int64 `json:"frames_in"`   // frames the filter passed
	Unclaimed  int64 `json:"unclaimed"`   // DHCP replies for no client of ours
	Dropped    int64 `json:"dropped"`     // replies dropped: the client's queue was full
	ARPReplies int64 `json:"arp_replies"` // ARP requests answered for simulated clients
	// KernelDrops are frames the kernel dropped because the socket's
	// receive buffer was full (PACKET_STATISTICS): the client, not the
	// server, lost them.
	KernelDrops int64 `json:"kernel_drops"`
}

// OpenRaw opens the raw socket on interface iface (root or CAP_NET_RAW),
// in promiscuous mode so that frames sent to the simulated MACs arrive.
func OpenRaw(iface string, log *slog.Logger) (*RawSocket, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("client: raw socket: interface %q: %w", iface, err)
	}
	filter, err := rawFilter()
	if err != nil {
		return nil, err
	}
	c, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, &packet.Config{Filter: filter})
	if err != nil {
		return nil, fmt.Errorf("client: raw socket on %s: %w", iface, err)
	}
	if err := c.SetPromiscuous(true); err != nil {
		c.Close()
		return nil, fmt.Errorf("client: raw socket on %s: promiscuous mode: %w", iface, err)
	}
	// A storm's replies come in bursts: a large receive buffer keeps them.
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			}
		})
	}
	s := &RawSocket{conn: c, iface: iface, log: log,
		byXID:   map[dhcpv4.TransactionID]*RawTransport{},
		arp:     map[netip.Addr]net.HardwareAddr{},
		servers: map[netip.Addr]net.HardwareAddr{},
		done:    make(chan struct{}),
	}
	s.bufs.New = func() any { b := make([]byte, 0, 1600); return &b }
	go s.read()
	return s, nil
}

// Close closes the socket and waits for the reader to stop.
func (s *RawSocket) Close() error {
	err := s.conn.Close()
	<-s.done
	if err != nil {
		return fmt.Errorf("client: close raw socket on %s: %w", s.iface, err)
	}
	return nil
}

// Stats returns the socket's counters.
func (s *RawSocket) Stats() RawStats {
	if ks, err := s.conn.Stats(); err == nil {
		s.kernelDrops.Add(int64(ks.Drops))
	}
	return RawStats{FramesIn: s.framesIn.Load(), Unclaimed: s.unclaimed.Load(), Dropped: s.dropped.Load(),
		ARPReplies: s.arpReplies.Load(), KernelDrops: s.kernelDrops.Load()}
}

// Transport returns the Transport of the simulated client with hardware
// address mac. Close it when the client is done.
func (s *RawSocket) Transport(mac net.HardwareAddr) *RawTransport {
	return &RawTransport{s: s, mac: mac, in: make(chan rawReply, 16)}
}

// read is the only reader of the socket: it runs until Close.
func (s *RawSocket) read() {
	defer close(s.done)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Debug("raw socket read", "iface", s.iface, "err", err)
			}
			return
		}
		s.framesIn.Add(1)
		s.handle(buf[:n])
	}
}

// handle dispatches one received frame.
func (s *RawSocket) handle(frame []byte) {
	if len(frame) >= etherHeaderLen && binary.BigEndian.Uint16(frame[12:14]) == etherTypeARP {
		s.answerARP(frame)
		return
	}
	f, err := DecodeUDPFrame(frame)
	if err != nil || f.Dst.Port() != dhcpClientPort {
		return
	}
	// BOOTP header: op at 0, xid at 4..8, chaddr at 28..34 (RFC 2131 §2).
	pl := f.Payload
	if len(pl) < 240 || pl[0] != byte(dhcpv4.OpcodeBootReply) {
		return
	}
	var xid dhcpv4.TransactionID
	copy(xid[:], pl[4:8])
	s.mu.Lock()
	t := s.byXID[xid]
	if src := f.Src.Addr(); src.IsValid() && !src.IsUnspecified() {
		if old, ok := s.servers[src]; !ok || old.String() != f.SrcMAC.String() {
			s.servers[src] = append(net.HardwareAddr(nil), f.SrcMAC...)
		}
	}
	s.mu.Unlock()
	if t == nil || string(pl[28:34]) != string(t.mac) {
		s.unclaimed.Add(1)
		return
	}
	// dhcpv4.FromBytes keeps slices of its input (addresses): give it a copy.
	p, err := dhcpv4.FromBytes(append([]byte(nil), pl...))
	if err != nil {
		s.log.Debug("raw socket: malformed reply", "iface", s.iface, "from", f.Src, "err", err)
		return
	}
	select {
	case t.in <- rawReply{p: p, from: f.Src}:
	default:
		s.dropped.Add(1)
	}
}

// answerARP replies to an ARP request for an address a simulated client
// holds (RFC 826), from that client's MAC.
func (s *RawSocket) answerARP(frame []byte) {
	a, err := DecodeARP(frame)
	if err != nil || a.Op != arpRequest {
		return
	}
	s.mu.Lock()
	mac, ok := s.arp[a.TargetIP]
	s.mu.Unlock()
	if !ok {
		return
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	out, err := AppendARPFrame((*bp)[:0], a.SenderMAC, ARPPacket{Op: arpReply,
		SenderMAC: mac, SenderIP: a.TargetIP, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP})
	if err != nil {
		return
	}
	*bp = out
	if _, err := s.conn.WriteTo(out, &packet.Addr{HardwareAddr: a.SenderMAC}); err == nil {
		s.arpReplies.Add(1)
	}
}

type rawReply struct {
	p    *dhcpv4.DHCPv4
	from netip.AddrPort
}

// RawTransport is the Transport of one simulated client on a RawSocket:
// frames leave with the client's MAC as source; broadcasts come from
// 0.0.0.0:68 as firmware sends them, unicasts from ciaddr:68.
type RawTransport struct {
	s    *RawSocket
	mac  net.HardwareAddr
	in   chan rawReply
	xids []dhcpv4.TransactionID
	ips  []netip.Addr
}

// Send implements Transport. It registers the packet's transaction ID so
// that replies reach this client, and its ciaddr so that ARP requests for
// it are answered.
func (t *RawTransport) Send(ctx context.Context, p *dhcpv4.DHCPv4, dst netip.AddrPort) error {
	s := t.s
	src := netip.AddrPortFrom(netip.IPv4Unspecified(), dhcpClientPort)
	ci := addr(p.ClientIPAddr)
	if ci.Is4() {
		src = netip.AddrPortFrom(ci, dhcpClientPort)
	}
	dstMAC := BroadcastMAC
	s.mu.Lock()
	if _, ok := s.byXID[p.TransactionID]; !ok {
		s.byXID[p.TransactionID] = t
		t.xids = append(t.xids, p.TransactionID)
	}
	if ci.Is4() {
		if _, ok := s.arp[ci]; !ok {
			s.arp[ci] = t.mac
			t.ips = append(t.ips, ci)
		}
	}
	if !dst.Addr().IsValid() || dst.Addr() != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		if m, ok := s.servers[dst.Addr()]; ok {
			dstMAC = m
		}
	}
	s.mu.Unlock()
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	frame, err := AppendUDPFrame((*bp)[:0], UDPFrame{DstMAC: dstMAC, SrcMAC: t.mac, Src: src, Dst: dst, Payload: p.ToBytes()})
	if err != nil {
		return fmt.Errorf("client: send %s from %s: %w", p.MessageType(), t.mac, err)
	}
	*bp = frame
	if _, err := s.conn.WriteTo(frame, &packet.Addr{HardwareAddr: dstMAC}); err != nil {
		return fmt.Errorf("client: send %s from %s to %s on %s: %w", p.MessageType(), t.mac, dst, s.iface, err)
	}
	return nil
}

// Receive implements Transport: the next reply for one of this client's
// transaction IDs.
func (t *RawTransport) Receive(ctx context.Context) (*dhcpv4.DHCPv4, netip.AddrPort, error) {
	select {
	case r := <-t.in:
		return r.p, r.from, nil
	case <-ctx.Done():
		return nil, netip.AddrPort{}, ctx.Err()
	}
}

// Close forgets the client's transaction IDs and addresses: later replies
// are not delivered and ARP requests for its addresses go unanswered.
func (t *RawTransport) Close() {
	s := t.s
	s.mu.Lock()
	for _, x := range t.xids {
		if s.byXID[x] == t {
			delete(s.byXID, x)
		}
	}
	for _, ip := range t.ips {
		if s.arp[ip].String() == t.mac.String() {
			delete(s.arp, ip)
		}
	}
	s.mu.Unlock()
	t.xids, t.ips = nil, nil
}

// HoldAddress makes the socket answer ARP requests for ip with this
// client's MAC until Close (a client that has leased ip).
func (t *RawTransport) HoldAddress(ip netip.Addr) {
	if !ip.Is4() {
		return
	}
	t.s.mu.Lock()
	if _, ok := t.s.arp[ip]; !ok {
		t.s.arp[ip] = t.mac
		t.ips = append(t.ips, ip)
	}
	t.s.mu.Unlock()
}
