package tftp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pxed/internal/tftp/lossy"
)

// TestSharedPortLockstep: lockstep transfers of one local address share one
// server port (the engine, lockstep.go), each client still gets its own
// file, an ERROR from one client ends only its transfer, and a windowed
// transfer keeps a port of its own, whether the engine runs one shard or
// several (one port for all shards). With DisableSharedPort every transfer
// has its own port, as RFC 1350 §4 describes.
func TestSharedPortLockstep(t *testing.T) {
	dir := t.TempDir()
	a := testFile(t, dir, "a", 3000)
	b := testFile(t, dir, "b", 5*512) // a multiple of 512: an empty last block
	testFile(t, dir, "c", 4000)
	for _, tc := range []struct {
		shared bool
		shards int
	}{{true, 1}, {true, 3}, {false, 0}} {
		shared := tc.shared
		t.Run(fmt.Sprintf("shared=%v/shards=%d", shared, tc.shards), func(t *testing.T) {
			var mu sync.Mutex
			var done []Transfer
			addr := startServer(t, &Server{Handler: Dir(dir), DisableSharedPort: !shared, EngineShards: tc.shards, OnDone: func(tr Transfer) {
				mu.Lock()
				done = append(done, tr)
				mu.Unlock()
			}})
			ca, cb, cc, cw := dialRaw(t), dialRaw(t), dialRaw(t), dialRaw(t)
			ca.send(t, addr, Packet{Op: OpRRQ, Filename: "a", Mode: "octet"})
			cb.send(t, addr, Packet{Op: OpRRQ, Filename: "b", Mode: "octet", Options: []Option{{"blksize", "512"}}})
			cc.send(t, addr, Packet{Op: OpRRQ, Filename: "c", Mode: "octet"})
			cw.send(t, addr, Packet{Op: OpRRQ, Filename: "c", Mode: "octet", Options: []Option{{"windowsize", "4"}}})
			pa, ta := ca.recv(t)
			pb, tb := cb.recv(t)
			pc, tc := cc.recv(t)
			pw, tw := cw.recv(t)
			if pa.Op != OpDATA || pa.Block != 1 || pb.Op != OpOACK || pc.Op != OpDATA || pw.Op != OpOACK {
				t.Fatalf("first packets %v %v %v %v, want DATA 1, OACK, DATA 1, OACK", pa.Op, pb.Op, pc.Op, pw.Op)
			}
			for _, tid := range []netip.AddrPort{ta, tb, tc, tw} {
				if tid == addr {
					t.Fatalf("a transfer answered from the listener's port %v", addr)
				}
			}
			if got := ta == tb && tb == tc; got != shared {
				t.Fatalf("lockstep transfers from %v, %v, %v: one port = %v, want %v", ta, tb, tc, got, shared)
			}
			if tw == ta {
				t.Fatalf("the windowed transfer shares the lockstep port %v", ta)
			}
			// c aborts; a and b go on, interleaved block by block.
			cc.send(t, tc, Packet{Op: OpERROR, ErrCode: ErrCodeUndefined, ErrMsg: "enough"})
			cb.send(t, tb, Packet{Op: OpACK, Block: 0})
			pb, _ = cb.recv(t)
			gotA, gotB := append([]byte(nil), pa.Data...), append([]byte(nil), pb.Data...)
			doneA, doneB := false, false
			for blk := uint16(1); !doneA || !doneB; blk++ {
				if !doneA {
					ca.send(t, ta, Packet{Op: OpACK, Block: blk})
					if doneA = len(pa.Data) < 512; !doneA {
						if pa, _ = ca.recv(t); pa.Op != OpDATA || pa.Block != blk+1 {
							t.Fatalf("a: got %+v, want DATA %d", pa, blk+1)
						}
						gotA = append(gotA, pa.Data...)
					}
				}
				if !doneB {
					cb.send(t, tb, Packet{Op: OpACK, Block: blk})
					if doneB = len(pb.Data) < 512; !doneB {
						if pb, _ = cb.recv(t); pb.Op != OpDATA || pb.Block != blk+1 {
							t.Fatalf("b: got %+v, want DATA %d", pb, blk+1)
						}
						gotB = append(gotB, pb.Data...)
					}
				}
			}
			sameBytes(t, gotA, a)
			sameBytes(t, gotB, b)
			cw.send(t, tw, Packet{Op: OpERROR, ErrCode: ErrCodeUndefined, ErrMsg: "enough"})
			if shared {
				// After its transfer the client's ACKs are unknown to the
				// port, which lives on (a transfer's own socket closes).
				ca.send(t, ta, Packet{Op: OpACK, Block: 1})
				if p, _ := ca.recv(t); p.Op != OpERROR || p.ErrCode != ErrCodeUnknownTID {
					t.Fatalf("ACK after the transfer got %+v, want ERROR 5", p)
				}
			}
			waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(done) == 4 })
			mu.Lock()
			defer mu.Unlock()
			for _, tr := range done {
				switch tr.Client {
				case ca.addrPort(), cb.addrPort():
					if tr.Err != nil || tr.Aborted {
						t.Errorf("%s: err %v aborted %v, want done", tr.Filename, tr.Err, tr.Aborted)
					}
				case cc.addrPort(), cw.addrPort():
					var pe *PeerError
					if !tr.Aborted || !errors.As(tr.Err, &pe) || pe.Message != "enough" {
						t.Errorf("%s from %v: err %v aborted %v, want aborted by the client", tr.Filename, tr.Client, tr.Err, tr.Aborted)
					}
				}
			}
		})
	}
}

