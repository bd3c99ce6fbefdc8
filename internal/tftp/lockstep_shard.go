package tftp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The lockstep engine of a local address runs as shards, one goroutine and
// one socket each, so that it can use more than one core: the shards'
// sockets share one port (SO_REUSEPORT), so every transfer's packets still
// come from one port whichever shard sends them (RFC 1350 §4). A
// transfer belongs to the shard its client's port selects (port mod
// shards), and a classic BPF program on the port group
// (SO_ATTACH_REUSEPORT_CBPF) makes the kernel deliver each datagram to the
// socket of that same shard, so a shard never shares a transfer. A
// datagram the program could not steer (an IPv4 header with options, an
// IPv6 extension header) reaches another shard, which hands it over to its
// owner: slower, never lost.
//
// On 2 cores, 500 concurrent lockstep clients on the same machine
// (bench/tftp.sh) left the engine's threads waiting for a CPU longer than
// they ran (/proc schedstat: 2.2 s run, 4.3 s runnable in 5 s), but both
// cores were busy (vmstat 0 % idle, the clients over half of all CPU), and
// two shards were not measured faster than one: one shard is the default.

const maxEngineShards = 16

// engineGroup is the engine shards of one local address.
type engineGroup struct {
	shards []*engine
}

// owner is the shard that serves the transfer of peer.
func (g *engineGroup) owner(peer netip.AddrPort) *engine {
	return g.shards[int(peer.Port())%len(g.shards)]
}

// engineShards is how many shards an engine runs.
func (s *Server) engineShards() int {
	return min(max(s.EngineShards, 1), maxEngineShards)
}

// listenShards opens n transfer sockets on one ephemeral port of local,
// each datagram steered to the socket at index (client port mod n). If the
// port cannot be shared or steered, it returns one socket.
func listenShards(local netip.Addr, n int) ([]*net.UDPConn, error) {
	first, err := listenTransfer(local)
	if err != nil || n < 2 {
		return []*net.UDPConn{first}, err
	}
	one := func(why error) ([]*net.UDPConn, error) {
		return []*net.UDPConn{first}, fmt.Errorf("tftp: one engine shard on %v: %w", local, why)
	}
	// The first socket binds without SO_REUSEPORT, so the kernel picks a
	// port nobody else uses, then opens it to the other shards.
	rc, err := first.SyscallConn()
	if err != nil {
		return one(err)
	}
	if err := setReuseport(rc); err != nil {
		return one(err)
	}
	conns := []*net.UDPConn{first}
	fail := func(why error) ([]*net.UDPConn, error) {
		for _, c := range conns[1:] {
			c.Close()
		}
		return one(why)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error { return setReuseport(rc) }}
	network := "udp"
	if local.Is4() {
		network = "udp4"
	}
	la := first.LocalAddr().(*net.UDPAddr)
	addr := net.JoinHostPort(la.IP.String(), strconv.Itoa(la.Port))
	for len(conns) < n {
		c, err := lc.ListenPacket(context.Background(), network, addr)
		if err != nil {
			return fail(err)
		}
		conns = append(conns, c.(*net.UDPConn))
	}
	prog, err := steerByPort(n)
	if err != nil {
		return fail(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, prog)
	}); err != nil {
		return fail(err)
	} else if serr != nil {
		return fail(fmt.Errorf("attach steering program: %w", serr))
	}
	return conns, nil
}

func setReuseport(rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", serr)
	}
	return nil
}

// skfNetOff is SKF_NET_OFF (linux/filter.h): a load at skfNetOff+k reads
// byte k of the network (IP) header; a SO_REUSEPORT program otherwise
// sees the UDP payload.
const skfNetOff = -0x100000

// steerByPort is a program for SO_ATTACH_REUSEPORT_CBPF that selects the
// socket at index (UDP source port mod n), for IPv4 and IPv6 datagrams.
func steerByPort(n int) (*unix.SockFprog, error) {
	off := func(k int) uint32 { return uint32(int32(skfNetOff + k)) }
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: off(0), Size: 1},                             // A = version<<4 | ...
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},                 // A = IP version
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 0, SkipFalse: 4}, // IPv4? else IPv6
		bpf.LoadMemShift{Off: off(0)},                                      // X = IPv4 header length
		bpf.LoadIndirect{Off: off(0), Size: 2},                             // A = UDP source port
		bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)},
		bpf.RetA{},
		bpf.LoadAbsolute{Off: off(40), Size: 2}, // IPv6: the UDP source port after the fixed header
		bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)},
		bpf.RetA{},
	})
	if err != nil {
		return nil, fmt.Errorf("steering program: %w", err)
	}
	f := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		f[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}, nil
}
