package config

import (
	"errors"
	"strings"
	"testing"
)

func TestMulticastConfig(t *testing.T) {
	const prof = "ipxe_dir: {ipxe}\nprofiles:\n  linux:\n    kernel: {kernel}\n    multicast: true\n"
	t.Run("defaults and files", func(t *testing.T) {
		l := newLab(t)
		c, err := Load(l.write(t, "interfaces: [lo]\ntftp_multicast:\n  enabled: true\n  files: [\"*.wim\"]\n  pxe:\n    enabled: true\n"+prof))
		if err != nil {
			t.Fatal(err)
		}
		c.Defaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		rfc, pxe := c.MulticastFiles()
		if !rfc("boot.wim") || !rfc("undionly.kpxe") || rfc("vmlinuz") {
			t.Error("RFC 2090 files: want the pattern and the multicast profile's boot files only")
		}
		if pxe == nil || !pxe("undionly.kpxe") || !pxe("snponly.efi") || pxe("boot.wim") {
			t.Error("PXE MTFTP files: want the multicast profile's boot files")
		}
		if g := c.TFTPMulticast.MulticastGroups().String(); g != DefaultMulticastGroups {
			t.Errorf("groups %s, want %s", g, DefaultMulticastGroups)
		}
		if cp, sp := c.TFTPMulticast.MTFTPPorts(); cp != 1758 || sp != 1759 {
			t.Errorf("ports %d %d", cp, sp)
		}
		if li, de := c.TFTPMulticast.MTFTPWaits(); li != 2 || de != 2 {
			t.Errorf("waits %d %d", li, de)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		l := newLab(t)
		c, err := Load(l.write(t, "interfaces: [lo]\nipxe_dir: {ipxe}\nprofiles:\n  linux:\n    kernel: {kernel}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if rfc, pxe := c.MulticastFiles(); rfc != nil || pxe != nil {
			t.Error("multicast on without tftp_multicast")
		}
	})
	for _, tc := range []struct{ name, yaml, field, fix string }{
		{"groups not multicast", "tftp_multicast:\n  enabled: true\n  groups: 192.0.2.0/24\n", "tftp_multicast.groups", "239.255.70.0/24"},
		{"listen not whole seconds", "tftp_multicast:\n  enabled: true\n  pxe:\n    listen: 1500ms\n", "tftp_multicast.pxe.listen", "whole seconds"},
		{"bad port", "tftp_multicast:\n  enabled: true\n  port: 70000\n", "tftp_multicast.port", "1..65535"},
		{"profile multicast with the section off", "", "profiles.linux.multicast", "tftp_multicast: {enabled: true}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			c, err := Load(l.write(t, "interfaces: [lo]\n"+tc.yaml+prof))
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			var es Errors
			if err := c.Validate(); !errors.As(err, &es) {
				t.Fatalf("Validate = %v", err)
			}
			for _, e := range es {
				if e.Field == tc.field && strings.Contains(e.Msg, tc.fix) && e.Line > 0 {
					return
				}
			}
			t.Errorf("no error for %s saying %q at a line: %v", tc.field, tc.fix, es)
		})
	}
}
