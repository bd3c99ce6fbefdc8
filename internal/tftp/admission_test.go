package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rawFrom is a hand-driven peer bound to a loopback address of its own
// (127.0.0.0/8 is all local on Linux): another client address.
func rawFrom(t testing.TB, ip string) *rawConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{UDPConn: c, buf: make([]byte, 70000)}
}

// download completes a lockstep transfer on c: it waits (10 s at most per
// packet) for the server's DATA 1, then acknowledges each block. It does not
// call t.Fatal, so goroutines may use it.
func (c *rawConn) download() ([]byte, error) {
	p, tid, err := c.recvWithin(10 * time.Second)
	if err != nil {
		return nil, fmt.Errorf("%v: waiting for DATA 1: %w", c.LocalAddr(), err)
	}
	return c.downloadFrom(p, tid)
}

// downloadFrom is download once the first packet p came from tid.
func (c *rawConn) downloadFrom(p Packet, tid netip.AddrPort) ([]byte, error) {
	var got []byte
	want := uint16(1)
	for {
		if p.Op != OpDATA {
			return got, fmt.Errorf("%v: got %+v, want DATA %d", c.LocalAddr(), p, want)
		}
		if p.Block == want { // else a resend of an acknowledged block
			got = append(got, p.Data...)
			if _, err := c.WriteToUDPAddrPort(AppendPacket(nil, Packet{Op: OpACK, Block: want}), tid); err != nil {
				return got, err
			}
			if len(p.Data) < DefaultBlksize {
				return got, nil
			}
			want++
		}
		var err error
		if p, _, err = c.recvWithin(10 * time.Second); err != nil {
			return got, fmt.Errorf("%v: waiting for DATA %d: %w", c.LocalAddr(), want, err)
		}
	}
}

// doneLog records what OnDone reports.
type doneLog struct {
	mu  sync.Mutex
	trs []Transfer
}

func (d *doneLog) add(tr Transfer) { d.mu.Lock(); d.trs = append(d.trs, tr); d.mu.Unlock() }

func (d *doneLog) count(match func(Transfer) bool) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, tr := range d.trs {
		if match(tr) {
			n++
		}
	}
	return n
}

func isBusy(tr Transfer) bool { return errors.Is(tr.Err, ErrBusy) }
func isOK(tr Transfer) bool   { return tr.Err == nil }

// downloadAll runs download on every conn at once and checks the content.
func downloadAll(t *testing.T, want []byte, conns ...*rawConn) {
	t.Helper()
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			got, err := c.download()
			if err == nil && string(got) != string(want) {
				err = fmt.Errorf("%v: got %d bytes, want %d", c.LocalAddr(), len(got), len(want))
			}
			errs <- err
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

var rrqF = Packet{Op: OpRRQ, Filename: "f", Mode: "octet"}

// TestPerClientCap: N+k requests from one address (different ports): N run,
// k wait without a socket, and all complete as the client acknowledges.
func TestPerClientCap(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 1500)
	for _, tc := range []struct {
		name             string
		maxTotal, perCli int
		requests         int
	}{
		{"per-client cap 2, 5 requests", 10, 2, 5},
		{"total cap 3 below per-client cap, 7 requests", 3, 64, 7},
		{"cap 1, 4 requests", 10, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done doneLog
			srv := &Server{Handler: Dir(dir), MaxTransfers: tc.maxTotal, MaxPerClient: tc.perCli,
				Timeout: 5 * time.Second, OnDone: done.add}
			addr := startServer(t, srv)
			conns := make([]*rawConn, tc.requests)
			for i := range conns {
				conns[i] = rawFrom(t, "127.0.0.1")
				conns[i].send(t, addr, rrqF)
			}
			running := min(tc.maxTotal, tc.perCli)
			waitFor(t, func() bool {
				st := srv.Stats()
				return st.Active == int64(running) && st.Queued == int64(tc.requests-running)
			})
			downloadAll(t, want, conns...)
			waitFor(t, func() bool { return srv.Stats().TransfersOK == int64(tc.requests) })
			if st := srv.Stats(); st.PeakActive != int64(running) || st.Queued != 0 || st.Busy != 0 || st.Active != 0 {
				t.Fatalf("stats %+v, want peak %d, nothing queued or refused", st, running)
			}
			if n := done.count(isOK); n != tc.requests {
				t.Fatalf("OnDone saw %d complete transfers, want %d", n, tc.requests)
			}
		})
	}
}

