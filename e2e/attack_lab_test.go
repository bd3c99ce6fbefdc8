package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"pxed/internal/lab"
)

// The attack suite (attack_test.go) runs pxed with small limits, attacks it
// from a lab host with attackers written here in Go, and checks that
// legitimate clients nobody here wrote (udhcpc, atftp, curl, QEMU) still
// succeed during the attack and that pxed's memory and open files stay
// under bounds derived from the configured limits. This file holds the lab
// (pxed under `serve --config` with a limits: section), sockets opened
// inside a lab namespace, the resource sampler and the metrics reader.

// serverIP is pxed's address on the lab bridge (lab.BridgeAddr).
const serverIP = "192.0.2.1"

// attackLab is pxed serving a lab network from a configuration file.
type attackLab struct {
	n       *lab.Net
	pxed    *lab.Proc
	pid     int // pxed's own process (not a wrapper)
	dataDir string
	bootDir string
	file    []byte // bootDir/boot.bin, served over TFTP and /files/
	kernel  string
	mon     *http.Client // dials from the lab namespace (192.0.2.1 itself)
	base    procStats    // pxed's RSS and open files once it serves
}

// labConfig is what a test sets in pxed's configuration.
type labConfig struct {
	mode   string // "proxy" (default), "server" or "off"
	ranges string // server mode: the subnet's ranges, e.g. "192.0.2.100-192.0.2.131"
	limits string // YAML lines of the limits: section, e.g. "http_connections: 256\n"
}

// requireTools skips the test unless every named program is installed.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install curl atftp busybox-static qemu-system-x86 ipxe-qemu)", tool)
		}
	}
}

// startAttackLab makes a lab and runs `pxed serve --config` on its bridge
// with the lab kernel and initramfs as the default profile, a 1 MiB random
// boot.bin in the boot directory and c's mode, range and limits; it waits
// until /healthz answers and records pxed's resource use then.
func startAttackLab(t *testing.T, c labConfig) *attackLab {
	t.Helper()
	requireTools(t, "curl")
	kernel, initrd := lab.Assets(t)
	l := &attackLab{n: lab.NewNet(t), dataDir: t.TempDir(), bootDir: t.TempDir(), kernel: kernel}
	l.file = make([]byte, 1<<20)
	if _, err := rand.Read(l.file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.bootDir, "boot.bin"), l.file, 0o644); err != nil {
		t.Fatal(err)
	}
	if c.mode == "" {
		c.mode = "proxy"
	}
	dhcp := "dhcp:\n  mode: " + c.mode + "\n"
	if c.mode == "server" {
		dhcp += fmt.Sprintf(`  probe_timeout: "off"
  subnets:
    - interface: %s
      prefix: 192.0.2.0/24
      ranges: [%s]
      lease_time: 1h
      authoritative: true
`, l.n.Bridge(), c.ranges)
	}
	limits := ""
	if c.limits != "" {
		limits = "limits:\n"
		for _, line := range strings.Split(strings.TrimSpace(c.limits), "\n") {
			limits += "  " + strings.TrimSpace(line) + "\n"
		}
	}
	cfg := fmt.Sprintf(`interfaces: [%s]
%sboot_dir: %s
data_dir: %s
tftp_addr: "%s:69"
http_addr: "%s:8080"
log_level: info
profiles:
  default:
    kernel: %s
    initrds: [%s]
    cmdline: console=ttyS0 panic=-1
%s`, l.n.Bridge(), dhcp, l.bootDir, l.dataDir, serverIP, serverIP, kernel, initrd, limits)
	file := filepath.Join(t.TempDir(), "pxed.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l.mon = nsHTTPClient(l.n.NS(), 5*time.Second)
	l.pxed = lab.Start(t, l.n.NS(), pxedBin, "serve", "--config", file)
	lab.WaitFor(t, 15*time.Second, "pxed to serve HTTP", func() bool {
		return l.pxed.Exited() || l.healthy() == nil
	})
	if l.pxed.Exited() {
		t.Fatalf("pxed exited: %v\n%s\nconfiguration:\n%s", l.pxed.Err(), l.pxed.Output(), cfg)
	}
	l.pid = pxedPID(t, l.pxed)
	l.base = readProcStats(t, l.pid)
	t.Logf("pxed pid %d serving; baseline RSS %.1f MiB, %d open files", l.pid, mib(l.base.rss), l.base.fds)
	return l
}

