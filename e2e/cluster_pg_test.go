package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pxed/internal/client"
	"pxed/internal/lab"
	"pxed/internal/store/pgtest"
)

// The servers of these tests share one PostgreSQL server (started by the
// test, Unix socket only), each through its own forwarder: cutting a
// forwarder cuts that server off from the database (its connections break
// and new ones are refused) while the others keep theirs.

// pgLink forwards a Unix socket (where one pxed connects) to PostgreSQL's.
type pgLink struct {
	dir, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

// newPGLink listens in a new directory and forwards to PostgreSQL's
// socket in pgDir.
func newPGLink(t *testing.T, pgDir string) *pgLink {
	t.Helper()
	dir, err := os.MkdirTemp("", "pglink")
	if err != nil {
		t.Fatal(err)
	}
	l := &pgLink{dir: dir, target: filepath.Join(pgDir, ".s.PGSQL.5432"), conns: map[net.Conn]bool{}}
	t.Cleanup(func() { l.cut(); os.RemoveAll(dir) })
	l.restore(t)
	return l
}

// dsn is the database's DSN through this link.
func (l *pgLink) dsn(t *testing.T, db string) string {
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("host", l.dir)
	u.RawQuery = q.Encode()
	return u.String()
}

// restore listens again (after cut).
func (l *pgLink) restore(t *testing.T) {
	t.Helper()
	path := filepath.Join(l.dir, ".s.PGSQL.5432")
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.pipe(c)
		}
	}()
}

func (l *pgLink) pipe(c net.Conn) {
	up, err := net.Dial("unix", l.target)
	if err != nil {
		c.Close()
		return
	}
	l.mu.Lock()
	if l.ln == nil { // cut meanwhile
		l.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	l.conns[c], l.conns[up] = true, true
	l.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	l.mu.Lock()
	delete(l.conns, c)
	delete(l.conns, up)
	l.mu.Unlock()
}

// cut closes the listener and every connection: the server behind this
// link has lost the database.
func (l *pgLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// pgCluster is k pxed servers on the lab segment sharing one PostgreSQL
// database, each through its own link.
type pgCluster struct {
	n       *lab.Net
	pg      *pgtest.Server
	db      string // the database's DSN (direct)
	servers []*clusterServer
	links   []*pgLink
}

const clusterRange = "192.0.2.20-192.0.2.250"

func startPGCluster(t *testing.T, k int) *pgCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL and several pxed servers; not in -short")
	}
	pg := pgtest.Start(t)
	db, err := pg.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{n: lab.NewNet(t), pg: pg, db: db}
	for i := range k {
		link := newPGLink(t, pg.Dir())
		c.links = append(c.links, link)
		ns, iface, ip := c.n.NS(), c.n.Bridge(), "192.0.2.1"
		if i > 0 {
			ip = fmt.Sprintf("192.0.2.%d", 1+i)
			h := c.n.AddHost(t, fmt.Sprintf("srv%d", i), mustPrefix(ip+"/24"))
			ns, iface = h.NS, h.Iface
		}
		c.servers = append(c.servers, startClusterServerRange(t, ns, iface, ip, fmt.Sprintf("pxe-%c", 'a'+i), clusterRange,
			"--store", link.dsn(t, db), "--data-dir", t.TempDir()))
	}
	lab.WaitFor(t, 15*time.Second, fmt.Sprintf("every server to see %d live members", k), func() bool {
		for _, s := range c.servers {
			if s.view(t).live() != k {
				return false
			}
		}
		return true
	})
	return c
}

// bound returns the bound leases of the shared database: address → MAC.
func (c *pgCluster) bound(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for addr, row := range leasesArgs(t, "--store", c.db) {
		if row.State == "bound" {
			out[addr] = strings.ToLower(row.MAC)
		}
	}
	return out
}

