package lab_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lab"
)

// TestMain proves the tests leave nothing behind: no namespace, no process group.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := lab.CheckClean(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func TestNetHostsReachBridge(t *testing.T) {
	n := lab.NewNet(t)
	a := n.AddHost(t, "a", netip.MustParsePrefix("192.0.2.10/24"))
	b := n.AddHost(t, "b", netip.MustParsePrefix("2001:db8::10/64"))

	out, err := lab.Run(t, n.NS(), "ip", "-br", "addr", "show", "dev", n.Bridge())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.0.2.1/24", "2001:db8::1/64"} {
		if !strings.Contains(out, want) {
			t.Errorf("bridge %s in %s: want address %s, got %q", n.Bridge(), n.NS(), want, out)
		}
	}
	out, err = lab.Run(t, a.NS, "ip", "-br", "addr", "show", "dev", a.Iface)
	if err != nil || !strings.Contains(out, "192.0.2.10/24") {
		t.Fatalf("host a: want 192.0.2.10/24 on %s, got %q (%v)", a.Iface, out, err)
	}

	ping := func(ns, addr string) func() bool {
		return func() bool {
			_, err := lab.Run(t, ns, "busybox", "ping", "-c", "1", "-W", "1", addr)
			return err == nil
		}
	}
	lab.WaitFor(t, 10*time.Second, "host a to ping the bridge at 192.0.2.1", ping(a.NS, "192.0.2.1"))
	lab.WaitFor(t, 10*time.Second, "host b to ping the bridge at 2001:db8::1", ping(b.NS, "2001:db8::1"))

	// A host is isolated from the machine's real network: its only routes are the lab's.
	out, err = lab.Run(t, a.NS, "ip", "route")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "default") {
		t.Errorf("host a has a default route: %q", out)
	}
}

func TestStartRunsInNamespaceAndStopKillsGroup(t *testing.T) {
	n := lab.NewNet(t)
	p := lab.Start(t, n.NS(), "sh", "-c", "sleep 300 & echo child=$!; echo started; sleep 300")
	lab.WaitFor(t, 10*time.Second, "the shell to report its child", func() bool {
		return strings.Contains(p.Output(), "started")
	})
	m := regexp.MustCompile(`child=([0-9]+)`).FindStringSubmatch(p.Output())
	if m == nil {
		t.Fatalf("no child pid in output %q", p.Output())
	}
	child, _ := strconv.Atoi(m[1])
	leader := p.Cmd.Process.Pid

	out, err := lab.Run(t, "", "ip", "netns", "identify", strconv.Itoa(leader))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != n.NS() {
		t.Errorf("process %d runs in namespace %q, want %q", leader, strings.TrimSpace(out), n.NS())
	}
	if pg, err := syscall.Getpgid(child); err != nil || pg != leader {
		t.Errorf("child %d: process group %d (%v), want the leader's %d", child, pg, err, leader)
	}

	p.Stop()
	if !p.Exited() {
		t.Fatal("Stop returned before the leader exited")
	}
	lab.WaitFor(t, 5*time.Second, fmt.Sprintf("child %d of the stopped group to be gone", child), func() bool {
		return gone(child)
	})
	p.Stop() // a second Stop (and the cleanup's) does nothing
}

func TestRunReportsFailure(t *testing.T) {
	n := lab.NewNet(t)
	out, err := lab.Run(t, n.NS(), "sh", "-c", "echo oops; exit 3")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Run: want exit status 3, got %v", err)
	}
	if !strings.Contains(out, "oops") {
		t.Errorf("Run output = %q, want it to contain oops", out)
	}
}

