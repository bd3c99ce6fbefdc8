// Package lab builds private network labs for end-to-end tests: network namespaces joined by a
// bridge, hosts attached through veth pairs, processes started inside a namespace in their own
// process group, and QEMU machines (SeaBIOS + iPXE ROM, or OVMF) network-booting on a tap device
// added to the bridge; and a headless Chromium for the web page's tests (Browser), which reaches a
// server inside a lab through Forward.
//
// Everything a helper creates is removed by t.Cleanup, also when the test fails: processes are
// killed by process group, taps and namespaces deleted. Nothing touches the machine's real
// interfaces. The helpers need root and the `ip` command (iproute2); without them they skip the
// test and say why. Boot assets (kernel and busybox initramfs) come from scripts/lab-assets.sh
// (`make assets`).
//
// Addresses: the bridge has BridgeAddr (192.0.2.1/24) and BridgeAddr6 (2001:db8::1/64); hosts
// and booted machines take other addresses of those prefixes.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BridgeAddr is the IPv4 address and prefix of the bridge in Net.NS.
var BridgeAddr = netip.MustParsePrefix("192.0.2.1/24")

// BridgeAddr6 is the IPv6 address and prefix of the bridge in Net.NS (added without DAD, so it
// is usable at once).
var BridgeAddr6 = netip.MustParsePrefix("2001:db8::1/64")

// bridgeName is the name of the bridge inside every lab namespace (names are per namespace, so
// labs never collide on it).
const bridgeName = "br0"

// nsPrefix starts the name of every namespace this package creates; the full name is
// nsPrefix<pid>-<n>[-host], which lets a later run find namespaces left by a killed test binary.
const nsPrefix = "pxl"

// ipTimeout bounds every `ip` command.
const ipTimeout = 20 * time.Second

var (
	labCounter atomic.Int64
	sweepOnce  sync.Once

	// created records every namespace and process group this process made, for CheckClean.
	createdMu  sync.Mutex
	createdNS  = map[string]bool{}
	createdPGs = map[int]string{}
)

// Net is a private L2 lab: a namespace holding a bridge (BridgeAddr and BridgeAddr6 on it) to
// which hosts (other namespaces, via veth) and QEMU taps attach. The server under test usually
// runs in NS itself, bound to the bridge.
type Net struct {
	ns    string
	ports atomic.Int64 // counter for veth and tap names inside ns
}

// Host is a namespace attached to a Net's bridge by a veth pair.
type Host struct {
	// NS is the host's namespace name (use it with Start and Run).
	NS string
	// Iface is the host's interface name inside NS ("eth0").
	Iface string
	// Addr is the address set on Iface.
	Addr netip.Prefix
}

// NewNet creates a lab: a new namespace with a bridge named Bridge() holding BridgeAddr and
// BridgeAddr6, STP off and forward delay 0 so ports forward at once. It skips the test when not
// root or when `ip` is missing. The namespace is deleted by t.Cleanup. Names are unique per
// process (pid and a counter), so packages testing in parallel do not collide.
func NewNet(t testing.TB) *Net {
	t.Helper()
	requireNetAdmin(t)
	sweepStale(t)
	name := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), labCounter.Add(1))
	addNS(t, name)
	n := &Net{ns: name}
	ipMust(t, "-n", name, "link", "add", bridgeName, "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	ipMust(t, "-n", name, "addr", "add", BridgeAddr.String(), "dev", bridgeName)
	ipMust(t, "-n", name, "addr", "add", BridgeAddr6.String(), "dev", bridgeName, "nodad")
	ipMust(t, "-n", name, "link", "set", bridgeName, "up")
	return n
}

// NS returns the name of the namespace holding the bridge; the server side runs here.
func (n *Net) NS() string { return n.ns }

// Bridge returns the bridge interface name inside NS ("br0").
func (n *Net) Bridge() string { return bridgeName }

// AddHost creates a namespace named after the lab and name, joins it to the bridge with a veth
// pair (Iface "eth0" on the host side), sets addr on it and brings it up. IPv6 addresses are
// added without DAD; the zero Prefix leaves the interface without an address. The namespace (and with it the veth pair) is deleted by t.Cleanup.
func (n *Net) AddHost(t testing.TB, name string, addr netip.Prefix) *Host {
	t.Helper()
	if !validName.MatchString(name) {
		t.Fatalf("lab: host name %q: use letters, digits and '-' only", name)
	}
	h := &Host{NS: n.ns + "-" + name, Iface: "eth0", Addr: addr}
	addNS(t, h.NS)
	port := fmt.Sprintf("vh%d", n.ports.Add(1))
	ipMust(t, "-n", n.ns, "link", "add", port, "type", "veth", "peer", "name", h.Iface, "netns", h.NS)
	ipMust(t, "-n", n.ns, "link", "set", port, "master", bridgeName, "up")
	if addr.IsValid() {
		args := []string{"-n", h.NS, "addr", "add", addr.String(), "dev", h.Iface}
		if addr.Addr().Is6() {
			args = append(args, "nodad")
		}
		ipMust(t, args...)
	}
	ipMust(t, "-n", h.NS, "link", "set", h.Iface, "up")
	return h
}

