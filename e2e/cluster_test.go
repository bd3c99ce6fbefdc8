package e2e

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/client"
	"pxed/internal/lab"
)

// Several pxed servers in the server role on one segment, sharing one
// lease database (--cluster): they split the clients (RFC 3074 buckets)
// and the free addresses, every address is bound by exactly one ACK, and a
// server killed mid-storm leaves the others to finish every boot.

// clusterServer is one member of a test cluster: its process and the
// namespace and address its HTTP API answers on.
type clusterServer struct {
	p      *lab.Proc
	ns, ip string
}

// startClusterServer runs `pxed boot --cluster` on iface in namespace ns
// (address ip), with the shared lease store given by storeArgs.
func startClusterServer(t *testing.T, ns, iface, ip, id string, storeArgs ...string) *clusterServer {
	t.Helper()
	return startClusterServerRange(t, ns, iface, ip, id, serverRange, storeArgs...)
}

// startClusterServerRange is startClusterServer leasing range rng.
func startClusterServerRange(t *testing.T, ns, iface, ip, id, rng string, storeArgs ...string) *clusterServer {
	t.Helper()
	kernel, initrd := lab.Assets(t)
	args := append([]string{"boot", "--interface", iface, "--kernel", kernel, "--initrd", initrd,
		"--http-addr", ip + ":8080", "--tftp-addr", ip + ":69", "--dhcp-range", rng,
		"--cluster", "--server-id", id, "--log-level", "info"}, storeArgs...)
	p := lab.Start(t, ns, pxedBin, args...)
	waitServingAt(t, ns, ip, p)
	return &clusterServer{p: p, ns: ns, ip: ip}
}

// clusterView is GET /api/cluster.
type clusterView struct {
	Self    string `json:"self"`
	Buckets int    `json:"client_buckets"`
	Peers   []struct {
		ID   string `json:"id"`
		Live bool   `json:"live"`
	} `json:"peers"`
}

func (s *clusterServer) view(t *testing.T) clusterView {
	t.Helper()
	out, err := lab.Run(t, s.ns, "curl", "-sf", "http://"+s.ip+":8080/api/cluster")
	var v clusterView
	if err == nil {
		err = json.Unmarshal([]byte(out), &v)
	}
	if err != nil {
		t.Fatalf("GET /api/cluster on %s: %v\n%s", s.ip, err, out)
	}
	return v
}

func (v clusterView) live() int {
	n := 0
	for _, p := range v.Peers {
		if p.Live {
			n++
		}
	}
	return n
}

