package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"pxed/internal/tftp/lossy"
)

// testFile writes size pseudo-random bytes (fixed seed) to dir/name.
func testFile(t testing.TB, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// startServer serves srv on 127.0.0.1:0 and stops it when the test ends.
func startServer(t testing.TB, srv *Server) netip.AddrPort {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(conn) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func get(t testing.TB, c *Client, addr netip.AddrPort, name string) ([]byte, Transfer, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	tr, err := c.Get(ctx, addr, name, &buf)
	return buf.Bytes(), tr, err
}

func sameBytes(t testing.TB, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes sha256 %x, want %d bytes sha256 %x", len(got), sha256.Sum256(got), len(want), sha256.Sum256(want))
	}
}

func TestServerClientMatrix(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{0, 511, 512, 513, 1 << 20}
	files := map[int][]byte{}
	for _, n := range sizes {
		files[n] = testFile(t, dir, fmt.Sprintf("f%d", n), n)
	}
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	for _, blk := range []int{8, 512, 1468, 65464} {
		for _, win := range []int{1, 4, 16, 64} {
			for _, n := range sizes {
				if blk == 8 && n == 1<<20 && win < 16 {
					continue // 131072 lockstep round trips: covered at windowsize 16 and 64
				}
				t.Run(fmt.Sprintf("blksize=%d/windowsize=%d/size=%d", blk, win, n), func(t *testing.T) {
					t.Parallel()
					c := &Client{Blksize: blk, Windowsize: win, Tsize: true}
					got, tr, err := get(t, c, addr, fmt.Sprintf("f%d", n))
					if err != nil {
						t.Fatal(err)
					}
					sameBytes(t, got, files[n])
					wantWin := min(win, max(1, DefaultWindowBytes/truesize(blk)))
					wantSize := int64(n)
					if n == 0 {
						wantSize = -1 // tsize 0 is not acknowledged (curl refuses it)
					}
					if tr.Blksize != blk || tr.Windowsize != wantWin || tr.Size != wantSize || tr.Bytes != int64(n) {
						t.Fatalf("transfer %+v", tr)
					}
				})
			}
		}
	}
}

// TestRollover crosses block 65535 -> 0 several times (40 MiB at 512 bytes
// is 81921 blocks).
func TestRollover(t *testing.T) {
	if testing.Short() {
		t.Skip("40 MiB transfers: skipped in -short")
	}
	dir := t.TempDir()
	want := testFile(t, dir, "big", 40<<20)
	var mu sync.Mutex
	var done []Transfer
	srv := &Server{Handler: Dir(dir), OnDone: func(tr Transfer) { mu.Lock(); done = append(done, tr); mu.Unlock() }}
	addr := startServer(t, srv)
	for _, win := range []int{1, 16} {
		t.Run(fmt.Sprintf("windowsize=%d", win), func(t *testing.T) {
			got, tr, err := get(t, &Client{Windowsize: win, Tsize: true}, addr, "big")
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, got, want)
			if tr.Size != 40<<20 {
				t.Fatalf("tsize %d", tr.Size)
			}
		})
	}
	waitFor(t, func() bool { return srv.Stats().TransfersOK == 2 })
	mu.Lock()
	defer mu.Unlock()
	for _, tr := range done {
		if tr.Err != nil || tr.Bytes != 40<<20 {
			t.Errorf("server side: %+v", tr)
		}
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLossyTransfers(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 512<<10)
	srv := &Server{Handler: Dir(dir), Timeout: 40 * time.Millisecond, Retries: 20}
	addr := startServer(t, srv)
	var seed uint64
	for _, win := range []int{1, 4, 16, 64} {
		for _, blk := range []int{512, 1468} {
			seed++
			s := seed
			t.Run(fmt.Sprintf("loss=5%%/rtt=2ms/blksize=%d/windowsize=%d", blk, win), func(t *testing.T) {
				t.Parallel()
				var lc *lossy.Conn
				c := &Client{Blksize: blk, Windowsize: win, Tsize: true, Timeout: 40 * time.Millisecond, Retries: 20,
					Dial: func() (net.PacketConn, error) {
						pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
						if err != nil {
							return nil, err
						}
						lc = lossy.New(pc, 0.05, 2*time.Millisecond, s)
						return lc, nil
					}}
				got, tr, err := get(t, c, addr, "f")
				if err != nil {
					t.Fatal(err)
				}
				sameBytes(t, got, want)
				if tr.FirstReply <= 0 || tr.FirstReply > tr.Dur {
					t.Errorf("FirstReply %v of a %v transfer", tr.FirstReply, tr.Dur)
				}
				if lc.Dropped() == 0 {
					t.Fatal("no packet was dropped: the test did not test loss")
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 100)
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := &Server{Handler: func(req Request) (File, int64, error) {
		if req.Filename == "boom" {
			return nil, 0, errors.New("backend down")
		}
		return Dir(dir)(req)
	}}
	addr := startServer(t, srv)
	tests := []struct {
		name string
		pkt  Packet
		code ErrorCode
		msg  string
	}{
		{"RFC 1350 file not found (1)", Packet{Op: OpRRQ, Filename: "nope", Mode: "octet"}, ErrCodeNotFound, ""},
		{"directory refused (2)", Packet{Op: OpRRQ, Filename: "sub", Mode: "octet"}, ErrCodeAccess, ""},
		{"traversal refused (2)", Packet{Op: OpRRQ, Filename: "../x", Mode: "octet"}, ErrCodeAccess, ""},
		{"handler error: undefined (0) with message", Packet{Op: OpRRQ, Filename: "boom", Mode: "octet"}, ErrCodeUndefined, "backend down"},
		{"WRQ refused: read-only (2)", Packet{Op: OpWRQ, Filename: "f", Mode: "octet"}, ErrCodeAccess, "read-only server"},
		{"mail mode refused (4)", Packet{Op: OpRRQ, Filename: "f", Mode: "mail"}, ErrCodeIllegalOperation, ""},
		{"unknown mode refused (4)", Packet{Op: OpRRQ, Filename: "f", Mode: "binary"}, ErrCodeIllegalOperation, ""},
		{"RFC 2348 blksize 7: option negotiation (8)", Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"blksize", "7"}}}, ErrCodeOptionNegotiation, ""},
		{"DATA to the listener: illegal operation (4)", Packet{Op: OpDATA, Block: 1}, ErrCodeIllegalOperation, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t)
			c.send(t, addr, tt.pkt)
			p, _ := c.recv(t)
			if p.Op != OpERROR || p.ErrCode != tt.code || (tt.msg != "" && p.ErrMsg != tt.msg) {
				t.Fatalf("got %+v, want ERROR %d %q", p, tt.code, tt.msg)
			}
		})
	}
	// The client maps the remote codes to the package errors.
	_, _, err := get(t, &Client{}, addr, "nope")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing file: %v, want ErrNotFound", err)
	}
	_, _, err = get(t, &Client{}, addr, "/../../etc/passwd")
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("Get traversal: %v, want ErrAccess", err)
	}
	if st := srv.Stats(); st.Refused < int64(len(tests)-1) {
		t.Fatalf("stats %+v: refusals not counted", st)
	}
}