// addTap creates a tap device in the lab namespace, adds it to the bridge and brings it up; it
// is deleted by t.Cleanup (register it before starting the process using it, so that the
// process is gone first).
func (n *Net) addTap(t testing.TB) string {
	t.Helper()
	tap := fmt.Sprintf("tap%d", n.ports.Add(1))
	ipMust(t, "-n", n.ns, "tuntap", "add", "dev", tap, "mode", "tap")
	t.Cleanup(func() {
		// The namespace's deletion removes it too; delete early to keep the bridge tidy.
		if out, err := ipCmd("-n", n.ns, "link", "del", tap); err != nil && !strings.Contains(out, "Cannot find") {
			t.Logf("lab: delete tap %s in %s: %v: %s", tap, n.ns, err, out)
		}
	})
	ipMust(t, "-n", n.ns, "link", "set", tap, "master", bridgeName, "up")
	return tap
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,30}$`)

// requireNetAdmin skips the test unless it can create namespaces: root and the ip command.
func requireNetAdmin(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab: needs root to create network namespaces (run the tests as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("lab: needs the ip command (apt-get install iproute2)")
	}
}

// addNS creates a namespace with loopback up and registers its deletion.
func addNS(t testing.TB, name string) {
	t.Helper()
	ipMust(t, "netns", "add", name)
	createdMu.Lock()
	createdNS[name] = true
	createdMu.Unlock()
	t.Cleanup(func() { deleteNS(t, name) })
	ipMust(t, "-n", name, "link", "set", "lo", "up")
}

// deleteNS kills whatever still runs in the namespace (only processes of this lab can be there)
// and deletes it.
func deleteNS(t testing.TB, name string) {
	killNSProcs(name)
	if out, err := ipCmd("netns", "del", name); err != nil {
		t.Errorf("lab: delete namespace %s: %v: %s", name, err, out)
		return
	}
	createdMu.Lock()
	delete(createdNS, name)
	createdMu.Unlock()
}

// killNSProcs sends SIGKILL to every process inside namespace name and waits (bounded) for them
// to go, so that deleting the namespace really frees it.
func killNSProcs(name string) {
	for i := 0; i < 30; i++ {
		out, err := ipCmd("netns", "pids", name)
		if err != nil || strings.TrimSpace(out) == "" {
			return
		}
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var staleRE = regexp.MustCompile(`^` + nsPrefix + `([0-9]+)-[0-9]+(-[A-Za-z0-9-]+)?$`)

// sweepStale deletes lab namespaces left by test binaries that died without running their
// cleanups (killed by a timeout): their names carry the pid of a process that no longer exists.
// Namespaces of live processes (other packages testing in parallel) are left alone.
func sweepStale(t testing.TB) {
	sweepOnce.Do(func() {
		out, err := ipCmd("netns", "list")
		if err != nil {
			return
		}
		for _, line := range strings.Split(out, "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 {
				continue
			}
			m := staleRE.FindStringSubmatch(fields[0])
			if m == nil {
				continue
			}
			pid, err := strconv.Atoi(m[1])
			if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
				continue
			}
			t.Logf("lab: removing namespace %s left by dead test process %d", fields[0], pid)
			killNSProcs(fields[0])
			if out, err := ipCmd("netns", "del", fields[0]); err != nil {
				t.Logf("lab: delete stale namespace %s: %v: %s", fields[0], err, out)
			}
		}
	})
}

// CheckClean reports what this process created and has not removed: namespaces still present
// and process groups (started by Start) with a live member. Call it from TestMain after
// m.Run to prove the tests left nothing behind.
func CheckClean() error {
	createdMu.Lock()
	defer createdMu.Unlock()
	var left []string
	for ns := range createdNS {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			left = append(left, "namespace "+ns)
		}
	}
	for pg, what := range createdPGs {
		if groupAlive(pg) {
			left = append(left, fmt.Sprintf("process group %d (%s)", pg, what))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("lab: left behind: %s", strings.Join(left, ", "))
	}
	return nil
}

// ipCmd runs `ip args...` with a deadline and returns its combined output.
func ipCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ipTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// ipMust runs `ip args...` and fails the test on error.
func ipMust(t testing.TB, args ...string) {
	t.Helper()
	if out, err := ipCmd(args...); err != nil {
		t.Fatalf("lab: %v: %s", err, strings.TrimSpace(out))
	}
}