// udhcpcMany runs busybox udhcpc on n macvlans of host h at once (each its
// own MAC), each until it has a lease or gives up (-t 8 -T 2), and returns
// what they bound: MAC → address.
func udhcpcMany(t *testing.T, h *lab.Host, n int) map[string]string {
	t.Helper()
	macs := addMacvlans(t, h, n)
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	script := writeScript(t, `[ "$1" = bound ] && echo "bound $interface $ip" >> `+events+`
exit 0
`)
	var sb strings.Builder
	for ifc := range macs {
		fmt.Fprintf(&sb, "busybox udhcpc -i %s -f -q -n -s %s -t 8 -T 2 >/dev/null 2>&1 &\n", ifc, script)
	}
	sb.WriteString("wait\n")
	runner := writeScript(t, sb.String())
	if out, err := lab.Run(t, h.NS, runner); err != nil {
		t.Logf("udhcpc runner: %v\n%s", err, out)
	}
	got := map[string]string{}
	re := regexp.MustCompile(`^bound (\S+) (\S+)$`)
	for _, line := range strings.Split(readFile(events), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			got[macs[m[1]]] = m[2]
		}
	}
	return got
}

// checkBound: every address a client bound is in the database bound to
// that client's MAC, and no address is held by two clients.
func checkBound(t *testing.T, c *pgCluster, clients map[string]string) {
	t.Helper()
	db := c.bound(t)
	seen := map[string]string{}
	for mac, addr := range clients {
		if other, dup := seen[addr]; dup {
			t.Errorf("%s bound by %s and by %s", addr, other, mac)
		}
		seen[addr] = mac
		if db[addr] != mac {
			t.Errorf("%s got %s, but the database has it bound to %q", mac, addr, db[addr])
		}
	}
}

// TestClusterPostgresThreeServers: three servers on one PostgreSQL, 100
// busy box udhcpc clients and a storm of 100 machines at once: every client
// gets an address, every address a client was acknowledged is bound to it
// in the database, no address twice, and all three servers did part of the
// work.
func TestClusterPostgresThreeServers(t *testing.T) {
	c := startPGCluster(t, 3)
	storm := c.n.AddHost(t, "storm", mustPrefix("192.0.2.9/24"))
	h := clientHost(t, c.n, "many4", 9)
	var r *client.StormReport
	var code int
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, code, _ = runStorm(t, storm, "--clients", "100", "--arch", "efi-x64,bios", "--mac-prefix", "02:71:78")
	}()
	got := udhcpcMany(t, h, 100)
	<-done
	if code != 0 || r.Booted != 100 {
		t.Errorf("storm: exit %d, booted %d of 100 (%v, e.g. %v)", code, r.Booted, r.Failures, r.Examples)
	}
	if len(got) != 100 {
		t.Errorf("%d of 100 udhcpc clients bound", len(got))
	}
	checkBound(t, c, got)
	if db := c.bound(t); len(db) < 200 {
		t.Errorf("%d leases bound in PostgreSQL, want the 200 clients'", len(db))
	}
	for _, s := range c.servers {
		if n := s.metric(t, "pxed_dhcp_replies_total"); n == 0 {
			t.Errorf("%s answered nobody: the three servers did not split the work", s.ip)
		} else {
			t.Logf("%s: %v replies, %v left to peers", s.ip, n, s.metric(t, "pxed_dhcp_peer_share_total"))
		}
	}
}