// rawConn is a hand-driven TFTP peer for protocol corner cases.
type rawConn struct {
	*net.UDPConn
	buf []byte
}

func dialRaw(t testing.TB) *rawConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{UDPConn: c, buf: make([]byte, 70000)}
}

func (c *rawConn) send(t testing.TB, to netip.AddrPort, p Packet) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort(AppendPacket(nil, p), to); err != nil {
		t.Fatal(err)
	}
}

// recv returns the next packet, failing the test after 10 s.
func (c *rawConn) recv(t testing.TB) (Packet, netip.AddrPort) {
	t.Helper()
	p, from, err := c.recvWithin(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return p, from
}

func (c *rawConn) recvWithin(d time.Duration) (Packet, netip.AddrPort, error) {
	c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFromUDPAddrPort(c.buf)
	if err != nil {
		return Packet{}, from, err
	}
	p, err := ParsePacket(c.buf[:n])
	return p, from, err
}

func TestWrongTIDGetsError5(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 2000)
	addr := startServer(t, &Server{Handler: Dir(dir)})
	c := dialRaw(t)
	c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet"})
	p, tid := c.recv(t)
	if p.Op != OpDATA || p.Block != 1 || tid == addr {
		t.Fatalf("got %+v from %v; want DATA 1 from a new port", p, tid)
	}
	intruder := dialRaw(t)
	intruder.send(t, tid, Packet{Op: OpACK, Block: 1})
	if e, _ := intruder.recv(t); e.Op != OpERROR || e.ErrCode != ErrCodeUnknownTID {
		t.Fatalf("intruder got %+v, want ERROR 5", e)
	}
	// The transfer goes on with the real client.
	got := append([]byte(nil), p.Data...)
	for blk := uint16(1); ; blk++ {
		c.send(t, tid, Packet{Op: OpACK, Block: blk})
		if len(p.Data) < 512 {
			break
		}
		p, _ = c.recv(t)
		if p.Op != OpDATA || p.Block != blk+1 {
			t.Fatalf("got %+v, want DATA %d", p, blk+1)
		}
		got = append(got, p.Data...)
	}
	sameBytes(t, got, want)
}