// TestSharedPortResendsAndGivesUp: in the engine a lost DATA block is sent
// again after the timeout, and a client that stops acknowledging is given
// up after Retries timeouts with the error of a transfer on its own socket.
func TestSharedPortResendsAndGivesUp(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 3000)
	var mu sync.Mutex
	var done []Transfer
	addr := startServer(t, &Server{Handler: Dir(dir), Timeout: 300 * time.Millisecond, Retries: 2, OnDone: func(tr Transfer) {
		mu.Lock()
		done = append(done, tr)
		mu.Unlock()
	}})
	c := dialRaw(t)
	c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet"})
	p, tid := c.recv(t)
	if p.Op != OpDATA || p.Block != 1 {
		t.Fatalf("got %+v, want DATA 1", p)
	}
	c.send(t, tid, Packet{Op: OpACK, Block: 1})
	p, _ = c.recv(t)
	// No ACK for block 2: it comes again, and again, then the transfer ends.
	for i := 0; i < 2; i++ {
		if q, _ := c.recv(t); q.Op != OpDATA || q.Block != 2 || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("resend %d: got %+v, want DATA 2 again", i+1, q)
		}
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(done) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if tr := done[0]; tr.Err == nil || tr.Aborted || tr.Resent < 2 || tr.Bytes != 512 {
		t.Fatalf("transfer ended with err %v aborted %v resent %d bytes %d; want a timeout after 2+ resends and 512 bytes acknowledged",
			tr.Err, tr.Aborted, tr.Resent, tr.Bytes)
	}
}

func (c *rawConn) addrPort() netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// TestEngineTimeouts drives one engine by hand, tick by tick at chosen
// times (no loop goroutine, no sleeps): the first block goes out at once,
// again only when its timeout has passed, and a client that never
// acknowledges is given up at firstAckWait with errNoAck.
func TestEngineTimeouts(t *testing.T) {
	s := &Server{Timeout: time.Second}
	conn, err := listenTransfer(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.newEngine(netip.MustParseAddr("127.0.0.1"), conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.conn.Close() })
	c := dialRaw(t)
	data := bytes.Repeat([]byte{7}, 1000)
	tr := &Transfer{}
	tt := &transfer{srv: s, local: netip.MustParseAddr("127.0.0.1"), peer: c.addrPort(),
		req: Packet{Op: OpRRQ, Filename: "f", Mode: "octet"}}
	x := tt.newLsXfer(memFile{bytes.NewReader(data)}, int64(len(data)), Negotiated{Blksize: 512, Windowsize: 1}, tr)
	if !e.add(x) {
		t.Fatal("engine took no transfer")
	}
	t0 := time.Now()
	e.tick(t0)
	if p, _ := c.recv(t); p.Op != OpDATA || p.Block != 1 || !bytes.Equal(p.Data, data[:512]) {
		t.Fatalf("first packet %+v, want DATA 1", p)
	}
	e.tick(t0.Add(time.Second - 2*engineScan)) // a scan, before the timeout
	if tr.Resent != 0 || len(e.out) != 0 {
		t.Fatalf("before its timeout: resent %d, queued %d; want nothing", tr.Resent, len(e.out))
	}
	e.tick(t0.Add(time.Second))
	if p, _ := c.recv(t); p.Op != OpDATA || p.Block != 1 || tr.Resent != 1 {
		t.Fatalf("at the timeout: %+v (resent %d), want DATA 1 again", p, tr.Resent)
	}
	e.tick(t0.Add(firstAckWait(time.Second) - 2*engineScan))
	select {
	case err := <-x.done:
		t.Fatalf("ended before firstAckWait: %v", err)
	default:
	}
	e.tick(t0.Add(firstAckWait(time.Second)))
	select {
	case err := <-x.done:
		if !errors.Is(err, errNoAck) {
			t.Fatalf("ended with %v, want errNoAck", err)
		}
	default:
		t.Fatal("still running at firstAckWait")
	}
	if len(e.live) != 0 || len(e.xs) != 0 {
		t.Fatalf("engine still holds %d/%d transfers", len(e.live), len(e.xs))
	}
}

// TestEngineReadsAhead: a lockstep transfer of a file read from disk
// (CacheMax < 0) reads engineAhead bytes of it at a time and sends each
// block from there: files ending just before, at and after a read's end,
// and across several reads, come whole, lossless and with blocks lost and
// resent (a resent block, and the ACK of a block of the previous read,
// cross a read's boundary).
func TestEngineReadsAhead(t *testing.T) {
	dir := t.TempDir()
	for _, blk := range []int{512, 1468} {
		n := engineAhead / blk * blk // the bytes of one read
		for _, size := range []int{n - 1, n, n + 1, 3*n + 7} {
			name := fmt.Sprintf("f%d-%d", blk, size)
			want := testFile(t, dir, name, size)
			for _, loss := range []float64{0, 0.05} {
				t.Run(fmt.Sprintf("%s/loss=%v", name, loss), func(t *testing.T) {
					srv := &Server{Handler: Dir(dir), CacheMax: -1, Timeout: 40 * time.Millisecond, Retries: 20}
					addr := startServer(t, srv)
					var lc *lossy.Conn
					c := &Client{Blksize: blk, Tsize: true, Timeout: 40 * time.Millisecond, Retries: 20,
						Dial: func() (net.PacketConn, error) {
							pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
							if err != nil {
								return nil, err
							}
							lc = lossy.New(pc, loss, 0, uint64(size))
							return lc, nil
						}}
					got, tr, err := get(t, c, addr, name)
					if err != nil {
						t.Fatal(err)
					}
					sameBytes(t, got, want)
					if tr.Windowsize != 1 {
						t.Fatalf("windowsize %d, want lockstep", tr.Windowsize)
					}
					if loss > 0 && lc.Dropped() == 0 {
						t.Fatal("no packet was dropped: the test did not test loss")
					}
				})
			}
		}
	}
}