// metric reads one counter of the server's /metrics.
func (s *clusterServer) metric(t *testing.T, name string) float64 {
	t.Helper()
	out, err := lab.Run(t, s.ns, "curl", "-sf", "http://"+s.ip+":8080/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", s.ip, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// twoServerLab starts two cluster members sharing a SQLite lease file
// (one host, two network namespaces on one segment): A on the lab bridge
// (192.0.2.1), B on a host at 192.0.2.2. Both see each other live before
// it returns.
func twoServerLab(t *testing.T) (*lab.Net, *clusterServer, *clusterServer, string) {
	t.Helper()
	n := lab.NewNet(t)
	data := t.TempDir()
	hb := n.AddHost(t, "srvb", mustPrefix("192.0.2.2/24"))
	a := startClusterServer(t, n.NS(), n.Bridge(), "192.0.2.1", "pxe-a", "--data-dir", data)
	b := startClusterServer(t, hb.NS, hb.Iface, "192.0.2.2", "pxe-b", "--data-dir", data)
	lab.WaitFor(t, 10*time.Second, "both servers to see two live members", func() bool {
		return a.view(t).live() == 2 && b.view(t).live() == 2
	})
	va, vb := a.view(t), b.view(t)
	if va.Buckets+vb.Buckets != 256 || va.Buckets == 0 || vb.Buckets == 0 {
		t.Fatalf("client buckets: a %d + b %d, want a split of 256", va.Buckets, vb.Buckets)
	}
	return n, a, b, data
}

// boundOnce checks that the shared store holds at least want bound
// leases, none of them twice (leases fails on an address listed twice).
func boundOnce(t *testing.T, data string, want int) {
	t.Helper()
	bound := 0
	for _, row := range leases(t, data) {
		if row.State == "bound" {
			bound++
		}
	}
	if bound < want {
		t.Errorf("%d leases bound in the shared store, want at least %d", bound, want)
	}
}

// TestClusterTwoServersSplitStorm: 90 simulated PXE machines boot through
// two servers at once; both answer part of them (neither answers all),
// every machine gets its address and boot file, and no address is bound
// twice.
func TestClusterTwoServersSplitStorm(t *testing.T) {
	n, a, b, data := twoServerLab(t)
	h := n.AddHost(t, "storm", mustPrefix("192.0.2.3/24"))
	const machines = 90
	r, code, _ := runStorm(t, h, "--clients", strconv.Itoa(machines), "--arch", "efi-x64,bios", "--timeout-scale", "0.5")
	if code != 0 || r.Booted != machines {
		t.Fatalf("exit %d: booted %d failed %d (%v, e.g. %v), want all %d", code, r.Booted, r.Failed, r.Failures, r.Examples, machines)
	}
	for _, s := range []*clusterServer{a, b} {
		replies, left := s.metric(t, "pxed_dhcp_replies_total"), s.metric(t, "pxed_dhcp_peer_share_total")
		t.Logf("%s: %v replies, %v packets left to the peer", s.ip, replies, left)
		if replies == 0 || left == 0 {
			t.Errorf("%s answered %v and left %v to its peer: the servers did not split the clients", s.ip, replies, left)
		}
	}
	boundOnce(t, data, machines)
	for _, s := range []*clusterServer{a, b} {
		out, err := lab.Run(t, s.ns, "curl", "-sf", "http://"+s.ip+":8080/api/rogues")
		if err != nil || strings.TrimSpace(out) != "[]" {
			t.Errorf("GET /api/rogues on %s = %v %s: a cluster peer reported as a rogue server", s.ip, err, out)
		}
	}
}

// TestClusterKillOneMidStorm: machines start booting 15 a second; one
// server is killed (SIGKILL) a second in. The other takes its share over
// within the liveness timeout and every machine boots; no address is
// bound twice.
func TestClusterKillOneMidStorm(t *testing.T) {
	n, a, b, data := twoServerLab(t)
	h := n.AddHost(t, "storm", mustPrefix("192.0.2.3/24"))
	const machines = 60
	done := make(chan struct{})
	var r client.StormReport
	var code int
	go func() {
		defer close(done)
		code, _ = runJSON(t, h, 4*time.Minute, "storm", &r, "--clients", strconv.Itoa(machines), "--rate", "15",
			"--arch", "efi-x64,bios")
	}()
	lab.WaitFor(t, 30*time.Second, "a to answer the first machines", func() bool { return a.metric(t, "pxed_dhcp_replies_total") >= 4 })
	if err := syscall.Kill(-a.p.Cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	atKill := 0
	for _, row := range leases(t, data) {
		if row.State == "bound" {
			atKill++
		}
	}
	if atKill >= machines {
		t.Fatalf("%d leases bound when a was killed: the kill did not land mid-run", atKill)
	}
	lab.WaitFor(t, 15*time.Second, "b to take a's share over", func() bool { return b.view(t).Buckets == 256 })
	t.Logf("b owns every client %v after a's SIGKILL", time.Since(killed).Round(100*time.Millisecond))
	<-done
	t.Logf("storm: exit %d: booted %d failed %d in %.2f s, retries %v, failures %v", code, r.Booted, r.Failed, r.Seconds, r.Retries, r.Failures)
	if code != 0 || r.Booted != machines {
		t.Fatalf("booted %d of %d after one server was killed (failures %v, e.g. %v)", r.Booted, machines, r.Failures, r.Examples)
	}
	boundOnce(t, data, machines)
}

// TestClusterDHCPv6Split: two cluster members that are also the segment's
// DHCPv6 server (--dhcp6-range) split the DHCPv6 clients by DUID as they
// split DHCPv4's: perfdhcp -6 (a new DUID per exchange, Solicit to
// ff02::1:2, which both servers receive) gets one Advertise per Solicit,
// from the client's owner, each server answers some clients and leaves
// the others to its peer, and no address is bound twice.
func TestClusterDHCPv6Split(t *testing.T) {
	if _, err := exec.LookPath("perfdhcp"); err != nil {
		t.Skip("needs perfdhcp (apt-get install kea-admin)")
	}
	n := lab.NewNet(t)
	data := t.TempDir()
	hb := n.AddHost(t, "srvb", mustPrefix("192.0.2.2/24"))
	if out, err := lab.Run(t, hb.NS, "ip", "addr", "add", "2001:db8::2/64", "dev", hb.Iface, "nodad"); err != nil {
		t.Fatalf("ip addr add: %v\n%s", err, out)
	}
	v6 := []string{"--data-dir", data, "--dhcp6-range", serverRange6}
	a := startClusterServer(t, n.NS(), n.Bridge(), "192.0.2.1", "pxe-a", v6...)
	b := startClusterServer(t, hb.NS, hb.Iface, "192.0.2.2", "pxe-b", v6...)
	lab.WaitFor(t, 10*time.Second, "both servers to see two live members", func() bool {
		return a.view(t).live() == 2 && b.view(t).live() == 2
	})
	h := clientHost(t, n, "perfdhcp6", 9)
	waitLinkLocal(t, h)
	const rate, seconds = 50, 2 // 100 exchanges: the range holds 256 addresses
	out, err := lab.Run(t, h.NS, "perfdhcp", "-6", "-g", "single", "-l", h.Iface, "-r", strconv.Itoa(rate),
		"-R", "10000", "-p", strconv.Itoa(seconds), "-W", "500000", "-x", "l")
	if err != nil && !strings.Contains(err.Error(), "exit status 3") { // 3: some exchanges not completed
		t.Fatalf("perfdhcp -6: %v\n%s", err, out)
	}
	r := parsePerfdhcp(out)
	sa, rr := r.stats["SOLICIT-ADVERTISE"], r.stats["REQUEST-REPLY"]
	t.Logf("SOLICIT-ADVERTISE sent %d received %d; REQUEST-REPLY sent %d received %d", sa.sent, sa.received, rr.sent, rr.received)
	if sa.sent < rate*seconds*9/10 || (sa.sent-sa.received)*100 >= sa.sent || (rr.sent-rr.received)*100 >= rr.sent {
		t.Fatalf("perfdhcp: Solicits %d/%d, Requests %d/%d answered, want all of about %d:\n%s", sa.received, sa.sent, rr.received, rr.sent, rate*seconds, out)
	}
	var replies float64
	for _, s := range []*clusterServer{a, b} {
		sent, left := s.metric(t, "pxed_dhcp6_replies_total"), s.metric(t, "pxed_dhcp6_peer_share_total")
		t.Logf("%s: %v DHCPv6 replies, %v Solicits left to the peer", s.ip, sent, left)
		if sent == 0 || left == 0 {
			t.Errorf("%s sent %v replies and left %v to its peer: the servers did not split the clients", s.ip, sent, left)
		}
		replies += sent
	}
	// One Advertise per Solicit and one Reply per Request: each message
	// was answered by one server, not by both.
	if want := float64(sa.sent + rr.sent); replies > want {
		t.Errorf("the two servers sent %v replies to %v messages: some were answered twice", replies, want)
	}
	if len(r.leases) != rr.received {
		t.Fatalf("perfdhcp listed %d leases for %d Replies", len(r.leases), rr.received)
	}
	boundOnce(t, data, rr.received)
}