// TestNoSorcerersApprentice: a duplicate ACK never triggers a resend, in
// lockstep and in a window; only a timeout does.
func TestNoSorcerersApprentice(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 100*512)
	addr := startServer(t, &Server{Handler: Dir(dir), Timeout: 5 * time.Second})
	for _, win := range []int{1, 4} {
		t.Run(fmt.Sprintf("windowsize=%d", win), func(t *testing.T) {
			c := dialRaw(t)
			c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"windowsize", fmt.Sprint(win)}}})
			p, tid := c.recv(t)
			if p.Op != OpOACK {
				t.Fatalf("got %+v, want OACK", p)
			}
			c.send(t, tid, Packet{Op: OpACK, Block: 0})
			for i := 1; i <= win; i++ {
				if p, _ = c.recv(t); p.Op != OpDATA || p.Block != uint16(i) {
					t.Fatalf("got %+v, want DATA %d", p, i)
				}
			}
			// ACK the window twice, plus a stale ACK 0.
			c.send(t, tid, Packet{Op: OpACK, Block: uint16(win)})
			c.send(t, tid, Packet{Op: OpACK, Block: uint16(win)})
			c.send(t, tid, Packet{Op: OpACK, Block: 0})
			for i := win + 1; i <= 2*win; i++ {
				if p, _ = c.recv(t); p.Op != OpDATA || p.Block != uint16(i) {
					t.Fatalf("got %+v, want DATA %d", p, i)
				}
			}
			// Nothing more may come before a timeout: a resend caused by
			// the duplicate ACKs would arrive at once; the adaptive
			// retransmission timeout is at least minRTO.
			if p, _, err := c.recvWithin(minRTO * 3 / 4); err == nil {
				t.Fatalf("duplicate ACK caused a resend: %+v", p)
			}
		})
	}
}

// TestWindowGap: RFC 7440 — an ACK for a block inside the window means the
// client saw a gap: the server resends from the next block.
func TestWindowGap(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 100*512)
	addr := startServer(t, &Server{Handler: Dir(dir), Timeout: 5 * time.Second})
	c := dialRaw(t)
	c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"windowsize", "8"}}})
	_, tid := c.recv(t)
	c.send(t, tid, Packet{Op: OpACK, Block: 0})
	for i := 1; i <= 8; i++ {
		c.recv(t)
	}
	c.send(t, tid, Packet{Op: OpACK, Block: 3})
	for i := 4; i <= 11; i++ {
		if p, _ := c.recv(t); p.Op != OpDATA || p.Block != uint16(i) {
			t.Fatalf("got %+v, want DATA %d", p, i)
		}
	}
}