// url is the address of path on pxed's HTTP server.
func (l *attackLab) url(path string) string { return "http://" + serverIP + ":8080" + path }

// healthy returns nil when GET /healthz answers 200 "ok".
func (l *attackLab) healthy() error {
	body, code, err := l.get("/healthz")
	if err != nil {
		return err
	}
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		return fmt.Errorf("/healthz: %d %q", code, body)
	}
	return nil
}

// get fetches path from the lab namespace (a fresh connection each time).
func (l *attackLab) get(path string) (string, int, error) {
	resp, err := l.mon.Get(l.url(path))
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return string(b), resp.StatusCode, err
}

// assertAlive checks, after the attack, that pxed still runs and /healthz
// says ok (within a bounded wait: connections the attack left may take a
// moment to be closed).
func (l *attackLab) assertAlive(t *testing.T) {
	t.Helper()
	var last error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !l.pxed.Exited() {
		if last = l.healthy(); last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	if l.pxed.Exited() {
		t.Fatalf("pxed exited during the attack: %v", l.pxed.Err())
	}
	t.Fatalf("pxed's /healthz did not answer ok within 20 s after the attack: %v", last)
}

// metrics reads /metrics and returns every sample of a pxed_ metric summed
// over its labels, by name.
func (l *attackLab) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	body, code, err := l.get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "pxed_") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		v, err := strconv.ParseFloat(f[1], 64)
		if err == nil {
			m[name] += v
		}
	}
	return m
}

// assertCounted checks that at least one of the named counters is above
// zero: the refusal was counted where an operator looks.
func (l *attackLab) assertCounted(t *testing.T, what string, names ...string) {
	t.Helper()
	m := l.metrics(t)
	for _, name := range names {
		if m[name] > 0 {
			t.Logf("%s counted: %s %g", what, name, m[name])
			return
		}
	}
	var have []string
	for k, v := range m {
		have = append(have, fmt.Sprintf("%s=%g", k, v))
	}
	t.Errorf("%s not counted: none of %v is above 0 in /metrics (pxed_ metrics: %v)", what, names, have)
}

// apiEvent is one event of GET /api/machines/MAC/timeline.
type apiEvent struct {
	MAC    string `json:"mac"`
	IP     string `json:"ip"`
	Stage  string `json:"stage"`
	Detail string `json:"detail"`
}

// timeline returns the events of a machine (MAC as aa:bb:…, or an address
// for a machine known only by it); none when pxed has no such machine.
func (l *attackLab) timeline(t *testing.T, key string) []apiEvent {
	t.Helper()
	body, code, err := l.get("/api/machines/" + key + "/timeline")
	if err != nil {
		t.Fatalf("timeline of %s: %v", key, err)
	}
	if code == http.StatusNotFound {
		return nil
	}
	var evs []apiEvent
	if err := json.Unmarshal([]byte(body), &evs); err != nil {
		t.Fatalf("timeline of %s: %d %v\n%.2000s", key, code, err, body)
	}
	return evs
}

// machines returns how many machines pxed keeps: the larger of its
// inventory (GET /api/machines) and its timelines (pxed_events_machines).
func (l *attackLab) machines(t *testing.T) int {
	t.Helper()
	body, code, err := l.get("/api/machines")
	if err != nil || code != http.StatusOK {
		t.Fatalf("/api/machines: %d %v", code, err)
	}
	var ms []json.RawMessage
	if err := json.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatalf("/api/machines: %v", err)
	}
	n := len(ms)
	if tl := int(l.metrics(t)["pxed_events_machines"]); tl > n {
		n = tl
	}
	return n
}