// TestFairness: a slot that frees while a greedy address is at its cap goes
// to another address, even though the greedy one's backlog is older.
func TestFairness(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 1500)
	srv := &Server{Handler: Dir(dir), MaxTransfers: 3, MaxPerClient: 2, Timeout: 5 * time.Second}
	addr := startServer(t, srv)
	greedy := make([]*rawConn, 4)
	for i := range greedy {
		greedy[i] = rawFrom(t, "127.0.0.1")
		greedy[i].send(t, addr, rrqF)
	}
	waitFor(t, func() bool { st := srv.Stats(); return st.Active == 2 && st.Queued == 2 })
	third := rawFrom(t, "127.0.0.3") // takes the last slot
	third.send(t, addr, rrqF)
	waitFor(t, func() bool { return srv.Stats().Active == 3 })
	late := rawFrom(t, "127.0.0.2") // queued behind the greedy backlog
	late.send(t, addr, rrqF)
	waitFor(t, func() bool { return srv.Stats().Queued == 3 })

	downloadAll(t, want, third) // frees a slot while 127.0.0.1 is at its cap
	p, tid := late.recv(t)
	if p.Op != OpDATA || p.Block != 1 {
		t.Fatalf("127.0.0.2 got %+v, want DATA 1", p)
	}
	if st := srv.Stats(); st.Active != 3 || st.Queued != 2 {
		t.Fatalf("stats %+v: want the greedy backlog (2) still queued", st)
	}
	errs := make(chan error, 1)
	go func() {
		got, err := late.downloadFrom(p, tid)
		if err == nil && string(got) != string(want) {
			err = fmt.Errorf("127.0.0.2 got %d bytes", len(got))
		}
		errs <- err
	}()
	downloadAll(t, want, greedy...)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return srv.Stats().TransfersOK == 6 })
}

// TestBusyRefusals: past the queue, a request gets ERROR 0 "server busy" at
// once from the listener port; a queued request that waits past QueueWait
// gets it too. Both reach OnDone with ErrBusy, and the Client's error
// matches ErrBusy.
func TestBusyRefusals(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 1500)
	for _, tc := range []struct {
		name      string
		queueLen  int
		queueWait time.Duration
		msg       string
	}{
		{"queue full: refused at once", 1, time.Hour, msgBusyQueue},
		{"no queue: refused at once", -1, time.Hour, msgBusyQueue},
		{"queue wait over: refused", 1, 50 * time.Millisecond, msgBusyWait},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done doneLog
			srv := &Server{Handler: Dir(dir), MaxTransfers: 1, QueueLen: tc.queueLen, QueueWait: tc.queueWait,
				Timeout: 5 * time.Second, OnDone: done.add}
			addr := startServer(t, srv)
			holder := rawFrom(t, "127.0.0.1") // holds the only slot
			holder.send(t, addr, rrqF)
			waitFor(t, func() bool { return srv.Stats().Active == 1 })
			var queued *rawConn
			if tc.queueLen > 0 {
				queued = rawFrom(t, "127.0.0.2")
				queued.send(t, addr, rrqF)
				if tc.queueWait == time.Hour {
					waitFor(t, func() bool { return srv.Stats().Queued == 1 })
				}
			}
			refused := queued
			if tc.msg == msgBusyQueue {
				refused = rawFrom(t, "127.0.0.3")
				refused.send(t, addr, rrqF)
			}
			p, from := refused.recv(t)
			if p.Op != OpERROR || p.ErrCode != ErrCodeUndefined || p.ErrMsg != tc.msg || from != addr {
				t.Fatalf("got %+v from %v, want ERROR 0 %q from the listener %v", p, from, tc.msg, addr)
			}
			waitFor(t, func() bool { return done.count(isBusy) == 1 })
			if st := srv.Stats(); st.Busy != 1 || st.Refused != 0 {
				t.Fatalf("stats %+v, want Busy 1", st)
			}
			if tc.msg == msgBusyQueue {
				_, _, err := get(t, &Client{Dial: func() (net.PacketConn, error) {
					return net.ListenPacket("udp4", "127.0.0.4:0")
				}}, addr, "f")
				if !errors.Is(err, ErrBusy) {
					t.Fatalf("Client.Get = %v, want ErrBusy", err)
				}
			}
			// The server still serves once the slot frees.
			downloadAll(t, want, holder)
			if tc.queueLen > 0 && tc.msg == msgBusyQueue {
				downloadAll(t, want, queued)
			}
		})
	}
}

