package rogue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Socket is one packet socket watching one interface for one family.
type Socket struct {
	Interface string
	Family    int
	conn      *packet.Conn
}

// Close closes the socket.
func (s *Socket) Close() error { return s.conn.Close() }

// Skipped is an interface (and family) not watched, and why.
type Skipped struct {
	Interface string
	Family    int
	Reason    string
}

// snapLen is the most bytes of a frame the filter passes up (a jumbo frame).
const snapLen = 9216

// Filter4 is the classic BPF program of the IPv4 socket: an unfragmented
// UDP datagram from port 67 or 4011 to port 68. Everything else (pxed's own
// TFTP and HTTP traffic included) stays in the kernel. The socket is bound
// to ETH_P_IP, so it sees only frames the interface receives, never the
// ones pxed sends.
func Filter4() ([]bpf.RawInstruction, error) {
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                                   // 0: ethertype
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv4, SkipTrue: 11}, // 1: → reject
		bpf.LoadAbsolute{Off: 23, Size: 1},                                   // 2: IP protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoUDP, SkipTrue: 9},       // 3: → reject
		bpf.LoadAbsolute{Off: 20, Size: 2},                                   // 4: flags, fragment offset
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 7},          // 5: fragment → reject
		bpf.LoadMemShift{Off: etherHeaderLen},                                // 6: X = IP header length
		bpf.LoadIndirect{Off: etherHeaderLen + 2, Size: 2},                   // 7: UDP destination port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: PortClient4, SkipTrue: 4},    // 8: → reject
		bpf.LoadIndirect{Off: etherHeaderLen, Size: 2},                       // 9: UDP source port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: PortServer4, SkipTrue: 1},       // 10: → accept
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: PortBootServer, SkipTrue: 1}, // 11: → reject
		bpf.RetConstant{Val: snapLen},                                        // 12: accept
		bpf.RetConstant{Val: 0},                                              // 13: reject
	})
}

// Filter6 is the IPv6 socket's program: UDP (no extension header) from
// port 547 to port 546 (RFC 8415 §7.2: Advertise and Reply to a client).
func Filter6() ([]bpf.RawInstruction, error) {
	const udp = etherHeaderLen + ipv6HeaderLen
	return bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},                                  // 0: ethertype
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv6, SkipTrue: 7}, // 1: → reject
		bpf.LoadAbsolute{Off: etherHeaderLen + 6, Size: 1},                  // 2: next header
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoUDP, SkipTrue: 5},      // 3: → reject
		bpf.LoadAbsolute{Off: udp, Size: 2},                                 // 4: UDP source port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: PortServer6, SkipTrue: 3},   // 5: → reject
		bpf.LoadAbsolute{Off: udp + 2, Size: 2},                             // 6: UDP destination port
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: PortClient6, SkipTrue: 1},   // 7: → reject
		bpf.RetConstant{Val: snapLen},                                       // 8: accept
		bpf.RetConstant{Val: 0},                                             // 9: reject
	})
}

// Open opens a packet socket on each interface for each family whose role
// is not RoleOff. An interface that cannot be watched (no Ethernet header,
// no CAP_NET_RAW) is skipped with the reason; the others are returned.
func (d *Detector) Open(ifaces []string) ([]*Socket, []Skipped) {
	var socks []*Socket
	var skipped []Skipped
	for _, fam := range []struct {
		family int
		role   Role
		proto  int
		filter func() ([]bpf.RawInstruction, error)
	}{{4, d.Role4, unix.ETH_P_IP, Filter4}, {6, d.Role6, unix.ETH_P_IPV6, Filter6}} {
		if fam.role == RoleOff {
			continue
		}
		for _, name := range ifaces {
			s, err := openSocket(name, fam.family, fam.proto, fam.filter)
			if err != nil {
				skipped = append(skipped, Skipped{Interface: name, Family: fam.family, Reason: err.Error()})
				continue
			}
			socks = append(socks, s)
		}
	}
	return socks, skipped
}

func openSocket(name string, family, proto int, filter func() ([]bpf.RawInstruction, error)) (*Socket, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, errors.New("not an Ethernet interface (the filter reads Ethernet headers)")
	}
	prog, err := filter()
	if err != nil {
		return nil, fmt.Errorf("assemble filter: %w", err)
	}
	c, err := packet.Listen(ifi, packet.Raw, proto, &packet.Config{Filter: prog})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("packet socket: %w (needs CAP_NET_RAW)", err)
		}
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	return &Socket{Interface: name, Family: family, conn: c}, nil
}

// Run reads every socket until ctx ends, then closes them. A frame that
// does not decode is dropped silently (the filter let it through, but it is
// not a DHCP reply).
func (d *Detector) Run(ctx context.Context, socks []*Socket) error {
	var wg sync.WaitGroup
	for _, s := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, snapLen)
			for {
				n, _, err := s.conn.ReadFrom(buf)
				if err != nil {
					if ctx.Err() == nil && d.Logger != nil {
						d.Logger.Warn("rogue detection stopped on this interface", "iface", s.Interface, "family", s.Family, "err", err)
					}
					return
				}
				d.frames.Add(1)
				if r, err := Decode(buf[:n]); err == nil {
					d.Observe(s.Interface, r)
				}
			}
		}()
	}
	<-ctx.Done()
	for _, s := range socks {
		s.Close()
	}
	wg.Wait()
	return nil
}