// TestRetransmitAndGiveUp: unacknowledged data is resent on timeout, and the
// transfer fails after Retries.
func TestRetransmitAndGiveUp(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 5000)
	done := make(chan Transfer, 1)
	srv := &Server{Handler: Dir(dir), Timeout: 10 * time.Millisecond, Retries: 3, OnDone: func(tr Transfer) { done <- tr }}
	addr := startServer(t, srv)
	c := dialRaw(t)
	c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet"})
	for i := 0; i < 4; i++ { // first send + 3 retries
		if p, _ := c.recv(t); p.Op != OpDATA || p.Block != 1 {
			t.Fatalf("got %+v, want DATA 1 (send %d)", p, i)
		}
	}
	select {
	case tr := <-done:
		if tr.Err == nil || tr.Aborted {
			t.Fatalf("transfer %+v: want a timeout error", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("transfer did not give up")
	}
	if st := srv.Stats(); st.TransfersFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestClientAbort is the UEFI tsize probe: RRQ with tsize, OACK, then the
// client's ERROR 8. The transfer ends quietly, Aborted.
func TestClientAbort(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 5000)
	done := make(chan Transfer, 1)
	started := make(chan Request, 1)
	srv := &Server{Handler: Dir(dir), OnStart: func(r Request) { started <- r }, OnDone: func(tr Transfer) { done <- tr }}
	addr := startServer(t, srv)
	c := dialRaw(t)
	c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"tsize", "0"}, {"blksize", "1468"}}})
	p, tid := c.recv(t)
	if p.Op != OpOACK || OptionMap(p.Options)["tsize"] != "5000" {
		t.Fatalf("got %+v, want OACK with tsize 5000", p)
	}
	c.send(t, tid, Packet{Op: OpERROR, ErrCode: ErrCodeOptionNegotiation, ErrMsg: "tsize probe"})
	if r := <-started; r.Options["tsize"] != "0" || r.Client.Port() != uint16(c.LocalAddr().(*net.UDPAddr).Port) {
		t.Fatalf("OnStart got %+v", r)
	}
	tr := <-done
	if !tr.Aborted || tr.Err == nil || tr.Size != 5000 {
		t.Fatalf("transfer %+v, want Aborted", tr)
	}
	if st := srv.Stats(); st.TransfersAborted != 1 || st.TransfersFailed != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMalformedDroppedAndCounted(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 3000)
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	c := dialRaw(t)
	for _, b := range []string{"", "\x00", "\x00\x01noterm", "\x00\x09zz", "\x00\x01f\x00octet\x00blksize\x00"} {
		if _, err := c.WriteToUDPAddrPort([]byte(b), addr); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return srv.Stats().Malformed == 5 })
	got, _, err := get(t, &Client{}, addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, want)
}

func TestDuplicateRRQStartsOneTransfer(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 100)
	srv := &Server{Handler: Dir(dir), Timeout: 5 * time.Second}
	addr := startServer(t, srv)
	c := dialRaw(t)
	rrq := Packet{Op: OpRRQ, Filename: "f", Mode: "octet"}
	c.send(t, addr, rrq)
	c.recv(t)
	c.send(t, addr, rrq)
	if p, _, err := c.recvWithin(300 * time.Millisecond); err == nil {
		t.Fatalf("second RRQ from the same port was answered: %+v", p)
	}
	if st := srv.Stats(); st.Active != 1 {
		t.Fatalf("stats %+v, want 1 active transfer", st)
	}
}

