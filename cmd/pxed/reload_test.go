package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/machinekey"
	"pxed/internal/tftp"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReload: a changed file is applied; a broken one is refused with
// file:line (log and config-reload event) and nothing is applied.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	writeFile(t, kernel, "k")
	file := filepath.Join(dir, "pxed.yaml")
	good := "dhcp:\n  mode: off\nipxe_dir: " + dir + "\nboot_files:\n  bios: vmlinuz\n  efi-x64: vmlinuz\nprofiles:\n  a:\n    kernel: " + kernel + "\n"
	writeFile(t, file, good)
	running, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	running.Defaults()
	if err := running.Validate(); err != nil {
		t.Fatal(err)
	}
	applied := make(chan *config.Config, 4)
	ev := &events.Log{}
	var logs strings.Builder
	r := &reloader{file: file, flags: &serverFlags{}, running: running, apply: func(c *config.Config) { applied <- c },
		log: newLogger(&config.Config{}, &logs), ev: ev, poll: 10 * time.Millisecond}

	writeFile(t, file, good+"  b:\n    kernel: "+kernel+"\n    cmdline: host={{.Hostname}}\n")
	if err := r.reload("SIGHUP"); err != nil {
		t.Fatal(err)
	}
	if c := <-applied; len(c.Profiles) != 2 {
		t.Fatalf("applied %d profiles, want 2", len(c.Profiles))
	}
	writeFile(t, file, good+"  b:\n    kernel: "+kernel+"\n    cmdline: host={{.Serial}}\n")
	err = r.reload("SIGHUP")
	if err == nil || !strings.Contains(err.Error(), file+":12: profiles.b.cmdline") {
		t.Fatalf("broken file: %v, want %s:12: profiles.b.cmdline", err, file)
	}
	if len(applied) != 0 {
		t.Fatal("a broken file was applied")
	}
	if !strings.Contains(logs.String(), "reload refused") || !strings.Contains(logs.String(), file+":12") {
		t.Errorf("log lacks the refusal with file:line:\n%s", logs.String())
	}
	tl := ev.Timeline("")
	if len(tl) != 2 || tl[1].Stage != events.StageConfigReload || !strings.Contains(tl[1].Detail, "refused") {
		t.Errorf("events %+v, want reloaded then refused", tl)
	}

	// A change of the file is noticed without a signal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.run(ctx)
	for r.stat(); ; {
		writeFile(t, file, good+"  c:\n    kernel: "+kernel+"\n")
		select {
		case c := <-applied:
			if _, ok := c.Profiles["c"]; !ok {
				t.Fatalf("applied %v, want profile c", c.Profiles)
			}
			return
		case <-time.After(50 * time.Millisecond):
			// The first write may land before run took the file's
			// time: write again (same content, new mtime).
		case <-time.After(30 * time.Second):
			t.Fatal("file change not reloaded")
		}
	}
}

// TestServeFilesWithoutProfile: `pxed serve --dhcp off --boot-dir DIR`
// without any profile serves the directory over HTTP and TFTP and
// answers no firmware (issue 11).
func TestServeFilesWithoutProfile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "hello.txt"), "hello\n")
	uc, err := net.ListenPacket("udp", "127.0.0.1:0") // a free port for TFTP
	if err != nil {
		t.Fatal(err)
	}
	tftpAddr := uc.LocalAddr().String()
	uc.Close()
	data := t.TempDir()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "--dhcp", "off", "--boot-dir", dir, "--tftp-addr", tftpAddr,
			"--http-addr", "127.0.0.1:0", "--data-dir", data}, io.Discard, pw)
		pw.Close()
	}()
	httpAddr := regexp.MustCompile(`http=(127\.0\.0\.1:\d+)`)
	sc := bufio.NewScanner(pr)
	addr := ""
	for sc.Scan() {
		if m := httpAddr.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "pxed serving") {
			addr = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		t.Fatalf("serve did not start (exit %d)", <-done)
	}
	resp, err := http.Get("http://" + addr + "/files/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello\n" {
		t.Errorf("GET /files/hello.txt: %d %q", resp.StatusCode, b)
	}
	key, err := machinekey.Load(data) // the machine's own URL, with its secret token
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("52:54:00:00:00:01")
	resp, err = http.Get("http://" + addr + "/boot/52-54-00-00-00-01/" + key.URLToken(mac) + "/script.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("a machine's script without profiles: %d, want 404", resp.StatusCode)
	}
	var got bytes.Buffer
	if _, err := (&tftp.Client{}).Get(context.Background(), netip.MustParseAddrPort(tftpAddr), "hello.txt", &got); err != nil || got.String() != "hello\n" {
		t.Errorf("TFTP hello.txt: %q, %v", got.String(), err)
	}
	p, _ := os.FindProcess(os.Getpid())
	_ = p.Signal(os.Interrupt)
	if code := <-done; code != exitOK {
		t.Errorf("exit %d", code)
	}
}
