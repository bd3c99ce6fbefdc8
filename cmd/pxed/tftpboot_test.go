package main

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/tftp"
)

// TestMachineTFTP: over TFTP a machine's directory holds its generated
// loader configuration, its profile's files and the boot directory's
// files, as under HTTP /boot/<mac>/.
func TestMachineTFTP(t *testing.T) {
	dir := t.TempDir()
	bootDir := filepath.Join(dir, "boot")
	for f, body := range map[string]string{"vmlinuz": "KERNEL", "boot/ldlinux.c32": "LDLINUX", "boot/pxelinux.0": "PXELINUX"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bc := &boot.Config{
		Profiles: map[string]boot.Profile{
			"p": {Name: "p", Kernel: filepath.Join(dir, "vmlinuz"), Cmdline: "console=ttyS0", Loader: boot.LoaderPXELINUX},
			"i": {Name: "i", Kernel: filepath.Join(dir, "vmlinuz")},
		},
		Machines: map[string]string{"52:54:00:00:00:23": "p", "52:54:00:00:00:01": "i"},
	}
	log := &events.Log{}
	var n loaderCounts
	h := machineTFTP(bc, log, log.MACForIP, &n, 8080, tftp.Dir(bootDir))
	client := netip.MustParseAddrPort("192.0.2.50:2000")
	tests := []struct {
		file string
		body string // substring; "" wants file not found
	}{
		{"boot/52-54-00-00-00-23/pxelinux.0", "PXELINUX"},
		{"boot/52-54-00-00-00-23/ldlinux.c32", "LDLINUX"},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23", "KERNEL vmlinuz\n  APPEND console=ttyS0\n"},
		{"/boot/52-54-00-00-00-23/pxelinux.cfg/default", "boots profile p"},
		{"pxelinux.cfg/01-52-54-00-00-00-23", "KERNEL ::boot/52-54-00-00-00-23/vmlinuz"},
		{"boot/52-54-00-00-00-23/vmlinuz", "KERNEL"},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-01", ""},
		{"boot/52-54-00-00-00-01/pxelinux.cfg/01-52-54-00-00-00-01", ""},
		{"boot/52-54-00-00-00-99/ldlinux.c32", ""},
		{"ldlinux.c32", "LDLINUX"},
		{"vmlinuz", ""},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			checkTFTP(t, h, tftp.Request{Filename: tc.file, Client: client}, tc.body, tftp.ErrNotFound)
		})
	}
	if got := n.tftp.Load(); got != 3 {
		t.Errorf("loader configurations counted: %d, want 3", got)
	}
	if tl := log.Timeline("192.0.2.50"); len(tl) == 0 || tl[len(tl)-1].Stage != events.StageLoaderConfig {
		t.Errorf("no loader-config event: %+v", tl)
	}
}

// checkTFTP asks h for req and checks that the file it opens holds body
// or, when body is "", that h refuses it with refusal.
func checkTFTP(t *testing.T, h tftp.Handler, req tftp.Request, body string, refusal error) {
	t.Helper()
	f, size, err := h(req)
	if body == "" {
		if !errors.Is(err, refusal) {
			t.Fatalf("err = %v, want %v", err, refusal)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil || !strings.Contains(string(b), body) {
		t.Fatalf("read %q, %v; want %q", b, err, body)
	}
}

// TestMachineTFTPServerURL: a template in a profile whose loader
// configuration is fetched over TFTP sees the server as the address the
// request reached, with the HTTP port ({{.ServerURL}} was empty once).
func TestMachineTFTPServerURL(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("KERNEL"), 0o644); err != nil {
		t.Fatal(err)
	}
	bc := &boot.Config{
		Profiles: map[string]boot.Profile{"p": {Name: "p", Kernel: filepath.Join(dir, "vmlinuz"), Loader: boot.LoaderPXELINUX,
			Cmdline: "console=ttyS0 url={{.ServerURL}}/install"}},
		Machines: map[string]string{"52:54:00:00:00:23": "p"},
	}
	log := &events.Log{}
	var n loaderCounts
	h := machineTFTP(bc, log, log.MACForIP, &n, 8081, tftp.Dir(dir))
	name := "boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23"
	for local, want := range map[string]string{
		"192.0.2.1":        "url=http://192.0.2.1:8081/install",
		"::ffff:192.0.2.1": "url=http://192.0.2.1:8081/install",
		"2001:db8::1":      "url=http://[2001:db8::1]:8081/install",
		"0.0.0.0":          "url=/install", // destination unknown: no server to name
	} {
		t.Run(local, func(t *testing.T) {
			req := tftp.Request{Filename: name, Client: netip.MustParseAddrPort("192.0.2.50:2000"), Local: netip.MustParseAddr(local)}
			checkTFTP(t, h, req, want, nil)
		})
	}
}