// host adds a lab host with address addr (and extra addresses on the same
// interface, for an attacker posing as several clients).
func (l *attackLab) host(t *testing.T, name, addr string, extra ...string) *lab.Host {
	t.Helper()
	h := l.n.AddHost(t, name, mustPrefix(addr+"/24"))
	for _, a := range extra {
		if out, err := lab.Run(t, h.NS, "ip", "addr", "add", a+"/24", "dev", h.Iface); err != nil {
			t.Fatalf("ip addr add %s: %v\n%s", a, err, out)
		}
	}
	return h
}

// --- pxed's resources ------------------------------------------------------

// procStats is what /proc says a process holds.
type procStats struct {
	rss int64 // VmRSS, bytes
	fds int   // entries of /proc/PID/fd
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// pxedPID returns the pid of the pxed process p started: lab.Start runs
// `ip netns exec NS pxed …`, which execs pxed, so it is the group leader;
// should a wrapper ever stay in between, the group member running pxedBin.
func pxedPID(t *testing.T, p *lab.Proc) int {
	t.Helper()
	pg := p.Cmd.Process.Pid
	want, _ := filepath.EvalSymlinks(pxedBin)
	isPxed := func(pid int) bool {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		return err == nil && (exe == want || exe == pxedBin)
	}
	if isPxed(pg) {
		return pg
	}
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pg && isPxed(pid) {
			return pid
		}
	}
	t.Fatalf("no process running %s in process group %d", pxedBin, pg)
	return 0
}

func readProcStats(t *testing.T, pid int) procStats {
	t.Helper()
	s, err := procStatsOf(pid)
	if err != nil {
		t.Fatalf("pxed (pid %d): %v", pid, err)
	}
	return s
}

func procStatsOf(pid int) (procStats, error) {
	var s procStats
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			s.rss = kb << 10
		}
	}
	d, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	s.fds = len(names)
	return s, err
}

// sampler records the most memory and open files pxed held while it ran.
type sampler struct {
	stop chan struct{}
	done chan struct{}
	max  procStats
}

// sample reads pxed's RSS and open files every 50 ms until stopped.
func (l *attackLab) sample() *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := procStatsOf(l.pid); err == nil {
				s.max.rss = max(s.max.rss, st.rss)
				s.max.fds = max(s.max.fds, st.fds)
			}
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// bounds stops the sampler and checks the maxima against the bounds: RSS
// at most the baseline plus rssAllow, open files at most the baseline plus
// fdAllow. Each test derives the allowances from its configured limits.
func (s *sampler) bounds(t *testing.T, l *attackLab, rssAllow int64, fdAllow int) {
	t.Helper()
	select {
	case <-s.done:
	default:
		close(s.stop)
		<-s.done
	}
	t.Logf("pxed during the attack: max RSS %.1f MiB (bound %.1f), max open files %d (bound %d)",
		mib(s.max.rss), mib(l.base.rss+rssAllow), s.max.fds, l.base.fds+fdAllow)
	if s.max.rss > l.base.rss+rssAllow {
		t.Errorf("pxed's RSS reached %.1f MiB: more than its baseline %.1f MiB + %.1f MiB the limits allow",
			mib(s.max.rss), mib(l.base.rss), mib(rssAllow))
	}
	if s.max.fds > l.base.fds+fdAllow {
		t.Errorf("pxed held %d open files: more than its baseline %d + %d the limits allow",
			s.max.fds, l.base.fds, fdAllow)
	}
}

// rssSlack is the memory every bound allows beyond what the limits make
// pxed hold: garbage not yet collected (the Go heap may reach about twice
// its live size before a collection), goroutines and runtime growth under
// load. It is far below what the findings measured (hundreds of MiB).
const rssSlack = 64 << 20

// fdSlack is the open files every bound allows beyond the limits: the
// monitor's own connections (metrics, /healthz), log and database files,
// epoll and the odd connection the kernel is still closing.
const fdSlack = 48

// --- sockets inside a lab namespace ---------------------------------------