func TestCheckCleanSeesLiveLab(t *testing.T) {
	n := lab.NewNet(t)
	p := lab.Start(t, n.NS(), "sleep", "300")
	err := lab.CheckClean()
	if err == nil || !strings.Contains(err.Error(), n.NS()) || !strings.Contains(err.Error(), strconv.Itoa(p.Cmd.Process.Pid)) {
		t.Fatalf("CheckClean with a live lab = %v, want it to name namespace %s and process group %d", err, n.NS(), p.Cmd.Process.Pid)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the goroutine, to test
// how helpers fail.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// expectFatal runs f with a fatalRecorder in its own goroutine and returns the Fatalf message
// ("" if f returned normally).
func expectFatal(t *testing.T, f func(tb testing.TB)) string {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(rec)
	}()
	<-done
	return rec.msg
}

func TestAssetsMissingSaysMakeAssets(t *testing.T) {
	t.Setenv("PXED_LAB", t.TempDir())
	msg := expectFatal(t, func(tb testing.TB) { lab.Assets(tb) })
	if !strings.Contains(msg, "make assets") {
		t.Fatalf("Assets with an empty PXED_LAB: message %q, want it to say to run `make assets`", msg)
	}
}

// TestVMTimeoutAndWaitSerialReport boots a UEFI machine with no server on the network and a short
// lifetime: QEMU must be killed at the timeout and WaitSerial must fail at once, showing the
// firmware's serial output.
func TestVMTimeoutAndWaitSerialReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts QEMU; not in -short")
	}
	n := lab.NewNet(t)
	vm := lab.StartVM(t, n, lab.VMOptions{Firmware: lab.UEFI, Timeout: 30 * time.Second})
	lab.WaitFor(t, 30*time.Second, "OVMF to start PXE on the serial console", func() bool {
		return strings.Contains(vm.Serial(), "PXE")
	})
	lab.WaitFor(t, time.Minute, "QEMU to be killed at the VM timeout", vm.Proc.Exited)
	if d := time.Since(vm.Started); d < 30*time.Second {
		t.Errorf("QEMU exited after %v, before its 30s timeout", d)
	}
	msg := expectFatal(t, func(tb testing.TB) { vm.WaitSerial(tb, "NEVER-PRINTED", time.Minute) })
	if !strings.Contains(msg, "QEMU exited") {
		t.Errorf("WaitSerial after QEMU exited: message %q, want it to say QEMU exited", msg)
	}
	if vm.Serial() == "" || !strings.Contains(msg, tail(vm.Serial(), 200)) {
		t.Errorf("WaitSerial message lacks the end of the serial log %q:\n%s", tail(vm.Serial(), 200), msg)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestDnsmasqPXEBoot proves the harness end to end against a known-good PXE server: dnsmasq
// (DHCP + TFTP) hands the firmware iPXE, then hands iPXE an HTTP script served by busybox httpd,
// which loads the lab kernel and initramfs; the machine must print lab.BootMarker.
func TestDnsmasqPXEBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU machines (about a minute each under TCG); not in -short")
	}
	for _, bin := range []string{"/usr/sbin/dnsmasq", "/bin/busybox"} {
		if _, err := os.Stat(bin); err != nil {
			t.Skipf("needs %s (apt-get install dnsmasq-base busybox-static)", bin)
		}
	}
	kernel, initrd := lab.Assets(t)
	n := lab.NewNet(t)

	// TFTP root: the iPXE network bootstrap programs (Debian package ipxe).
	tftpRoot := t.TempDir()
	for _, f := range []string{"undionly.kpxe", "snponly.efi"} {
		src := filepath.Join("/usr/lib/ipxe", f)
		if _, err := os.Stat(src); err != nil {
			t.Skipf("needs %s (apt-get install ipxe)", src)
		}
		copyFile(t, src, filepath.Join(tftpRoot, f))
	}

	// HTTP root: kernel, initrd and the iPXE script.
	httpRoot := t.TempDir()
	copyFile(t, kernel, filepath.Join(httpRoot, "vmlinuz"))
	copyFile(t, initrd, filepath.Join(httpRoot, "initrd.img"))
	script := "#!ipxe\nkernel http://192.0.2.1:8080/vmlinuz initrd=initrd.img console=ttyS0\n" +
		"initrd http://192.0.2.1:8080/initrd.img\nboot\n"
	if err := os.WriteFile(filepath.Join(httpRoot, "boot.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.Start(t, n.NS(), "/bin/busybox", "httpd", "-f", "-v", "-p", "192.0.2.1:8080", "-h", httpRoot)
	lab.WaitFor(t, 10*time.Second, "busybox httpd to serve boot.ipxe", func() bool {
		out, err := lab.Run(t, n.NS(), "/bin/busybox", "wget", "-q", "-O", "-", "http://192.0.2.1:8080/boot.ipxe")
		return err == nil && out == script
	})

	state := t.TempDir()
	dnsmasq := lab.Start(t, n.NS(), "/usr/sbin/dnsmasq", "-k",
		"--conf-file=/dev/null", "--port=0", "--user=root", "--group=root",
		"--interface="+n.Bridge(), "--bind-interfaces",
		"--pid-file="+filepath.Join(state, "dnsmasq.pid"),
		"--dhcp-leasefile="+filepath.Join(state, "leases"),
		"--log-facility=-", "--log-dhcp",
		"--dhcp-range=192.0.2.100,192.0.2.200,5m",
		"--enable-tftp", "--tftp-root="+tftpRoot,
		// RFC 4578 client architectures: 7 and 9 are EFI x64.
		"--dhcp-match=set:efi,option:client-arch,7",
		"--dhcp-match=set:efi,option:client-arch,9",
		"--dhcp-userclass=set:ipxe,iPXE",
		"--dhcp-boot=tag:!ipxe,tag:efi,snponly.efi",
		"--dhcp-boot=tag:!ipxe,tag:!efi,undionly.kpxe",
		"--dhcp-boot=tag:ipxe,http://192.0.2.1:8080/boot.ipxe",
	)
	lab.WaitFor(t, 10*time.Second, "dnsmasq to start", func() bool {
		return strings.Contains(dnsmasq.Output(), "TFTP root is") || dnsmasq.Exited()
	})
	if dnsmasq.Exited() {
		t.Fatalf("dnsmasq exited: %v\n%s", dnsmasq.Err(), dnsmasq.Output())
	}

	for _, tc := range []struct {
		fw      lab.Firmware
		mac     string
		nbpSent string // TFTP transfer dnsmasq must log; "" when the firmware is iPXE already
	}{
		{lab.UEFI, "52:54:00:00:02:01", "snponly.efi"},
		{lab.BIOS, "52:54:00:00:02:02", ""},
	} {
		t.Run(tc.fw.String(), func(t *testing.T) {
			vm := lab.StartVM(t, n, lab.VMOptions{Firmware: tc.fw, MAC: tc.mac, Timeout: 5 * time.Minute})
			vm.WaitSerial(t, lab.BootMarker, 4*time.Minute)
			t.Logf("%s: %s after %v", tc.fw, lab.BootMarker, time.Since(vm.Started).Round(100*time.Millisecond))
			lab.WaitFor(t, time.Minute, "the guest to power off (QEMU to exit)", vm.Proc.Exited)

			log := dnsmasq.Output()
			if !regexp.MustCompile(`DHCPACK\(br0\) 192\.0\.2\.[0-9]+ ` + tc.mac).MatchString(log) {
				t.Errorf("dnsmasq acknowledged no lease for %s", tc.mac)
			}
			if tc.nbpSent != "" && !strings.Contains(log, "/"+tc.nbpSent+" to 192.0.2.") {
				t.Errorf("dnsmasq did not log sending %s over TFTP", tc.nbpSent)
			}
			if !strings.Contains(vm.Serial(), "kernel=6.1.0") {
				t.Errorf("serial console lacks the kernel release after the marker")
			}
		})
	}
}

// gone reports whether pid no longer exists (or is a zombie, which holds no resources).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
