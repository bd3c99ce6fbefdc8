package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lab"
)

// The tests here load pxed's DHCPv6 server with many clients: Kea's
// perfdhcp -6 at a fixed rate, and ISC dhclient -6 processes (one per
// macvlan interface) across a SIGKILL of pxed.

// perfdhcpStats is one "Statistics for:" section of perfdhcp's report.
type perfdhcpStats struct{ sent, received int }

// perfdhcpReport is what TestPerfdhcp6 reads from perfdhcp's output:
// the statistics per exchange and the leases of the completed
// Request-Reply exchanges (-x l) as client DUID and address.
type perfdhcpReport struct {
	stats  map[string]perfdhcpStats // by exchange: SOLICIT-ADVERTISE, REQUEST-REPLY
	leases [][2]string              // REQUEST-REPLY: {DUID, address}
}

func parsePerfdhcp(out string) perfdhcpReport {
	r := perfdhcpReport{stats: map[string]perfdhcpStats{}}
	var stats, leases string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "***Statistics for: "):
			stats, leases = strings.TrimSuffix(strings.TrimPrefix(line, "***Statistics for: "), "***"), ""
		case strings.HasPrefix(line, "***Leases for "):
			stats, leases = "", strings.TrimSuffix(strings.TrimPrefix(line, "***Leases for "), "***")
		case strings.HasPrefix(line, "***"):
			stats, leases = "", ""
		case stats != "" && strings.HasPrefix(line, "sent packets:"):
			s := r.stats[stats]
			s.sent, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "sent packets:")))
			r.stats[stats] = s
		case stats != "" && strings.HasPrefix(line, "received packets:"):
			s := r.stats[stats]
			s.received, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "received packets:")))
			r.stats[stats] = s
		case leases == "REQUEST-REPLY" && strings.Count(line, ",") == 2 && !strings.HasPrefix(line, "client_id,"):
			f := strings.Split(line, ",")
			r.leases = append(r.leases, [2]string{f[0], f[1]})
		}
	}
	return r
}

// TestPerfdhcp6 runs perfdhcp -6 (Kea's load generator, as a client on
// the link: Solicit to ff02::1:2 from its link-local address) against
// pxed's DHCPv6 server at 100 exchanges/s for 2 s, each exchange a new
// client (DUID). Less than 1 % of the Solicit-Advertise and
// Request-Reply exchanges may be lost, every address perfdhcp got in a
// Reply must be in `pxed leases --json` bound to that client's DUID, no
// address twice, and pxed must hold no more bound leases than Requests
// it was sent.
func TestPerfdhcp6(t *testing.T) {
	if _, err := exec.LookPath("perfdhcp"); err != nil {
		t.Skip("needs perfdhcp (apt-get install kea-admin)")
	}
	const rate, seconds = 100, 2 // 200 exchanges: the range holds 256 addresses
	n := lab.NewNet(t)
	data := t.TempDir()
	startServer6(t, n, data, "")
	h := clientHost(t, n, "perfdhcp6", 7)
	waitLinkLocal(t, h)
	start := time.Now()
	// -R: more clients than exchanges, so that each exchange is a new
	// DUID (perfdhcp steps through them in order). -W: wait 0.5 s for the
	// last replies. -x l: list the leases of completed exchanges.
	out, err := lab.Run(t, h.NS, "perfdhcp", "-6", "-g", "single", "-l", h.Iface, "-r", strconv.Itoa(rate),
		"-R", "10000", "-p", strconv.Itoa(seconds), "-W", "500000", "-x", "l")
	t.Logf("perfdhcp -6 ran %v", time.Since(start).Round(10*time.Millisecond))
	if err != nil && !strings.Contains(err.Error(), "exit status 3") { // 3: some exchanges not completed
		t.Fatalf("perfdhcp -6: %v\n%s", err, out)
	}
	r := parsePerfdhcp(out)
	for _, ex := range []string{"SOLICIT-ADVERTISE", "REQUEST-REPLY"} {
		s := r.stats[ex]
		if s.sent < rate*seconds*9/10 {
			t.Fatalf("%s: perfdhcp sent %d, want about %d:\n%s", ex, s.sent, rate*seconds, out)
		}
		if drops := s.sent - s.received; drops*100 >= s.sent {
			t.Errorf("%s: %d of %d lost (>= 1 %%)", ex, drops, s.sent)
		}
		t.Logf("%s: sent %d, received %d", ex, s.sent, s.received)
	}
	rr := r.stats["REQUEST-REPLY"]
	if len(r.leases) != rr.received {
		t.Fatalf("perfdhcp listed %d leases for %d Replies:\n%s", len(r.leases), rr.received, out)
	}

	rows := leases(t, data) // fails on an address listed twice
	bound := 0
	for _, row := range rows {
		if row.State == "bound" {
			bound++
		}
	}
	got := map[string]string{} // address → DUID
	for _, l := range r.leases {
		duid, addr := normHex(l[0]), l[1]
		if prev, dup := got[addr]; dup {
			t.Errorf("%s given to %s and to %s", addr, prev, duid)
		}
		got[addr] = duid
		row := rows[addr]
		if row.State != "bound" || !strings.HasSuffix(normHex(row.Client), duid) {
			t.Errorf("perfdhcp got %s for DUID %s; pxed leases has %+v", addr, duid, row)
		}
	}
	// Every completed exchange is a bound lease; a lease whose Reply was
	// lost on the way may be bound too, but never more than were asked.
	if bound < rr.received || bound > rr.sent {
		t.Errorf("pxed leases: %d bound, want %d (Replies received) to %d (Requests sent)", bound, rr.received, rr.sent)
	}
	t.Logf("%d Request-Reply exchanges completed, %d leases bound in pxed's store", rr.received, bound)
}

