package udploop

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// BatchConn reads several queued packets in one ReadBatch with their
// senders, and its WriteBatch delivers each reply to its address, over
// both families (loopback).
func TestBatchConnLoopback(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1:0"}, {"udp6", "[::1]:0"}} {
		t.Run(tc.network, func(t *testing.T) {
			srv, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", tc.network, err)
			}
			defer srv.Close()
			cli, err := net.ListenPacket(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			bc, err := BatchConn(srv)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"one", "two", "three"} {
				if _, err := cli.WriteTo([]byte(p), srv.LocalAddr()); err != nil {
					t.Fatal(err)
				}
			}
			ms := make([]ipv4.Message, ReadBatch)
			for i := range ms {
				ms[i].Buffers = [][]byte{make([]byte, MaxPacket)}
			}
			var got []string
			var from net.Addr
			for len(got) < 3 {
				n, err := bc.ReadBatch(ms, 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms[:n] {
					got = append(got, string(m.Buffers[0][:m.N]))
					from = m.Addr
				}
			}
			if got[0] != "one" || got[1] != "two" || got[2] != "three" {
				t.Fatalf("read %q, want one, two, three", got)
			}
			want := cli.LocalAddr().(*net.UDPAddr).AddrPort()
			if ap := from.(*net.UDPAddr).AddrPort(); netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) != want {
				t.Fatalf("sender %v, want %v", from, want)
			}
			out := []ipv4.Message{
				{Buffers: [][]byte{[]byte("re one")}, Addr: net.UDPAddrFromAddrPort(want)},
				{Buffers: [][]byte{[]byte("re two")}, Addr: net.UDPAddrFromAddrPort(want)},
			}
			if err := bc.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if n, err := bc.WriteBatch(out, 0); n != 2 || err != nil {
				t.Fatalf("WriteBatch = %d, %v; want 2, nil", n, err)
			}
			buf := make([]byte, 64)
			_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
			for _, w := range []string{"re one", "re two"} {
				n, _, err := cli.ReadFrom(buf)
				if err != nil || string(buf[:n]) != w {
					t.Fatalf("client read %q, %v; want %q", buf[:n], err, w)
				}
			}
		})
	}
}

// A read on a closed BatchConn ends with net.ErrClosed (what Loop.Serve
// stops on), and so does one that waits when the socket is closed.
func TestBatchConnClosed(t *testing.T) {
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Skipf("no loopback: %v", err)
	}
	bc, err := BatchConn(srv)
	if err != nil {
		t.Fatal(err)
	}
	ms := []ipv4.Message{{Buffers: [][]byte{make([]byte, 64)}}}
	done := make(chan error, 1)
	go func() {
		_, err := bc.ReadBatch(ms, 0)
		done <- err
	}()
	srv.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadBatch on a closed socket: %v, want net.ErrClosed", err)
	}
	if _, err := BatchConn(nil); err == nil {
		t.Fatal("BatchConn(nil) did not fail")
	}
}