// inNS runs f on a thread switched into network namespace ns: sockets f
// creates belong to ns and stay there. The thread goes back to its own
// namespace afterwards; if it cannot, it is left locked and dies with the
// goroutine instead of carrying ns to other goroutines.
func inNS(ns string, f func() error) error {
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("own namespace: %w", err)
	}
	defer self.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", ns, err)
	}
	ferr := f()
	if err := setns(self); err != nil {
		return fmt.Errorf("leave namespace %s: %w", ns, err) // thread stays locked: discarded
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// nsDial opens a TCP connection from namespace ns (from local address
// laddr when it is valid) to raddr.
func nsDial(ctx context.Context, ns string, laddr netip.Addr, raddr string) (net.Conn, error) {
	d := net.Dialer{}
	if laddr.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(laddr, 0))
	}
	var c net.Conn
	err := inNS(ns, func() error {
		var err error
		c, err = d.DialContext(ctx, "tcp", raddr)
		return err
	})
	return c, err
}

// nsUDP opens a UDP socket in namespace ns on laddr (port 0: a new port).
func nsUDP(ns string, laddr netip.AddrPort, device string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			}
			if serr == nil && device != "" {
				serr = syscall.BindToDevice(int(fd), device)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var c *net.UDPConn
	err := inNS(ns, func() error {
		pc, err := lc.ListenPacket(context.Background(), "udp4", laddr.String())
		if err != nil {
			return err
		}
		c = pc.(*net.UDPConn)
		return nil
	})
	return c, err
}

// nsHTTPClient is an HTTP client whose connections start in namespace ns;
// no keep-alive, so it holds no connection between requests.
func nsHTTPClient(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return nsDial(ctx, ns, netip.Addr{}, addr)
		},
	}}
}

// --- attacks ----------------------------------------------------------------

// attack is an attacker running in goroutines until its deadline, its
// count or stop, whichever comes first.
type attack struct {
	name     string
	progress atomic.Int64 // units done: requests sent, connections opened
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
	mu       sync.Mutex
	notes    []string
	logged   sync.Once
}

// startAttack runs f with a context ending after maxDur (every attack is
// bounded in time; f bounds its count). Cleanup stops it.
func startAttack(t *testing.T, name string, maxDur time.Duration, f func(ctx context.Context, a *attack) error) *attack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), maxDur)
	a := &attack{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.err = f(ctx, a)
	}()
	t.Cleanup(func() { a.stop(t) })
	return a
}

// note records something the attacker saw, for the test's log.
func (a *attack) note(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.notes) < 20 {
		a.notes = append(a.notes, fmt.Sprintf(format, args...))
	}
}

func (a *attack) running() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// waitProgress waits (bounded) until the attack has done n units, so the
// legitimate client that follows meets it in full swing.
func (a *attack) waitProgress(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	lab.WaitFor(t, timeout, fmt.Sprintf("the %s attack to reach %d (at %d)", a.name, n, a.progress.Load()), func() bool {
		return a.progress.Load() >= n || !a.running()
	})
	if a.progress.Load() < n {
		t.Fatalf("the %s attack ended at %d of %d before the legitimate client started: %v %v", a.name, a.progress.Load(), n, a.err, a.notes)
	}
}

// during runs legit while the attack is running: it fails the test when
// the attack had already ended, as the legitimate client then proves nothing.
func (a *attack) during(t *testing.T, what string, legit func()) {
	t.Helper()
	if !a.running() {
		t.Fatalf("the %s attack ended (%d done, %v) before %s", a.name, a.progress.Load(), a.err, what)
	}
	start := time.Now()
	legit()
	t.Logf("%s during the %s attack: done in %v (attack at %d, still running: %v)",
		what, a.name, time.Since(start).Round(time.Millisecond), a.progress.Load(), a.running())
}

// stop cancels the attack and waits for its goroutines (bounded: each
// attacker returns within a second or two of its context's end).
func (a *attack) stop(t *testing.T) {
	t.Helper()
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		t.Errorf("the %s attack did not stop within 30 s of its cancellation", a.name)
		return
	}
	a.logged.Do(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		t.Logf("%s attack: %d done, err %v, notes %v", a.name, a.progress.Load(), a.err, a.notes)
	})
}