// normHex writes a hex string with or without colons, with or without
// leading zeros per byte ("0:3:0:1", "00:03:00:01", "00030001") as
// plain lowercase hex ("00030001").
func normHex(s string) string {
	if !strings.Contains(s, ":") {
		return strings.ToLower(s)
	}
	var b strings.Builder
	for _, p := range strings.Split(s, ":") {
		if len(p) == 1 {
			b.WriteByte('0')
		}
		b.WriteString(strings.ToLower(p))
	}
	return b.String()
}

// TestServer6CrashSafety runs many ISC dhclient -6 clients (one per
// macvlan interface, each with its own MAC and so its own DUID-LL and
// IAID) against pxed's DHCPv6 server, kills pxed with SIGKILL (the whole
// process group) after some of them got a Reply, restarts it on the same
// data dir and lets the rest finish. Then no address may have been bound
// by two clients, and every address a client bound (its script's log)
// must be in `pxed leases` bound to that client's DUID+IAID key.
func TestServer6CrashSafety(t *testing.T) {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("needs dhclient (apt-get install isc-dhcp-client)")
	}
	const clients = 100
	n := lab.NewNet(t)
	data := t.TempDir()
	// pxed first, then the clients' port: a bridge takes the lowest MAC
	// of its ports, so the bridge's MAC may change between pxed's two
	// starts. pxed keeps its DUID in the data dir (dhcp6-duid): the
	// restarted pxed must still be the server the clients' Requests name.
	pxed := startServer6(t, n, data, "")
	h := clientHost(t, n, "many6", 8)
	// No duplicate address detection on the macvlans: their link-local
	// addresses (dhclient -6 binds port 546 there) are usable at once.
	for _, k := range []string{"all", "default"} {
		if out, err := lab.Run(t, h.NS, "sysctl", "-qw", "net.ipv6.conf."+k+".accept_dad=0"); err != nil {
			t.Fatalf("sysctl: %v\n%s", err, out)
		}
	}
	addMacvlans(t, h, clients)
	lab.WaitFor(t, 10*time.Second, "link-local addresses on the macvlans", func() bool {
		out, err := lab.Run(t, h.NS, "ip", "-6", "-o", "addr", "show", "scope", "link")
		return err == nil && strings.Count(out, " mv") == clients && !strings.Contains(out, "tentative")
	})

	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	// One line per address in a Reply: the client's DUID and IAID as
	// dhclient knows them, and the valid lifetime (0: an address the
	// client asked for and is told not to use, RFC 8415 §18.3.2).
	script := writeScript(t, `case "$reason" in BOUND6|RENEW6|REBIND6|REBOOT6)
  echo "$reason $interface $new_ip6_address $new_dhcp6_client_id $new_iaid $new_max_life" >> `+events+` ;;
esac
exit 0
`)
	var procs []*lab.Proc
	for i := range clients {
		ifc := fmt.Sprintf("mv%d", i)
		// -D LL: a DUID-LL from the interface's own MAC; -d: stay in the
		// foreground (the lab stops it).
		procs = append(procs, lab.Start(t, h.NS, "dhclient", "-6", "-d", "-D", "LL", "-sf", script,
			"-lf", filepath.Join(dir, ifc+".leases"), "-pf", filepath.Join(dir, ifc+".pid"), ifc))
	}
	type binding struct{ iface, key string }
	// bindings reads the script's log: address → who bound it (a valid
	// lifetime above 0), and the interfaces that bound one.
	bindings := func() (map[string][]binding, map[string]bool) {
		got, ifaces := map[string][]binding{}, map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(readFile(events)), "\n") {
			f := strings.Fields(line)
			if len(f) != 6 {
				continue // not written yet, or nothing at all
			}
			if f[5] == "0" {
				continue
			}
			// pxed's key for an IA_NA: 255, IAID, DUID (RFC 4361 form).
			b := binding{f[1], "ff" + normHex(f[4]) + normHex(f[3])}
			if !slices.Contains(got[f[2]], b) {
				got[f[2]] = append(got[f[2]], b)
			}
			ifaces[f[1]] = true
		}
		return got, ifaces
	}
	bound := func() int { _, ifaces := bindings(); return len(ifaces) }
	atKill := killMidRun(t, pxed, bound, clients)
	killed := time.Now()
	startServer6(t, n, data, "")
	lab.WaitFor(t, 45*time.Second, "every dhclient -6 to bind", func() bool { return bound() >= clients })
	t.Logf("every client bound %v after the SIGKILL", time.Since(killed).Round(100*time.Millisecond))
	for _, p := range procs {
		if p.Exited() {
			t.Errorf("a dhclient exited: %v\n%s", p.Err(), p.Output())
		}
		p.Stop()
	}

	got, ifaces := bindings()
	rows := leases(t, data) // fails on an address listed twice
	for addr, bs := range got {
		if len(bs) > 1 {
			t.Errorf("%s bound by %d clients: %v", addr, len(bs), bs)
		}
		if r := rows[addr]; r.State != "bound" || normHex(r.Client) != bs[len(bs)-1].key {
			t.Errorf("%s bound by %s (key %s) is %+v in pxed leases after the crash", addr, bs[0].iface, bs[0].key, r)
		}
	}
	if atKill >= clients {
		t.Errorf("SIGKILL landed after every client was bound: the crash was not mid-run")
	}
	refused := 0 // addresses asked for and returned with lifetime 0
	for _, line := range strings.Split(readFile(events), "\n") {
		if strings.HasSuffix(line, " 0") {
			refused++
		}
	}
	t.Logf("%d clients, %d bound before SIGKILL, %d addresses bound in all, %d lease rows; %d addresses asked for were refused (lifetime 0)",
		clients, atKill, len(got), len(rows), refused)
	if len(ifaces) != clients {
		t.Errorf("%d of %d clients bound an address", len(ifaces), clients)
	}
}