// TestQueuedResentRRQ: a client that resends its RRQ while queued is queued
// once and served once.
func TestQueuedResentRRQ(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 700)
	var done doneLog
	srv := &Server{Handler: Dir(dir), MaxTransfers: 1, Timeout: 5 * time.Second, OnDone: done.add}
	addr := startServer(t, srv)
	holder := rawFrom(t, "127.0.0.1")
	holder.send(t, addr, rrqF)
	waitFor(t, func() bool { return srv.Stats().Active == 1 })
	c := rawFrom(t, "127.0.0.2")
	for range 3 {
		c.send(t, addr, rrqF)
	}
	// The listener reads in order: once it counted this malformed datagram,
	// it has handled the three RRQs.
	if _, err := c.WriteToUDPAddrPort([]byte("\x00"), addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return srv.Stats().Malformed == 1 })
	if st := srv.Stats(); st.Queued != 1 {
		t.Fatalf("stats %+v, want 1 queued", st)
	}
	downloadAll(t, want, holder, c)
	waitFor(t, func() bool { return done.count(isOK) == 2 })
	if st := srv.Stats(); st.TransfersOK != 2 || st.PeakActive != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestTimeoutClamp: RFC 2349 — a timeout above MaxTimeout is left out of the
// OACK; alone it gets no OACK at all.
func TestTimeoutClamp(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 1500)
	srv := &Server{Handler: Dir(dir), Timeout: 5 * time.Second}
	addr := startServer(t, srv)
	for i, tc := range []struct {
		name string
		opts []Option
		want Packet
	}{
		{"timeout 255 and blksize: OACK blksize only", []Option{{"timeout", "255"}, {"blksize", "1024"}},
			Packet{Op: OpOACK, Options: []Option{{"blksize", "1024"}}}},
		{"timeout 255 alone: no OACK, DATA 1", []Option{{"timeout", "255"}}, Packet{Op: OpDATA, Block: 1}},
		{"timeout 11 above the default 10s: no OACK", []Option{{"timeout", "11"}}, Packet{Op: OpDATA, Block: 1}},
		{"timeout 10 acknowledged", []Option{{"timeout", "10"}}, Packet{Op: OpOACK, Options: []Option{{"timeout", "10"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := rawFrom(t, "127.0.0.1")
			c.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: tc.opts})
			p, _ := c.recv(t)
			if p.Op != tc.want.Op || p.Block != tc.want.Block || fmt.Sprint(p.Options) != fmt.Sprint(tc.want.Options) {
				t.Fatalf("got %+v, want %+v", p, tc.want)
			}
			if st := srv.Stats(); st.TimeoutClamped != int64(min(i+1, 3)) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestSilentClientReleasesSlot: a client that asks timeout 255 and never
// acknowledges is given up after firstAckWait of the server's timeout (the
// option is not granted), not after the Retries schedule (here over 17
// minutes), and its slot goes to the queued request.
func TestSilentClientReleasesSlot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := testFile(t, dir, "f", 700)
	var done doneLog
	srv := &Server{Handler: Dir(dir), MaxTransfers: 1, Timeout: time.Second, Retries: 10, OnDone: done.add}
	addr := startServer(t, srv)
	silent := rawFrom(t, "127.0.0.1")
	silent.send(t, addr, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"timeout", "255"}}})
	p, _ := silent.recv(t)
	if p.Op != OpDATA {
		t.Fatalf("got %+v, want DATA 1 (timeout 255 not acknowledged)", p)
	}
	waiting := rawFrom(t, "127.0.0.2")
	waiting.send(t, addr, rrqF)
	waitFor(t, func() bool { return srv.Stats().Queued == 1 })
	// The queued client gets its turn once the silent one is given up
	// (5 s here); download waits up to 10 s for DATA 1.
	downloadAll(t, want, waiting)
	failed := func(tr Transfer) bool {
		return errors.Is(tr.Err, errNoAck) && strings.Contains(tr.Err.Error(), "within 5s")
	}
	waitFor(t, func() bool { return done.count(failed) == 1 && done.count(isOK) == 1 })
	if st := srv.Stats(); st.TransfersFailed != 1 || st.Active != 0 || st.TimeoutClamped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSilentAfterFirstACKReleasesSlot: a client that acknowledges block 1
