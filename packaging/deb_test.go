package packaging

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"pxed/internal/client"
	"pxed/internal/lab"
)

// The capabilities the unit grants, and nothing else.
var unitCaps = []string{"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_NET_ADMIN"}

var (
	debOnce sync.Once
	debPath string // the built .deb
	debRoot string // its files, extracted
	debErr  error
)

// buildDeb runs scripts/package.sh once per test binary and extracts the
// package.
func buildDeb(t *testing.T) (deb, root string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the .deb (go run nfpm: about a minute the first time); not in -short")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("needs dpkg-deb (Debian package dpkg) to read the .deb")
	}
	debOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pxed-deb")
		if err != nil {
			debErr = err
			return
		}
		out, err := exec.Command("../scripts/package.sh", dir).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			debErr = fmt.Errorf("scripts/package.sh: %v\n%s", err, stderr)
			return
		}
		debPath = strings.TrimSpace(string(out))
		debRoot = filepath.Join(dir, "root")
		if out, err := exec.Command("dpkg-deb", "-x", debPath, debRoot).CombinedOutput(); err != nil {
			debErr = fmt.Errorf("dpkg-deb -x: %v\n%s", err, out)
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debPath, debRoot
}

func TestMain(m *testing.M) {
	code := m.Run()
	if debPath != "" {
		os.RemoveAll(filepath.Dir(debPath))
	}
	os.Exit(code)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// TestDebContents checks what `apt install ./pxed_*.deb` puts where.
func TestDebContents(t *testing.T) {
	deb, _ := buildDeb(t)
	if !regexp.MustCompile(`/pxed_[0-9][^/_]*-1_amd64\.deb$`).MatchString(deb) {
		t.Errorf("package file name %s: want pxed_VERSION-1_amd64.deb", deb)
	}
	info := run(t, "dpkg-deb", "-I", deb)
	for _, want := range []string{"Package: pxed", "Architecture: amd64", "Depends: adduser, ipxe", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, want) {
			t.Errorf("dpkg-deb -I: no %q:\n%s", want, info)
		}
	}
	if got := strings.TrimSpace(run(t, "dpkg-deb", "-I", deb, "conffiles")); got != "/etc/pxed/pxed.yaml" {
		t.Errorf("conffiles = %q, want /etc/pxed/pxed.yaml (an upgrade keeps the administrator's changes)", got)
	}
	postinst := run(t, "dpkg-deb", "-I", deb, "postinst")
	for _, want := range []string{"adduser --system", "--ingroup pxed", "install -d -o pxed -g pxed -m 0750 /var/lib/pxed"} {
		if !strings.Contains(postinst, want) {
			t.Errorf("postinst does not %q:\n%s", want, postinst)
		}
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		body := run(t, "dpkg-deb", "-I", deb, script)
		if out, err := exec.Command("sh", "-n", "-c", body).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", script, err, out)
		}
	}
	contents := run(t, "dpkg-deb", "-c", deb)
	for _, want := range []string{
		`-rwxr-xr-x root/root +\d+ \S+ \S+ \./usr/bin/pxed\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./lib/systemd/system/pxed\.service\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./etc/pxed/pxed\.yaml\n`,
		`-rw-r--r-- root/root +\d+ \S+ \S+ \./usr/share/doc/pxed/copyright\n`,
	} {
		if !regexp.MustCompile(want).MatchString(contents) {
			t.Errorf("dpkg-deb -c: no line matching %s:\n%s", want, contents)
		}
	}
}

// TestDebUnit checks the systemd unit: systemd-analyze verify, its user,
// its capabilities (exactly the three pxed needs) and hardening.
func TestDebUnit(t *testing.T) {
	_, root := buildDeb(t)
	unitPath := filepath.Join(root, "lib/systemd/system/pxed.service")
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	caps := strings.Join(unitCaps, " ")
	for _, want := range []string{"ExecStart=/usr/bin/pxed serve --config /etc/pxed/pxed.yaml", "User=pxed", "Group=pxed",
		"AmbientCapabilities=" + caps, "CapabilityBoundingSet=" + caps, "NoNewPrivileges=yes", "StateDirectory=pxed",
		"ProtectSystem=strict", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_PACKET AF_NETLINK"} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit has no line %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): unit not verified")
	}
	// verify checks that ExecStart's binary exists: point it at the
	// extracted one; the rest of the unit is verified as shipped.
	dir := t.TempDir()
	verified := strings.Replace(unit, "ExecStart=/usr/bin/pxed", "ExecStart="+filepath.Join(root, "usr/bin/pxed"), 1)
	if err := os.WriteFile(filepath.Join(dir, "pxed.service"), []byte(verified), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "pxed.service")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDebLintian runs lintian on the package when it is installed: no
