package tftp

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pxed/internal/lab"
)

// Multicast TFTP with real clients (Debian atftp: RFC 2090 with --option
// multicast, PXE MTFTP with --mget) in network namespaces. The server must
// run inside the lab's namespace, and it opens a socket per session, so the
// test binary runs itself there (TestMulticastLabChild) with the scenario in
// the environment; the parent builds the lab and checks the child passed.

const mcLabEnv = "PXED_MCLAB"

// mcLab is what the parent tells the child.
type mcLab struct {
	Scenario string
	Hosts    []string // client namespaces, addresses 192.0.2.11, .12, ...
	Dir      string   // served directory (file "f") and client outputs
}

var mcServerAddr = netip.MustParseAddr("192.0.2.1")

func TestMulticastLab(t *testing.T) {
	if testing.Short() {
		t.Skip("namespaces and atftp: not in -short")
	}
	lookPath(t, "atftp", "atftp")
	n := lab.NewNet(t)
	var hosts []string
	for i := range 6 {
		h := n.AddHost(t, fmt.Sprintf("c%d", i), netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 11+i)))
		// A route for the multicast groups, so clients can join them.
		if out, err := lab.Run(t, h.NS, "ip", "route", "add", "224.0.0.0/4", "dev", h.Iface); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		hosts = append(hosts, h.NS)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{"rfc2090", "late", "master-leaves", "never-acks", "pxe"} {
		t.Run(sc, func(t *testing.T) {
			dir := t.TempDir()
			os.Chmod(dir, 0o755)
			cfg, _ := json.Marshal(mcLab{Scenario: sc, Hosts: hosts, Dir: dir})
			p := lab.Start(t, n.NS(), "env", mcLabEnv+"="+string(cfg), self,
				"-test.run=^TestMulticastLabChild$", "-test.v", "-test.count=1")
			select {
			case <-p.Done():
			case <-time.After(4 * time.Minute):
				t.Fatalf("child did not finish in 4 minutes:\n%s", p.Output())
			}
			out := p.Output()
			if p.Err() != nil || !strings.Contains(out, "--- PASS: TestMulticastLabChild") {
				t.Fatalf("child failed (%v):\n%s", p.Err(), out)
			}
			t.Logf("child:\n%s", lastLines(out, 12))
		})
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// mcRecorder records what the server reports.
type mcRecorder struct {
	mu       sync.Mutex
	joined   []netip.AddrPort
	done     []Transfer
	sessions []MulticastSession
}

func (r *mcRecorder) start(req Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.joined = append(r.joined, req.Client)
}

func (r *mcRecorder) finished(tr Transfer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, tr)
}

func (r *mcRecorder) session(s MulticastSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions = append(r.sessions, s)
}

func (r *mcRecorder) counts() (joined, done, sessions int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.joined), len(r.done), len(r.sessions)
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func fdTargets() []string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var l []string
	for _, e := range ents {
		if tgt, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			l = append(l, tgt)
		}
	}
	return l
}