// addMacvlans adds n macvlan interfaces mv0…mv<n-1> (bridge mode) on h's
// interface, each with its own MAC 02:00:00:00:HH:LL from its number, up;
// it returns interface → MAC.
func addMacvlans(t *testing.T, h *lab.Host, n int) map[string]string {
	t.Helper()
	batch := filepath.Join(t.TempDir(), "links")
	var sb strings.Builder
	macs := map[string]string{}
	for i := range n {
		ifc, mac := fmt.Sprintf("mv%d", i), fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
		macs[ifc] = mac
		fmt.Fprintf(&sb, "link add %s link %s address %s type macvlan mode bridge\nlink set %s up\n", ifc, h.Iface, mac, ifc)
	}
	if err := os.WriteFile(batch, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Run(t, "", "ip", "-n", h.NS, "-batch", batch); err != nil {
		t.Fatalf("macvlans: %v\n%s", err, out)
	}
	return macs
}

// killMidRun waits until bound() reaches a quarter of clients (60 s at
// most), then kills pxed with SIGKILL (its whole process group) and waits
// for it to go; it returns bound() after the kill. It polls tightly (the
// clients bind within a second or two) so that the kill lands mid-run.
func killMidRun(t *testing.T, pxed *lab.Proc, bound func() int, clients int) int {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); bound() < clients/4; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d clients bound within 60 s:\n%s", bound(), clients, pxed.Output())
		}
	}
	if err := syscall.Kill(-pxed.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill pxed: %v", err)
	}
	<-pxed.Done()
	return bound()
}