func TestCloseEndsTransfers(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 5000)
	done := make(chan Transfer, 1)
	srv := &Server{Handler: Dir(dir), Timeout: time.Minute, OnDone: func(tr Transfer) { done <- tr }}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(conn) }()
	c := dialRaw(t)
	c.send(t, conn.LocalAddr().(*net.UDPAddr).AddrPort(), Packet{Op: OpRRQ, Filename: "f", Mode: "octet"})
	c.recv(t) // DATA 1, never acknowledged
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if tr := <-done; tr.Err == nil {
		t.Fatalf("transfer %+v: want an error after Close", tr)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

func TestShutdownWaits(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 1<<20)
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	errc := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, _, err = get(t, &Client{Blksize: 512}, addr, "f")
		errc <- err
	}()
	waitFor(t, func() bool { return srv.Stats().Bytes > 0 || srv.Stats().Active > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, want)
}

// TestWithoutGSO serves windows where UDP GSO is off (a kernel or route
// without it): the window's packets go out with sendmmsg, over IPv4 and IPv6,
// with a short last batch, and with loss.
func TestWithoutGSO(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{1468*16 - 1, 1468 * 64, 1<<20 + 3}
	files := map[int][]byte{}
	for _, n := range sizes {
		files[n] = testFile(t, dir, fmt.Sprintf("f%d", n), n)
	}
	for _, network := range []string{"udp4", "udp6"} {
		host := map[string]string{"udp4": "127.0.0.1", "udp6": "::1"}[network]
		conn, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Logf("%s: no loopback (%v): skipped", network, err)
			continue
		}
		srv := &Server{Handler: Dir(dir), DisableGSO: true, Timeout: 40 * time.Millisecond, Retries: 20}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(conn) }()
		addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
		for _, win := range []int{4, 16, 64} {
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/windowsize=%d/size=%d", network, win, n), func(t *testing.T) {
					got, tr, err := get(t, &Client{Blksize: 1468, Windowsize: win, Tsize: true}, addr, fmt.Sprintf("f%d", n))
					if err != nil {
						t.Fatal(err)
					}
					sameBytes(t, got, files[n])
					if tr.Windowsize != win {
						t.Fatalf("windowsize %d, want %d", tr.Windowsize, win)
					}
				})
			}
		}
		t.Run(network+"/loss=5%/windowsize=16", func(t *testing.T) {
			var lc *lossy.Conn
			c := &Client{Blksize: 1468, Windowsize: 16, Timeout: 40 * time.Millisecond, Retries: 20,
				Dial: func() (net.PacketConn, error) {
					pc, err := net.ListenPacket(network, net.JoinHostPort(host, "0"))
					if err != nil {
						return nil, err
					}
					lc = lossy.New(pc, 0.05, 2*time.Millisecond, 3)
					return lc, nil
				}}
			got, _, err := get(t, c, addr, fmt.Sprintf("f%d", 1<<20+3))
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, got, files[1<<20+3])
			if lc.Dropped() == 0 {
				t.Fatal("no packet was dropped: the test did not test loss")
			}
		})
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	}
}

// TestAcksCount: Server.Acks moves with every ACK of a unicast transfer,
// lockstep (shared-port engine) and windowed alike: the HTTP server reads
// it to tell transfers making progress from hung ones.
func TestAcksCount(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 100*1024)
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	before := srv.Acks()
	for _, win := range []int{1, 4} {
		got, _, err := get(t, &Client{Blksize: 1024, Windowsize: win}, addr, "f")
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, got, want)
		// 101 blocks (the last one empty) ACKed one by one or a window
		// at a time, and the OACK's ACK 0; the last ACK may still be on
		// its way when Get returns.
		least := int64(101 / win)
		if n := srv.Acks() - before; n < least {
			t.Errorf("windowsize %d: Acks moved by %d, want at least %d", win, n, least)
		}
		before = srv.Acks()
	}
}