func TestMulticastLabChild(t *testing.T) {
	env := os.Getenv(mcLabEnv)
	if env == "" {
		t.Skip("run by TestMulticastLab inside its namespace")
	}
	var cfg mcLab
	if err := json.Unmarshal([]byte(env), &cfg); err != nil {
		t.Fatal(err)
	}
	size := 3<<20 + 123
	want := sha256.Sum256(testFile(t, cfg.Dir, "f", size))
	rec := &mcRecorder{}
	m := &Multicast{Groups: netip.MustParsePrefix("239.255.70.0/28"), Tries: 3, OnSession: rec.session,
		PXEFiles: func(name string) bool { return name == "f" }}
	srv := &Server{Handler: Dir(cfg.Dir), Multicast: m, OnStart: rec.start, OnDone: rec.finished,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	fds0, gor0 := openFDs(t), runtime.NumGoroutine()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: mcServerAddr.AsSlice(), Port: 69})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 2)
	go func() { served <- srv.Serve(conn) }()
	_, sport := m.pxePorts()
	mconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: mcServerAddr.AsSlice(), Port: int(sport)})
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- srv.ServeMTFTP(mconn) }()

	type client struct {
		p   *lab.Proc
		out string
	}
	startClient := func(i int, pxe bool) client {
		out := filepath.Join(cfg.Dir, fmt.Sprintf("out%d", i))
		args := []string{"-g", "-r", "f", "-l", out, "--option", "multicast", "--option", "blksize 1428",
			"--option", "timeout 1", mcServerAddr.String(), "69"}
		if pxe {
			g, cp, sp, ok := m.PXEParams("f")
			if !ok {
				t.Fatal("no PXE MTFTP group for f")
			}
			args = []string{"--mget", "-r", "f", "-l", out, "--mtftp", "client-port " + strconv.Itoa(int(cp)),
				"--mtftp", "mcast-ip " + g.String(), "--mtftp", "listen-delay 1", "--mtftp", "timeout-delay 1",
				mcServerAddr.String(), strconv.Itoa(int(sp))}
		}
		return client{p: lab.Start(t, cfg.Hosts[i], "atftp", args...), out: out}
	}
	waitAll := func(cs []client) {
		for i, c := range cs {
			select {
			case <-c.p.Done():
			case <-time.After(3 * time.Minute):
				t.Fatalf("client %d still running after 3 minutes:\n%s", i, lastLines(c.p.Output(), 20))
			}
		}
	}
	checkSame := func(cs []client) {
		for i, c := range cs {
			if c.p.Err() != nil {
				t.Fatalf("client %d: atftp: %v\n%s", i, c.p.Err(), lastLines(c.p.Output(), 20))
			}
			b, err := os.ReadFile(c.out)
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(b); got != want {
				t.Fatalf("client %d: %d bytes, sha256 %x, want %d bytes %x", i, len(b), got, size, want)
			}
		}
	}
	bytesSent := func() int64 { return srv.Stats().MulticastBytes }

	switch cfg.Scenario {
	case "rfc2090": // all clients at once: one stream
		var cs []client
		for i := range cfg.Hosts {
			cs = append(cs, startClient(i, false))
		}
		waitAll(cs)
		checkSame(cs)
		if b := bytesSent(); b >= int64(len(cs))*int64(size) {
			t.Errorf("server sent %d bytes for %d clients of %d: no better than unicast", b, len(cs), size)
		}
		t.Logf("%d clients, file %d bytes, server sent %d bytes (%.2fx)", len(cs), size, bytesSent(), float64(bytesSent())/float64(size))
	case "late": // half the clients join after a quarter of the stream
		// The master is this test's own client, so that the stream stops
		// at a quarter of the file until the late joiners are in (on an
		// idle machine atftp clients fetch the whole file in 80 ms).
		m0 := ownMaster(t, 5)
		var cs []client
		for i := range 3 {
			cs = append(cs, startClient(i, false))
		}
		lab.WaitFor(t, time.Minute, "the first clients to join", func() bool { j, _, _ := rec.counts(); return j == 4 })
		last := size/1428 + 1
		m0.ack(0, last/4, bytesSent)
		lab.WaitFor(t, time.Minute, "a quarter of the file sent", func() bool { return bytesSent() > int64(size/4) })
		for i := 3; i < len(cfg.Hosts); i++ {
			cs = append(cs, startClient(i, false))
		}
		lab.WaitFor(t, time.Minute, "the late clients to join", func() bool { j, _, _ := rec.counts(); return j == len(cs)+1 })
		m0.ack(last/4+1, last-1, bytesSent)
		m0.ack(last, last, func() int64 { return int64(last) * 1428 }) // the last ACK: no block follows
		m0.close()
		waitAll(cs)
		checkSame(cs)
		if j, _, s := rec.counts(); s != 1 || j != len(cs)+1 {
			t.Errorf("%d sessions, %d joins; want one session joined by all %d clients", s, j, len(cs)+1)
		}
		t.Logf("late joiners: server sent %d bytes (%.2fx the file)", bytesSent(), float64(bytesSent())/float64(size))
	case "master-leaves": // the master client goes silent mid-transfer
		// The master is this test's own client (see "late"): it stops
		// acknowledging at a quarter of the file, without a word, as a
		// machine that lost power.
		m0 := ownMaster(t, 1)
		var cs []client
		for i := range 4 {
			cs = append(cs, startClient(i, false))
		}
		lab.WaitFor(t, time.Minute, "the clients to join", func() bool { j, _, _ := rec.counts(); return j == len(cs)+1 })
		m0.ack(0, (size/1428+1)/4, bytesSent)
		lab.WaitFor(t, time.Minute, "a quarter of the file sent", func() bool { return bytesSent() > int64(size/4) })
		first := m0.addr()
		m0.close()
		waitAll(cs)
		checkSame(cs)
		lab.WaitFor(t, time.Minute, "the master's transfer reported", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, tr := range rec.done {
				if tr.Client == first {
					return true
				}
			}
			return false
		})
		rec.mu.Lock()
		for _, tr := range rec.done {
			if tr.Client == first && (tr.Err == nil || !errors.Is(tr.Err, errNoAck)) {
				t.Errorf("silent master %v: reported %v, want a no-ACK failure", first, tr.Err)
			}
		}
		rec.mu.Unlock()
	case "never-acks": // a client that asks and then never acknowledges
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: mcServerAddr.AsSlice()})
		if err != nil {
			t.Fatal(err)
		}
		rrq := AppendPacket(nil, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{OptMulticast, ""}}})
		if _, err := c.WriteToUDPAddrPort(rrq, netip.AddrPortFrom(mcServerAddr, 69)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no OACK: %v", err)
		}
		p, err := ParsePacket(buf[:n])
		if err != nil || p.Op != OpOACK {
			t.Fatalf("got %v %+v, want OACK", err, p)
		}
		g, master, err := ParseMulticastOption(OptionMap(p.Options)[OptMulticast])
		if err != nil || !master {
			t.Fatalf("OACK multicast option %q: %v, master %v", OptionMap(p.Options)[OptMulticast], err, master)
		}
		t.Logf("OACK names group %v, mc=1; not acknowledging", g)
		c.Close()
		lab.WaitFor(t, time.Minute, "the session to end", func() bool { return srv.Stats().MulticastActive == 0 })
		rec.mu.Lock()
		if len(rec.done) != 1 || !errors.Is(rec.done[0].Err, errNoAck) {
			t.Errorf("reported %+v, want one no-ACK failure", rec.done)
		}
		rec.mu.Unlock()
	case "pxe": // PXE MTFTP: clients listen, one asks, all get the file
		var cs []client
		for i := range cfg.Hosts {
			cs = append(cs, startClient(i, true))
		}
		waitAll(cs)
		checkSame(cs)
		_, _, s := rec.counts()
		t.Logf("PXE MTFTP: %d clients, %d sessions, server sent %d bytes (%.2fx the file)", len(cs), s, bytesSent(),
			float64(bytesSent())/float64(size))
	default:
		t.Fatalf("unknown scenario %q", cfg.Scenario)
	}

	// Nothing leaks: sessions, their sockets, files and goroutines are gone.
	lab.WaitFor(t, time.Minute, "no multicast session left", func() bool { return srv.Stats().MulticastActive == 0 })
	srv.Close()
	for range 2 {
		<-served
	}
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > gor0 || openFDs(t) > fds0+1 { // +1: Dir's root, opened once
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d (were %d), descriptors %d (were %d + Dir's root): %v\n%s", runtime.NumGoroutine(), gor0,
				openFDs(t), fds0, fdTargets(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := srv.Stats()
	t.Logf("stats: sessions %d, ok %d, failed %d, aborted %d, multicast bytes %d", st.MulticastSessions, st.TransfersOK,
		st.TransfersFailed, st.TransfersAborted, st.MulticastBytes)
}

// master is a multicast client this test drives: the first to ask, so the
// session's master. It acknowledges blocks without reading them (the
// session sends block k+1 on ACK k), so the test decides how far the
// stream goes and when.
type master struct {
	t    *testing.T
	conn *net.UDPConn
	tid  netip.AddrPort
}

// ownMaster asks for "f" by multicast with blksize 1428 (the atftp
// clients' session) and the timeout option given, and reads the OACK.
func ownMaster(t *testing.T, timeout int) *master {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: mcServerAddr.AsSlice()})
	if err != nil {
		t.Fatal(err)
	}
	rrq := AppendPacket(nil, Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{
		{OptMulticast, ""}, {OptBlksize, "1428"}, {OptTimeout, strconv.Itoa(timeout)}}})
	if _, err := c.WriteToUDPAddrPort(rrq, netip.AddrPortFrom(mcServerAddr, 69)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, tid, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no OACK: %v", err)
	}
	p, err := ParsePacket(buf[:n])
	if err != nil || p.Op != OpOACK {
		t.Fatalf("got %v %+v, want OACK", err, p)
	}
	if _, mc, err := ParseMulticastOption(OptionMap(p.Options)[OptMulticast]); err != nil || !mc {
		t.Fatalf("OACK multicast option %q: %v, master %v; want mc=1", OptionMap(p.Options)[OptMulticast], err, mc)
	}
	return &master{t: t, conn: c, tid: tid}
}

// ack acknowledges blocks from through to, in order, 32 at a time: each
// batch waits until sent (the session's multicast bytes) shows the
// blocks acknowledged so far went out, so no ACK is dropped by a full
// receive buffer (this client never repeats one).
func (m *master) ack(from, to int, sent func() int64) {
	for k := from; k <= to; k++ {
		if _, err := m.conn.WriteToUDPAddrPort(AppendPacket(nil, Packet{Op: OpACK, Block: uint16(k)}), m.tid); err != nil {
			m.t.Fatal(err)
		}
		if k%32 == 0 || k == to {
			lab.WaitFor(m.t, time.Minute, "the acknowledged blocks sent", func() bool { return sent() >= int64(k)*1428 })
		}
	}
}

func (m *master) addr() netip.AddrPort {
	a := m.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func (m *master) close() { m.conn.Close() }