// error tag (the package ships an override for its static Go binary);
// warnings are logged.
func TestDebLintian(t *testing.T) {
	deb, _ := buildDeb(t)
	lintian, err := exec.LookPath("lintian")
	if err != nil {
		t.Skip("lintian not installed (Debian package lintian, not in .ci/run: it pulls ~100 MB of Perl): package not linted")
	}
	out, _ := exec.Command(lintian, "--tag-display-limit", "0", deb).CombinedOutput()
	t.Logf("lintian:\n%s", out)
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "E: ") {
			t.Errorf("lintian error: %s", l)
		}
	}
}

// TestDebRunsWithCapabilitiesOnly runs the packaged binary with the
// packaged sample configuration (interfaces and paths adapted to a lab) as
// an unprivileged user holding only the unit's ambient capabilities, as
// systemd would, and checks it serves: a PXE probe gets an address and
// downloads the NBP over TFTP, busybox udhcpc (no broadcast flag: pxed
// unicasts to an address-less client, which needs an ARP entry and so
// CAP_NET_ADMIN) gets a lease, and the packet socket of rogue detection
// (CAP_NET_RAW) opened.
func TestDebRunsWithCapabilitiesOnly(t *testing.T) {
	_, root := buildDeb(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (Debian package util-linux) to drop to a user with ambient capabilities")
	}
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err != nil {
		t.Skip("needs /usr/lib/ipxe/undionly.kpxe (Debian package ipxe, which the .deb depends on)")
	}
	n := lab.NewNet(t)
	bin := filepath.Join(root, "usr/bin/pxed")
	const nobody = 65534
	// Directories the unprivileged user can reach: t.TempDir is 0700 root.
	base, err := os.MkdirTemp("", "pxed-caps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	boot, data := filepath.Join(base, "boot"), filepath.Join(base, "data")
	for _, d := range []string{boot, data} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(root, "etc/pxed/pxed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(sample)
	for old, repl := range map[string]string{
		"#interfaces: [eth1]\n":     "interfaces: [" + n.Bridge() + "]\n",
		"dhcp:\n  mode: off\n":      "dhcp:\n  mode: server\n  range: 192.0.2.100-192.0.2.150\n",
		"boot_dir: /srv/pxed\n":     "boot_dir: " + boot + "\n",
		"data_dir: /var/lib/pxed\n": "data_dir: " + data + "\n",
		`http_addr: ":8080"`:        `http_addr: "192.0.2.1:8080"`,
		"log_level: info\n":         "log_level: debug\n",
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("the sample configuration has no %q to adapt:\n%s", old, cfg)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	cfgPath := filepath.Join(base, "pxed.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	capList := "-all"
	for _, c := range unitCaps {
		capList += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
	}
	id := fmt.Sprint(nobody)
	p := lab.Start(t, n.NS(), "setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "--no-new-privs",
		"--inh-caps="+capList, "--ambient-caps="+capList, "--bounding-set="+capList, "--", bin, "serve", "--config", cfgPath)
	lab.WaitFor(t, 15*time.Second, "pxed to serve", func() bool {
		return strings.Contains(p.Output(), "pxed serving") || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("pxed exited: %v\n%s", p.Err(), p.Output())
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t0000000000003400", "CapBnd:\t0000000000003400", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("pxed's /proc status has no %q:\n%s", want, status)
		}
	}

	h := n.AddHost(t, "client", netipPrefix(t, "2001:db8::100/64"))
	out, _ := exec.Command("ip", "netns", "exec", h.NS, bin, "probe", "--interface", h.Iface, "--arch", "bios", "--fetch",
		"--json", "--timeout-scale", "0.25").Output()
	var r client.Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	if !r.Boots || len(r.Downloads) == 0 || r.Downloads[0].Name != "undionly.kpxe" || r.Downloads[0].Bytes == 0 {
		t.Errorf("probe against the unprivileged pxed: boots=%v %s, downloads %+v", r.Boots, r.Verdict, r.Downloads)
	}
	if _, err := exec.LookPath("busybox"); err == nil {
		u := n.AddHost(t, "udhcpc", netipPrefix(t, "2001:db8::101/64"))
		out, err := lab.Run(t, u.NS, "busybox", "udhcpc", "-i", u.Iface, "-n", "-q", "-f", "-s", "/bin/true", "-t", "5", "-T", "1")
		if err != nil || !strings.Contains(out, "lease of 192.0.2.1") {
			t.Errorf("udhcpc (unicast replies) against the unprivileged pxed: %v\n%s", err, out)
		}
	} else {
		t.Log("busybox not installed: the unicast (ARP entry, CAP_NET_ADMIN) path not exercised")
	}
	logs := p.Output()
	if !strings.Contains(logs, "rogue DHCP server detection on") {
		t.Errorf("rogue detection did not open its packet socket with CAP_NET_RAW:\n%s", logs)
	}
	for _, bad := range []string{"operation not permitted", "permission denied", "level=ERROR",
		"dhcp unicast to chaddr unavailable"} { // the ARP entry needs CAP_NET_ADMIN
		if strings.Contains(strings.ToLower(logs), strings.ToLower(bad)) {
			t.Errorf("pxed logged %q as an unprivileged user:\n%s", bad, logs)
		}
	}
}

func netipPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
