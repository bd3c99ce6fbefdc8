package tftp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// lockstepScript is a scripted TFTP server for client tests: it answers
// one RRQ on ln from tid (a new port) with data in 512-byte blocks, lockstep.
type lockstepScript struct {
	ln, tid *rawConn
	data    []byte
	// before runs before DATA block n is sent (an intruder, say).
	before func(client netip.AddrPort, block uint16)
	// ignoreFirstAck lists ACKs the server ignores the first time (lost),
	// so the client must resend them after its timeout.
	ignoreFirstAck map[uint16]bool
}

// run serves the transfer and returns its error on the channel.
func (s *lockstepScript) run() <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.serve() }()
	return done
}

func (s *lockstepScript) serve() error {
	p, client, err := s.ln.recvWithin(10 * time.Second)
	if err != nil || p.Op != OpRRQ {
		return errors.Join(errors.New("no RRQ"), err)
	}
	ignored := map[uint16]bool{}
	for block := uint16(1); ; block++ {
		off := int(block-1) * DefaultBlksize
		chunk := s.data[off:min(off+DefaultBlksize, len(s.data))]
		if s.before != nil {
			s.before(client, block)
		}
		if _, err := s.tid.WriteToUDPAddrPort(AppendPacket(nil, Packet{Op: OpDATA, Block: block, Data: chunk}), client); err != nil {
			return err
		}
		for {
			a, from, err := s.tid.recvWithin(10 * time.Second)
			if err != nil {
				return err
			}
			if from != client || a.Op != OpACK || a.Block != block {
				continue
			}
			if s.ignoreFirstAck[block] && !ignored[block] {
				ignored[block] = true
				continue
			}
			break
		}
		if len(chunk) < DefaultBlksize {
			return nil
		}
	}
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// TestClientConnectIgnoresOtherSources: a DATA packet from another port
// than the server's TID never becomes part of the file, with the socket
// connected (the kernel drops it) or not (the client answers ERROR 5,
// RFC 1350 §4).
func TestClientConnectIgnoresOtherSources(t *testing.T) {
	for _, connect := range []bool{false, true} {
		t.Run(map[bool]string{false: "unconnected", true: "connected"}[connect], func(t *testing.T) {
			want := testData(3*DefaultBlksize + 100)
			intruder := dialRaw(t)
			s := &lockstepScript{ln: dialRaw(t), tid: dialRaw(t), data: want,
				before: func(client netip.AddrPort, block uint16) {
					if block == 2 {
						intruder.send(t, client, Packet{Op: OpDATA, Block: 2, Data: bytes.Repeat([]byte("X"), DefaultBlksize)})
					}
				}}
			done := s.run()
			c := &Client{Connect: connect}
			got, tr, err := get(t, c, netip.MustParseAddrPort(s.ln.LocalAddr().String()), "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
			sameBytes(t, got, want)
			if tr.Resent != 0 {
				t.Errorf("resent %d packets, want 0", tr.Resent)
			}
			if !connect {
				if e, _ := intruder.recv(t); e.Op != OpERROR || e.ErrCode != ErrCodeUnknownTID {
					t.Errorf("intruder got %+v, want ERROR 5", e)
				}
			}
		})
	}
}

// TestClientResendsAfterTimeout: a lost ACK is sent again once the
// retransmit timeout passes, connected or not, and counted.
func TestClientResendsAfterTimeout(t *testing.T) {
	for _, connect := range []bool{false, true} {
		t.Run(map[bool]string{false: "unconnected", true: "connected"}[connect], func(t *testing.T) {
			want := testData(4*DefaultBlksize + 1)
			s := &lockstepScript{ln: dialRaw(t), tid: dialRaw(t), data: want, ignoreFirstAck: map[uint16]bool{1: true, 3: true}}
			done := s.run()
			c := &Client{Connect: connect, Timeout: 20 * time.Millisecond}
			got, tr, err := get(t, c, netip.MustParseAddrPort(s.ln.LocalAddr().String()), "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
			sameBytes(t, got, want)
			if tr.Resent < 2 {
				t.Errorf("resent %d packets, want at least the 2 ACKs the server ignored", tr.Resent)
			}
		})
	}
}

// deadlineCounter counts SetReadDeadline calls on a transfer's socket.
type deadlineCounter struct {
	net.PacketConn
	n *atomic.Int64
}

func (d deadlineCounter) SetReadDeadline(t time.Time) error {
	d.n.Add(1)
	return d.PacketConn.SetReadDeadline(t)
}

// TestClientDeadlineOncePerTimeout: the retransmit timer is not re-armed
// for every block (each re-arm is a runtime timer update); a lockstep
// transfer of 600 blocks moves it a handful of times, and nothing is resent.
func TestClientDeadlineOncePerTimeout(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 600*DefaultBlksize+3)
	addr := startServer(t, &Server{Handler: Dir(dir)})
	var n atomic.Int64
	c := &Client{Dial: func() (net.PacketConn, error) {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{})
		return deadlineCounter{pc, &n}, err
	}}
	got, tr, err := get(t, c, addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, want)
	if tr.Resent != 0 {
		t.Fatalf("resent %d packets", tr.Resent)
	}
	// One arm at the start, one more for each second the transfer took
	// (the deadline fires early and moves on), one from the final dally.
	if calls := n.Load(); calls > 2+int64(tr.Dur/time.Second)+1 {
		t.Errorf("%d SetReadDeadline calls for 601 blocks in %v; want one per timeout, not per block", calls, tr.Dur)
	}
}

// TestClientCancelWhileWaiting: a canceled context ends a transfer that
// waits for a server that went quiet, long before its timeout.
func TestClientCancelWhileWaiting(t *testing.T) {
	for _, connect := range []bool{false, true} {
		t.Run(map[bool]string{false: "unconnected", true: "connected"}[connect], func(t *testing.T) {
			ln, tid := dialRaw(t), dialRaw(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				// DATA 1 from the TID, then silence; cancel once the ACK came.
				if p, client, err := ln.recvWithin(10 * time.Second); err == nil && p.Op == OpRRQ {
					tid.WriteToUDPAddrPort(AppendPacket(nil, Packet{Op: OpDATA, Block: 1, Data: testData(DefaultBlksize)}), client)
					tid.recvWithin(10 * time.Second)
				}
				cancel()
			}()
			c := &Client{Connect: connect, Timeout: time.Hour}
			_, err := c.Get(ctx, netip.MustParseAddrPort(ln.LocalAddr().String()), "f", &bytes.Buffer{})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
		})
	}
}