// TestClusterPostgresFaults: two servers on one PostgreSQL.
//   - Server A is cut off from the database: it owns nothing (answers no
//     DHCP client) while B takes every client; A keeps serving TFTP and
//     HTTP; clients keep getting addresses, all in the database.
//   - PostgreSQL itself stops: no server acknowledges a lease (nothing
//     that is not committed), both keep serving files; when it is back
//     they lease again and every acknowledged lease is in the database.
func TestClusterPostgresFaults(t *testing.T) {
	c := startPGCluster(t, 2)
	a, b := c.servers[0], c.servers[1]
	h := clientHost(t, c.n, "many4", 9)

	c.links[0].cut()
	lab.WaitFor(t, 15*time.Second, "a to own nothing and b everything", func() bool {
		return a.view(t).Buckets == 0 && b.view(t).Buckets == 256
	})
	repliesA := a.metric(t, "pxed_dhcp_replies_total")
	got := udhcpcMany(t, h, 30)
	if len(got) != 30 {
		t.Errorf("with a cut off: %d of 30 clients bound", len(got))
	}
	if n := a.metric(t, "pxed_dhcp_replies_total"); n != repliesA {
		t.Errorf("a answered %v DHCP packets without its database", n-repliesA)
	}
	if _, err := lab.Run(t, a.ns, "curl", "-sf", "-o", "/dev/null", "http://"+a.ip+":8080/files/undionly.kpxe"); err != nil {
		t.Errorf("a stopped serving HTTP without its database: %v", err)
	}
	if a.metric(t, "pxed_cluster_heartbeat_errors_total") == 0 {
		t.Error("a's lost heartbeats are not counted")
	}
	c.links[0].restore(t)
	lab.WaitFor(t, 20*time.Second, "a to rejoin", func() bool { return a.view(t).live() == 2 && b.view(t).live() == 2 })

	// PostgreSQL stops.
	if err := c.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, 15*time.Second, "both servers to own nothing", func() bool {
		return a.view(t).Buckets == 0 && b.view(t).Buckets == 0
	})
	h2 := c.n.AddHost(t, "late", mustPrefix("2001:db8::3:1/64"))
	out, err := lab.Run(t, h2.NS, "busybox", "udhcpc", "-i", h2.Iface, "-f", "-q", "-n", "-t", "2", "-T", "1",
		"-s", writeScript(t, "exit 0\n"))
	if err == nil {
		t.Errorf("a client got a lease while PostgreSQL was down:\n%s", out)
	}
	for _, s := range []*clusterServer{a, b} {
		if _, err := lab.Run(t, s.ns, "curl", "-sf", "-o", "/dev/null", "http://"+s.ip+":8080/files/undionly.kpxe"); err != nil {
			t.Errorf("%s stopped serving HTTP while PostgreSQL was down: %v", s.ip, err)
		}
	}
	if err := c.pg.Start(); err != nil {
		t.Fatal(err)
	}
	lab.WaitFor(t, 30*time.Second, "both servers to lease again", func() bool {
		return a.view(t).live() == 2 && b.view(t).live() == 2
	})
	h3 := c.n.AddHost(t, "after", mustPrefix("2001:db8::3:2/64"))
	more := udhcpcMany(t, h3, 20)
	if len(more) != 20 {
		t.Errorf("after PostgreSQL came back: %d of 20 clients bound", len(more))
	}
	for mac, addr := range more {
		got[mac] = addr
	}
	checkBound(t, c, got)
}

// TestClusterServerKilledMidBoot: a UEFI machine (OVMF, EDK II's own PXE)
// gets its address and NBP from one of two servers sharing PostgreSQL;
// that server is killed (SIGKILL) as soon as the NBP is delivered, and the
// machine boots to the marker through the other: iPXE's DHCP, its script,
// kernel and initrd.
func TestClusterServerKilledMidBoot(t *testing.T) {
	c := startPGCluster(t, 2)
	const mac = "52:54:00:00:0c:01"
	vm := lab.StartVM(t, c.n, lab.VMOptions{Firmware: lab.UEFI, MAC: mac, Timeout: 5 * time.Minute})
	var first, other *clusterServer
	lab.WaitFor(t, 3*time.Minute, "the NBP delivered by one server", func() bool {
		for i, s := range c.servers {
			if hasStage(t, s, mac, "tftp-done") {
				first, other = s, c.servers[1-i]
				return true
			}
		}
		return false
	})
	if err := syscall.Kill(-first.p.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s after it delivered the NBP (%v after start)", first.ip, time.Since(vm.Started).Round(100*time.Millisecond))
	vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
	t.Logf("%s after %v", lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
	for _, st := range []string{"script", "kernel", "initrd"} {
		if !hasStage(t, other, mac, st) {
			t.Errorf("the surviving server %s has no %s event for the machine", other.ip, st)
		}
	}
}

// hasStage reports whether server s's timeline of mac has an event of
// stage.
func hasStage(t *testing.T, s *clusterServer, mac, stage string) bool {
	t.Helper()
	out, err := lab.Run(t, s.ns, "curl", "-s", "-m", "2", "http://"+s.ip+":8080/api/machines/"+mac+"/timeline")
	if err != nil {
		return false
	}
	return strings.Contains(out, `"stage": "`+stage+`"`) || strings.Contains(out, `"stage":"`+stage+`"`)
}
