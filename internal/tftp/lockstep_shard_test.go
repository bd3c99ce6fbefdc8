package tftp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestListenShardsSteer: the shards' sockets share one port, and the kernel
// delivers each client's datagrams to the socket of index (client port mod
// shards), over IPv4 and IPv6, so a transfer's ACKs reach the shard that
// owns it.
func TestListenShardsSteer(t *testing.T) {
	for _, local := range []string{"127.0.0.1", "::1"} {
		t.Run(local, func(t *testing.T) {
			const n = 3
			conns, err := listenShards(netip.MustParseAddr(local), n)
			if err != nil {
				t.Fatalf("listenShards: %v", err)
			}
			for _, c := range conns {
				t.Cleanup(func() { c.Close() })
			}
			if len(conns) != n {
				t.Fatalf("%d sockets, want %d", len(conns), n)
			}
			port := conns[0].LocalAddr().(*net.UDPAddr).Port
			for _, c := range conns[1:] {
				if p := c.LocalAddr().(*net.UDPAddr).Port; p != port {
					t.Fatalf("shard sockets on ports %d and %d, want one port", port, p)
				}
			}
			to := netip.AddrPortFrom(netip.MustParseAddr(local), uint16(port))
			for i := range 12 {
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.Addr(), 0)))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				cport := c.LocalAddr().(*net.UDPAddr).AddrPort().Port()
				msg := binary.BigEndian.AppendUint16([]byte("client "), cport)
				if _, err := c.WriteToUDPAddrPort(msg, to); err != nil {
					t.Fatal(err)
				}
				want := conns[int(cport)%n]
				want.SetReadDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 64)
				k, from, err := want.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("datagram %d from port %d: not at shard %d: %v", i, cport, int(cport)%n, err)
				}
				if !bytes.Equal(buf[:k], msg) || from.Port() != cport {
					t.Fatalf("shard %d read %q from %v, want %q from port %d", int(cport)%n, buf[:k], from, msg, cport)
				}
			}
		})
	}
}

// TestEngineShardForward: a datagram that reaches a shard other than the
// one owning its transfer (the kernel could not steer it) is handed over,
// and the owner answers it.
func TestEngineShardForward(t *testing.T) {
	s := &Server{Timeout: time.Second}
	local := netip.MustParseAddr("127.0.0.1")
	g := &engineGroup{}
	for range 2 {
		conn, err := listenTransfer(local)
		if err != nil {
			t.Fatal(err)
		}
		e, err := s.newEngine(local, conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.conn.Close() })
		e.group = g
		g.shards = append(g.shards, e)
	}
	c := dialRaw(t)
	owner := g.owner(c.addrPort())
	other := g.shards[0]
	if other == owner {
		other = g.shards[1]
	}
	data := bytes.Repeat([]byte{9}, 700)
	tr := &Transfer{}
	tt := &transfer{srv: s, local: local, peer: c.addrPort(), req: Packet{Op: OpRRQ, Filename: "f", Mode: "octet"}}
	x := tt.newLsXfer(memFile{bytes.NewReader(data)}, int64(len(data)), Negotiated{Blksize: 512, Windowsize: 1}, tr)
	if !owner.add(x) {
		t.Fatal("engine took no transfer")
	}
	now := time.Now()
	owner.tick(now)
	if p, _ := c.recv(t); p.Op != OpDATA || p.Block != 1 {
		t.Fatalf("first packet %+v, want DATA 1", p)
	}
	other.handle(AppendPacket(nil, Packet{Op: OpACK, Block: 1}), c.addrPort(), now)
	owner.tick(now)
	if p, _ := c.recv(t); p.Op != OpDATA || p.Block != 2 || !bytes.Equal(p.Data, data[512:]) {
		t.Fatalf("after the ACK at the other shard: %+v, want DATA 2", p)
	}
	other.handle(AppendPacket(nil, Packet{Op: OpACK, Block: 2}), c.addrPort(), now)
	owner.tick(now)
	select {
	case err := <-x.done:
		if err != nil || tr.Bytes != int64(len(data)) {
			t.Fatalf("transfer ended with %v, %d bytes; want done, %d", err, tr.Bytes, len(data))
		}
	default:
		t.Fatal("the last ACK, handed over, did not end the transfer")
	}
}
