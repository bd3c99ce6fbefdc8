package httpboot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"pxed/internal/boot"
	"pxed/internal/events"
)

// TestMachineDirectory: a name under /boot/<mac>/ that is neither the
// script nor a profile file comes from the boot directory (PXELINUX
// chained from iPXE asks for ldlinux.c32 next to its URL); a loader's
// configuration is generated for the machine the path names, and for
// no other.
func TestMachineDirectory(t *testing.T) {
	f := newFixture(t, false)
	if err := os.WriteFile(filepath.Join(f.bootDir, "ldlinux.c32"), []byte("LDLINUX"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.h.Boot.Snapshot().Profiles["pxelinux"] = boot.Profile{Name: "pxelinux", Kernel: filepath.Join(f.dir, "vmlinuz"),
		Initrds: []string{filepath.Join(f.dir, "initrd.img")}, Cmdline: "console=ttyS0", Loader: boot.LoaderPXELINUX}
	f.h.Boot.Snapshot().Machines["52:54:00:00:00:23"] = "pxelinux"
	const pxl = "/boot/52-54-00-00-00-23"
	tests := []struct {
		name  string
		path  string
		code  int
		body  string // substring
		stage events.Stage
	}{
		{"loader file next to pxelinux.0 falls back to the boot dir", pxl + "/ldlinux.c32", 200, "LDLINUX", events.StageHTTP},
		{"the same for an iPXE profile's machine", knownPath + "/ldlinux.c32", 200, "LDLINUX", events.StageHTTP},
		{"nested names fall back too", knownPath + "/sub/grubx64.efi", 200, "grub", events.StageHTTP},
		{"generated PXELINUX config by MAC", pxl + "/pxelinux.cfg/01-52-54-00-00-00-23", 200, "KERNEL vmlinuz\n  INITRD initrd.img\n  APPEND console=ttyS0\n", events.StageLoaderConfig},
		{"generated PXELINUX default in the machine's directory", pxl + "/pxelinux.cfg/default", 200, "boots profile pxelinux", events.StageLoaderConfig},
		{"UUID name: not found, PXELINUX moves on", pxl + "/pxelinux.cfg/8a0e9a4c-2d1b-4b6c-9f0e-1d2c3b4a5968", 404, "", events.StageHTTPError},
		{"another machine's config through this directory: not found", pxl + "/pxelinux.cfg/01-52-54-00-12-34-56", 404, "", events.StageHTTPError},
		{"an iPXE profile gets no generated PXELINUX config", knownPath + "/pxelinux.cfg/01-52-54-00-12-34-56", 404, "", events.StageHTTPError},
		{"kernel still the profile's", pxl + "/vmlinuz", 200, "KERNEL0123", events.StageKernel},
		{"unknown machine: nothing", "/boot/52-54-00-99-99-99/ldlinux.c32", 404, "no profile", events.StageHTTPError},
		{"no escape from the boot dir", knownPath + "/escape-rel", 403, "", events.StageHTTPError},
		{"encoded traversal refused", knownPath + "/..%2f..%2fsecret", 400, "", events.StageHTTPError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, "GET", tc.path, nil)
			if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.body) || strings.Contains(w.Body.String(), "SECRET") {
				t.Fatalf("GET %s: %d %q, want %d with %q", tc.path, w.Code, w.Body, tc.code, tc.body)
			}
			mac, _ := parseMAC(strings.Split(tc.path, "/")[2])
			if e := lastEvent(t, f.log, boot.Normalize(mac)); e.Stage != tc.stage {
				t.Errorf("event %+v, want stage %s", e, tc.stage)
			}
		})
	}
}