// and then goes silent (holding a slot cheaply) is given up after idleWait
// (8 timeouts: 8 s here), not after the Retries schedule with its backoff
// to 60 s (over 6 minutes with 10 retries), and its slot goes to the queue.
func TestSilentAfterFirstACKReleasesSlot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := testFile(t, dir, "f", 5000)
	var done doneLog
	srv := &Server{Handler: Dir(dir), MaxTransfers: 1, Timeout: time.Second, Retries: 10, OnDone: done.add}
	addr := startServer(t, srv)
	silent := rawFrom(t, "127.0.0.1")
	silent.send(t, addr, rrqF)
	p, from := silent.recv(t)
	if p.Op != OpDATA || p.Block != 1 {
		t.Fatalf("got %+v, want DATA 1", p)
	}
	silent.send(t, from, Packet{Op: OpACK, Block: 1}) // then nothing more
	waiting := rawFrom(t, "127.0.0.2")
	waiting.send(t, addr, rrqF)
	waitFor(t, func() bool { return srv.Stats().Queued == 1 })
	start := time.Now()
	downloadAll(t, want, waiting)
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("the queued client waited %v", took)
	}
	waitFor(t, func() bool {
		return done.count(func(tr Transfer) bool {
			return tr.Err != nil && strings.Contains(tr.Err.Error(), "no ACK for block 2 for")
		}) == 1
	})
}

// TestFloodOneAddress is the attack of issue 13: RRQs from many ports of one
// address asking timeout 255, none acknowledged. The flood holds at most
// MaxPerClient sockets, the rest waits without one, and a client at another
// address downloads meanwhile.
func TestFloodOneAddress(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 100<<10)
	const flood = 300
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	rrq := AppendPacket(nil, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"timeout", "255"}}})
	for range flood {
		c := rawFrom(t, "127.0.0.1")
		if _, err := c.WriteToUDPAddrPort(rrq, addr); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		st := srv.Stats()
		return st.Active == DefaultMaxPerClient && st.Queued == flood-DefaultMaxPerClient
	})
	c := &Client{Blksize: 1456, Tsize: true, Dial: func() (net.PacketConn, error) {
		return net.ListenPacket("udp4", "127.0.0.2:0")
	}}
	got, _, err := get(t, c, addr, "f")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, want)
	if st := srv.Stats(); st.PeakActive > DefaultMaxPerClient+1 || st.TimeoutClamped < DefaultMaxPerClient {
		t.Fatalf("stats %+v: the flood held more than its %d slots", st, DefaultMaxPerClient)
	}
}

// TestStormOneAddress: 1000 machines behind one address (a load generator,
// a NAT) boot at once with the default limits: all complete through the
// queue.
func TestStormOneAddress(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	dir := t.TempDir()
	const size = 64 << 10
	testFile(t, dir, "f", size)
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	if err := storm(addr, n, size, 4); err != nil {
		t.Fatal(err)
	}
	st := srv.Stats()
	t.Logf("%d transfers: %+v", n, st)
	if st.Busy != 0 || st.PeakActive > DefaultMaxPerClient {
		t.Fatalf("stats %+v", st)
	}
}

