package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateLoaderErrors(t *testing.T) {
	base := "interfaces: [lo]\nipxe_dir: {ipxe}\nboot_dir: {boot}\nprofiles:\n  linux:\n    kernel: {kernel}\n"
	tests := []struct {
		name  string
		yaml  string
		field string
		line  int
		fix   string
	}{
		{"unknown loader", base + "    loader: syslinux\n", "profiles.linux.loader", 7, "write one of ipxe, grub, pxelinux"},
		{"secure_boot with iPXE", base + "    secure_boot: true\n", "profiles.linux.secure_boot", 7, "secure_boot needs `loader: grub`"},
		{"secure_boot with PXELINUX", base + "    loader: pxelinux\n    secure_boot: true\n", "profiles.linux.secure_boot", 8, "write `loader: grub`"},
		{"loader and an iPXE script", base + "    loader: grub\n    script: chain x\n", "profiles.linux.script", 8, "remove script or the loader"},
		{"loader without kernel", "interfaces: [lo]\nipxe_dir: {ipxe}\nprofiles:\n  live:\n    image: {boot}/live.iso\n    loader: pxelinux\n", "profiles.live.kernel", 4, "write `kernel: /path/to/vmlinuz`"},
		{"line break in the command line", base + "    loader: pxelinux\n    cmdline: \"quiet\\nDEFAULT x\"\n", "profiles.linux", 5, "line breaks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			c, err := Load(l.write(t, tc.yaml))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			c.Defaults()
			var es Errors
			if err := c.Validate(); !errors.As(err, &es) {
				t.Fatalf("Validate = %v, want config.Errors", err)
			}
			if len(es) != 1 || es[0].Field != tc.field || es[0].Line != tc.line || !strings.Contains(es[0].Msg, tc.fix) {
				t.Errorf("Validate:\n%v\nwant one error at line %d, field %s, saying %q", es, tc.line, tc.field, tc.fix)
			}
		})
	}
}

func TestLoaderWarnings(t *testing.T) {
	l := newLab(t) // boot_dir has shimx64.efi only
	c, err := Load(l.write(t, `interfaces: [lo]
ipxe_dir: {ipxe}
boot_dir: {boot}
profiles:
  sb:
    kernel: {kernel}
    loader: grub
    secure_boot: true
  old:
    kernel: {kernel}
    loader: pxelinux
  linux:
    kernel: {kernel}
`))
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	got := strings.Join(c.LoaderWarnings(), "\n")
	for _, want := range []string{
		"profile sb: loader grub: grubx64.efi is not in boot_dir (Debian grub-efi-amd64-signed: /usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed): efi-x64 machines",
		"profile old: loader pxelinux: pxelinux.0 is not in boot_dir (Debian pxelinux: /usr/lib/PXELINUX/pxelinux.0): bios machines",
		"profile old: loader pxelinux: ldlinux.c32 is not in boot_dir",
		"profiles sb use loader grub in the ProxyDHCP role: GRUB takes its TFTP server from the DHCP server's ACK",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings do not say %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "shimx64.efi is not") || strings.Contains(got, "profile linux") {
		t.Errorf("warnings name a file that is there or an iPXE profile:\n%s", got)
	}
}
