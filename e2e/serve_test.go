package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/lab"
)

// TestServeConfig runs `pxed serve --config` in a lab and checks, with
// clients nobody here wrote (curl, tftp-hpa, bash /dev/udp), what a user relies
// on: the per-machine script, files with Range over HTTP, the boot directory
// over TFTP, malformed DHCP packets dropped and counted, and the metrics.
func TestServeConfig(t *testing.T) {
	for _, bin := range []string{"curl", "tftp", "bash"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt-get install curl tftp-hpa)", bin)
		}
	}
	kernel, initrd := lab.Assets(t)
	n := lab.NewNet(t)
	client := n.AddHost(t, "client", mustPrefix("192.0.2.50/24"))

	bootDir := t.TempDir()
	payload := bytes.Repeat([]byte("pxed-boot-dir-file\n"), 5000)
	if err := os.WriteFile(filepath.Join(bootDir, "grubx64.efi"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	cfg := fmt.Sprintf(`# lab configuration
interfaces: [%s]
dhcp:
  mode: proxy
boot_dir: %s
data_dir: %s
tftp_addr: "192.0.2.1:69"
http_addr: "192.0.2.1:8080"
log_level: debug
default_profile: linux
profiles:
  linux:
    kernel: %s
    initrds: [%s]
    cmdline: console=ttyS0
  grub:
    script: |
      #!ipxe
      chain ${base}/../../../files/grubx64.efi
machines:
  "52:54:00:00:04:02": grub
`, n.Bridge(), bootDir, dataDir, kernel, initrd)
	cfgFile := filepath.Join(t.TempDir(), "pxed.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, n.NS(), pxedBin, "serve", "--config", cfgFile)
	lab.WaitFor(t, 15*time.Second, "pxed to serve HTTP", func() bool {
		_, err := lab.Run(t, client.NS, "curl", "-sf", "http://192.0.2.1:8080/healthz")
		return err == nil || p.Exited()
	})
	if p.Exited() {
		t.Fatalf("pxed exited: %v\n%s", p.Err(), p.Output())
	}
	get := func(args ...string) string {
		t.Helper()
		out, err := lab.Run(t, client.NS, "curl", append([]string{"-sS", "-f"}, args...)...)
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return out
	}

	// Each machine's URLs carry its secret token (machine_urls: token).
	m1 := "http://192.0.2.1:8080" + machinePath(t, dataDir, "52:54:00:00:04:01", "")
	m2 := "http://192.0.2.1:8080" + machinePath(t, dataDir, "52:54:00:00:04:02", "")
	t.Run("script", func(t *testing.T) {
		s := get(m1 + "script.ipxe")
		for _, want := range []string{"#!ipxe", "kernel " + m1 + "vmlinuz initrd=initrd.img console=ttyS0",
			"initrd " + m1 + "initrd.img"} {
			if !strings.Contains(s, want) {
				t.Errorf("script lacks %q:\n%s", want, s)
			}
		}
		if s := get(m2 + "script.ipxe"); !strings.Contains(s, "chain "+m2+"../../../files/grubx64.efi") {
			t.Errorf("per-machine profile script not used:\n%s", s)
		}
	})
	t.Run("kernel with range", func(t *testing.T) {
		k, err := os.ReadFile(kernel)
		if err != nil {
			t.Fatal(err)
		}
		part := get("-r", "100-199", m1+"vmlinuz")
		if part != string(k[100:200]) {
			t.Errorf("Range 100-199 returned %d bytes, not the kernel's bytes 100..199", len(part))
		}
		hdr := get("-I", m1+"vmlinuz")
		if !strings.Contains(hdr, fmt.Sprintf("Content-Length: %d", len(k))) {
			t.Errorf("HEAD lacks Content-Length %d:\n%s", len(k), hdr)
		}
	})
	t.Run("another machine's script without its token", func(t *testing.T) {
		out, err := lab.Run(t, client.NS, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://192.0.2.1:8080/boot/52-54-00-00-04-01/script.ipxe")
		if err != nil || out != "403" {
			t.Errorf("GET a machine's script by its MAC alone: %q (%v), want 403", out, err)
		}
	})
	t.Run("boot dir over tftp and http", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "got")
		out, err := lab.Run(t, client.NS, "tftp", "192.0.2.1", "-m", "binary", "-c", "get", "grubx64.efi", dst)
		if err != nil {
			t.Fatalf("tftp-hpa get: %v\n%s", err, out)
		}
		got, _ := os.ReadFile(dst)
		if sha256.Sum256(got) != sha256.Sum256(payload) {
			t.Errorf("tftp-hpa got %d bytes, not the file's %d", len(got), len(payload))
		}
		if body := get("http://192.0.2.1:8080/files/grubx64.efi"); body != string(payload) {
			t.Errorf("HTTP /files/ returned %d bytes, want %d", len(body), len(payload))
		}
		out, err = lab.Run(t, client.NS, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is",
			"http://192.0.2.1:8080/files/../../../etc/passwd")
		if err != nil || out == "200" {
			t.Errorf("traversal over HTTP answered %q (%v), want a refusal", out, err)
		}
	})
	t.Run("malformed dhcp counted", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if out, err := lab.Run(t, client.NS, "bash", "-c", "printf 'not a dhcp packet' > /dev/udp/192.0.2.1/67"); err != nil {
				t.Logf("nc: %v %s", err, out)
			}
		}
		re := regexp.MustCompile(`(?m)^pxed_dhcp_malformed_total (\d+)`)
		lab.WaitFor(t, 10*time.Second, "pxed_dhcp_malformed_total to reach 3", func() bool {
			m := re.FindStringSubmatch(get("http://192.0.2.1:8080/metrics"))
			return m != nil && m[1] == "3"
		})
		if p.Exited() {
			t.Fatalf("pxed exited after malformed packets: %v", p.Err())
		}
	})
}