// storm runs n Client.Gets of "f" (size bytes) at once from 127.0.0.1 at
// blksize 1456 and windowsize win (1 as BIOS PXE ROMs, 4 as EDK II).
func storm(addr netip.AddrPort, n int, size int64, win int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := &Client{Blksize: 1456, Windowsize: win, Tsize: true}
	errs := make(chan error, n)
	for range n {
		go func() {
			tr, err := c.Get(ctx, addr, "f", io.Discard)
			if err == nil && tr.Bytes != size {
				err = fmt.Errorf("%d bytes", tr.Bytes)
			}
			errs <- err
		}()
	}
	var first error
	failed := 0
	for range n {
		if err := <-errs; err != nil {
			failed++
			first = cmpOr(first, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d transfers failed, first: %w", failed, n, first)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// TestCloseRefusesQueued: Close, and Shutdown, answer queued requests
// "server shutting down" and report them to OnDone with ErrServerClosed.
func TestCloseRefusesQueued(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "f", 1500)
	for _, tc := range []struct {
		name string
		stop func(*Server) error
	}{
		{"Close", (*Server).Close},
		{"Shutdown whose context ends", func(s *Server) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the holder never ACKs: do not wait for it
			if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
				return fmt.Errorf("Shutdown = %v, want context.Canceled", err)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var done doneLog
			srv := &Server{Handler: Dir(dir), MaxTransfers: 1, Timeout: 5 * time.Second, OnDone: done.add}
			conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			served := make(chan error, 1)
			go func() { served <- srv.Serve(conn) }()
			holder := rawFrom(t, "127.0.0.1")
			holder.send(t, addr, rrqF)
			queued := rawFrom(t, "127.0.0.2")
			queued.send(t, addr, rrqF)
			waitFor(t, func() bool { st := srv.Stats(); return st.Active == 1 && st.Queued == 1 })
			if err := tc.stop(srv); err != nil {
				t.Fatal(err)
			}
			if err := <-served; !errors.Is(err, ErrServerClosed) {
				t.Fatalf("Serve = %v", err)
			}
			p, from := queued.recv(t)
			if p.Op != OpERROR || p.ErrMsg != msgClosing || from != addr {
				t.Fatalf("queued client got %+v from %v", p, from)
			}
			closed := func(tr Transfer) bool { return errors.Is(tr.Err, ErrServerClosed) }
			if n := done.count(closed); n != 1 {
				t.Fatalf("OnDone: %d queued requests refused with ErrServerClosed, want 1", n)
			}
			if n := done.count(func(Transfer) bool { return true }); n != 2 {
				t.Fatalf("OnDone called %d times, want 2 (transfer and queued request)", n)
			}
			if st := srv.Stats(); st.Queued != 0 || st.Active != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestSocketExhaustion: when no socket can be opened for a transfer
// (EMFILE), the client hears "server busy" from the listener, and the
// listener serves again once descriptors are free. It runs in a child
// process whose file limit it lowers.
func TestSocketExhaustion(t *testing.T) {
	if os.Getenv("TFTP_EMFILE_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSocketExhaustion$", "-test.v")
		cmd.Env = append(os.Environ(), "TFTP_EMFILE_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "--- PASS: TestSocketExhaustion") {
			t.Fatalf("child did not run the test:\n%s", out)
		}
		return
	}
	dir := t.TempDir()
	want := testFile(t, dir, "f", 700)
	var done doneLog
	srv := &Server{Handler: Dir(dir), Timeout: 5 * time.Second, OnDone: done.add}
	addr := startServer(t, srv)
	c := rawFrom(t, "127.0.0.1")
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256}); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	var hog []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		hog = append(hog, f)
	}
	c.send(t, addr, rrqF)
	p, from := c.recv(t)
	if p.Op != OpERROR || p.ErrMsg != msgBusySocket || from != addr {
		t.Fatalf("got %+v from %v, want %q from the listener", p, from, msgBusySocket)
	}
	waitFor(t, func() bool { return done.count(isBusy) == 1 })
	for _, f := range hog[:16] {
		f.Close()
	}
	c.send(t, addr, rrqF)
	got, err := c.download()
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, want)
	if st := srv.Stats(); st.Busy != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, f := range hog[16:] {
		f.Close()
	}
}
