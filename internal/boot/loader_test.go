package boot

import (
	"net"
	"reflect"
	"strings"
	"testing"
)

func loaderConfig() *Config {
	c := testConfig()
	c.Profiles["grub"] = Profile{Kernel: "/srv/linux/vmlinuz", Initrds: []string{"/srv/linux/initrd.img"}, Cmdline: `console=ttyS0 quiet`, Loader: LoaderGRUB}
	c.Profiles["sb"] = Profile{Kernel: "/srv/linux/vmlinuz", Initrds: []string{"/srv/linux/initrd.img"}, Loader: LoaderGRUB, SecureBoot: true}
	c.Profiles["pxelinux"] = Profile{Kernel: "/srv/linux/vmlinuz", Initrds: []string{"/srv/linux/initrd.img", "/srv/extra.cpio"}, Cmdline: "console=ttyS0", Loader: LoaderPXELINUX}
	c.Profiles["grubbios"] = Profile{Kernel: "/srv/linux/vmlinuz", Loader: LoaderGRUB, BootFiles: map[string]string{"bios": "grub/i386-pc/core.0"}}
	c.Machines["52:54:00:00:00:21"] = "grub"
	c.Machines["52:54:00:00:00:22"] = "sb"
	c.Machines["52:54:00:00:00:23"] = "pxelinux"
	c.Machines["52:54:00:00:00:24"] = "grubbios"
	return c
}

var (
	macGRUB = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x21}
	macSB   = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x22}
	macPXL  = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x23}
	macGB   = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x24}
)

func TestDecideLoader(t *testing.T) {
	ipxe := func(mac net.HardwareAddr) Machine {
		return Machine{MAC: mac, Firmware: FirmwareIPXE, Arch: 0, HasArch: true, Class: "bios"}
	}
	httpM := func(mac net.HardwareAddr) Machine {
		return Machine{MAC: mac, Firmware: FirmwareHTTP, Arch: 16, HasArch: true, Class: "efi-x64"}
	}
	tests := []struct {
		name   string
		m      Machine
		action Action
		file   string
		loader Loader
		reason string
	}{
		{"GRUB, UEFI PXE: grubx64.efi from the machine directory", pxeMachine(macGRUB, 7, "efi-x64"), ServeNBP, "boot/52-54-00-00-00-21/grubx64.efi", LoaderGRUB, "efi-x64 PXE: grub over TFTP"},
		{"GRUB, Secure Boot, UEFI PXE: shim first", pxeMachine(macSB, 7, "efi-x64"), ServeNBP, "boot/52-54-00-00-00-22/shimx64.efi", LoaderGRUB, "shim (Secure Boot) then grub"},
		{"GRUB, Secure Boot, arm64: shimaa64", pxeMachine(macSB, 11, "efi-arm64"), ServeNBP, "boot/52-54-00-00-00-22/shimaa64.efi", LoaderGRUB, "shim"},
		{"GRUB, BIOS PXE: no GRUB NBP for BIOS unless configured", pxeMachine(macGRUB, 0, "bios"), Ignore, "", LoaderGRUB, "loader grub has no boot file for architecture bios (option 93 0): set boot_files.bios"},
		{"GRUB, BIOS PXE: the profile's boot_files.bios", pxeMachine(macGB, 0, "bios"), ServeNBP, "boot/52-54-00-00-00-24/grub/i386-pc/core.0", LoaderGRUB, "bios PXE: grub"},
		{"GRUB, UEFI HTTP boot: grubx64.efi over HTTP", httpM(macGRUB), ServeURL, "http://192.0.2.1:8080/boot/52-54-00-00-00-21/grubx64.efi", LoaderGRUB, "UEFI HTTP boot: grub"},
		{"PXELINUX, BIOS PXE: pxelinux.0 from the machine directory", pxeMachine(macPXL, 0, "bios"), ServeNBP, "boot/52-54-00-00-00-23/pxelinux.0", LoaderPXELINUX, "bios PXE: pxelinux over TFTP"},
		{"PXELINUX, UEFI PXE: syslinux.efi", pxeMachine(macPXL, 7, "efi-x64"), ServeNBP, "boot/52-54-00-00-00-23/syslinux.efi", LoaderPXELINUX, "pxelinux"},
		{"PXELINUX, unknown arch: ignored", pxeMachine(macPXL, 42, ""), Ignore, "", LoaderPXELINUX, "architecture unknown (option 93 42)"},
		{"PXELINUX, iPXE ROM: its script chains pxelinux.0", ipxe(macPXL), ServeScript, "http://192.0.2.1:8080/boot/52-54-00-00-00-23/script.ipxe", LoaderPXELINUX, "chains pxelinux"},
		{"iPXE profile unchanged", ipxe(macB), ServeScript, "http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe", LoaderIPXE, "iPXE: per-machine script"},
		{"iPXE profile, UEFI PXE: the iPXE NBP", pxeMachine(macB, 7, "efi-x64"), ServeNBP, "snponly.efi", "", "efi-x64 PXE"},
	}
	c := loaderConfig()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := c.Decide(tc.m, srv)
			if p.Action != tc.action || p.BootFile != tc.file || !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("Decide = %v %q (%s), want %v %q (reason containing %q)", p.Action, p.BootFile, p.Reason, tc.action, tc.file, tc.reason)
			}
			if tc.loader != "" && tc.loader != LoaderIPXE && p.Loader.Loader != tc.loader {
				t.Errorf("Plan.Loader = %+v, want %s", p.Loader, tc.loader)
			}
			if tc.loader == LoaderIPXE && p.Loader.Loader != "" {
				t.Errorf("Plan.Loader = %+v for an iPXE profile, want none", p.Loader)
			}
		})
	}
}

func TestConfigNames(t *testing.T) {
	m := Machine{MAC: macPXL, UUID: "8A0E9A4C2D1B4B6C9F0E1D2C3B4A5968"}
	tests := []struct {
		name string
		l    Loader
		m    Machine
		nbp  string
		want []string
	}{
		{"PXELINUX: UUID, MAC, default, next to pxelinux.0", LoaderPXELINUX, m, "boot/52-54-00-00-00-23/pxelinux.0", []string{
			"boot/52-54-00-00-00-23/pxelinux.cfg/8a0e9a4c-2d1b-4b6c-9f0e-1d2c3b4a5968",
			"boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23",
			"boot/52-54-00-00-00-23/pxelinux.cfg/default"}},
		{"PXELINUX at the root, no UUID", LoaderPXELINUX, Machine{MAC: macPXL}, "pxelinux.0", []string{"pxelinux.cfg/01-52-54-00-00-00-23", "pxelinux.cfg/default"}},
		{"GRUB: Debian's prefix /grub", LoaderGRUB, m, "boot/x/shimx64.efi", []string{"grub/grub.cfg", "grub/grub.cfg-01-52-54-00-00-00-23"}},
		{"iPXE: none", LoaderIPXE, m, "snponly.efi", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ConfigNames(tc.l, tc.m, tc.nbp); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ConfigNames = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseConfigPath(t *testing.T) {
	tests := []struct {
		path   string
		ok     bool
		loader Loader
		mac    string // "" for none
	}{
		{"pxelinux.cfg/01-52-54-00-00-00-23", true, LoaderPXELINUX, "52:54:00:00:00:23"},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23", true, LoaderPXELINUX, "52:54:00:00:00:23"},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/default", true, LoaderPXELINUX, "52:54:00:00:00:23"},
		{"pxelinux/pxelinux.cfg/01-52-54-00-00-00-23", true, LoaderPXELINUX, "52:54:00:00:00:23"},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-99", false, "", ""},
		{"pxelinux.cfg/default", false, "", ""},
		{"pxelinux.cfg/8a0e9a4c-2d1b-4b6c-9f0e-1d2c3b4a5968", false, "", ""},
		{"pxelinux.cfg/C000025", false, "", ""},
		{"pxelinux.cfg/01-52:54:00:00:00:23", false, "", ""},
		{"pxelinux.cfg/01-zz-54-00-00-00-23", false, "", ""},
		{"boot/52-54-00-00-00-23/sub/pxelinux.cfg/default", false, "", ""},
		{"grub/grub.cfg-01-52-54-00-00-00-21", true, LoaderGRUB, "52:54:00:00:00:21"},
		{"grub.cfg-01-52-54-00-00-00-21", true, LoaderGRUB, "52:54:00:00:00:21"},
		{"boot/52-54-00-00-00-21/grub.cfg", true, LoaderGRUB, "52:54:00:00:00:21"},
		{"boot/52-54-00-00-00-21/grub.cfg-01-52-54-00-00-00-22", false, "", ""},
		{"grub/grub.cfg", true, LoaderGRUB, ""},
		{"grub/x86_64-efi/grub.cfg", true, LoaderGRUB, ""},
		{"grub.cfg", true, LoaderGRUB, ""},
		{"grub/grub.cfg-8a0e9a4c-2d1b-4b6c-9f0e-1d2c3b4a5968", false, "", ""},
		{"grub/grub.cfg-C0000232", false, "", ""},
		{"boot/52-54-00-00-00-21/sub/grub.cfg", false, "", ""},
		{"boot/52-54-00-00-00-21/vmlinuz", false, "", ""},
		{"pxelinux.0", false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r, ok := ParseConfigPath(tc.path)
			mac := ""
			if r.MAC != nil {
				mac = Normalize(r.MAC)
			}
			if ok != tc.ok || r.Loader != tc.loader || mac != tc.mac {
				t.Errorf("ParseConfigPath = %+v %v, want %s %q %v", r, ok, tc.loader, tc.mac, tc.ok)
			}
		})
	}
}

func TestGRUBConfig(t *testing.T) {
	p := Profile{Name: "g", Kernel: "/srv/vmlinuz", Initrds: []string{"/srv/a.img", "/srv/b.cpio"}, Loader: LoaderGRUB,
		Cmdline: `console=ttyS0 root=/dev/nfs msg="a b" x=$y it's`}
	got, err := GRUBConfig(p, macGRUB)
	if err != nil {
		t.Fatal(err)
	}
	want := `# pxed: 52:54:00:00:00:21 boots profile g
set timeout=0
echo 'pxed: 52:54:00:00:00:21 boots profile g'
linux '/boot/52-54-00-00-00-21/vmlinuz' 'console=ttyS0' 'root=/dev/nfs' 'msg=a b' 'x=$y' 'it'\''s'
initrd '/boot/52-54-00-00-00-21/a.img' '/boot/52-54-00-00-00-21/b.cpio'
boot
`
	if got != want {
		t.Errorf("GRUBConfig:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(GRUBDispatcher(), `configfile "$prefix/grub.cfg-01-$m1-$m2-$m3-$m4-$m5-$m6"`) {
		t.Errorf("dispatcher does not load grub.cfg-01-<mac>:\n%s", GRUBDispatcher())
	}
}

func TestPXELINUXConfig(t *testing.T) {
	p := Profile{Name: "p", Kernel: "/srv/vmlinuz", Initrds: []string{"/srv/a.img", "/srv/b.cpio"}, Loader: LoaderPXELINUX, Cmdline: "console=ttyS0 panic=-1"}
	got, err := PXELINUXConfig(p, macPXL, "boot/52-54-00-00-00-23")
	if err != nil {
		t.Fatal(err)
	}
	want := `# pxed: 52:54:00:00:00:23 boots profile p
DEFAULT pxed
PROMPT 0
TIMEOUT 0
SAY pxed: 52:54:00:00:00:23 boots profile p
LABEL pxed
  KERNEL vmlinuz
  INITRD a.img,b.cpio
  APPEND console=ttyS0 panic=-1
`
	if got != want {
		t.Errorf("PXELINUXConfig in the machine directory:\n%s\nwant:\n%s", got, want)
	}
	got, _ = PXELINUXConfig(p, macPXL, ".")
	if !strings.Contains(got, "KERNEL ::boot/52-54-00-00-00-23/vmlinuz\n  INITRD ::boot/52-54-00-00-00-23/a.img,::boot/52-54-00-00-00-23/b.cpio\n") {
		t.Errorf("PXELINUXConfig from the root names files by their root path:\n%s", got)
	}
}

func TestLoaderConfigErrors(t *testing.T) {
	ok := Profile{Name: "ok", Kernel: "/k", Loader: LoaderPXELINUX}
	tests := []struct {
		name string
		p    Profile
		req  ConfigRequest
		err  string
	}{
		{"loader mismatch", ok, ConfigRequest{Loader: LoaderGRUB, MAC: macPXL}, `profile "ok" boots with loader pxelinux, not grub`},
		{"iPXE profile", Profile{Name: "i", Kernel: "/k"}, ConfigRequest{Loader: LoaderPXELINUX, MAC: macPXL}, "loader ipxe, not pxelinux"},
		{"no kernel", Profile{Name: "n", Image: "/x.iso", Loader: LoaderPXELINUX}, ConfigRequest{Loader: LoaderPXELINUX, MAC: macPXL}, "needs a kernel"},
		{"line break in the command line", Profile{Name: "b", Kernel: "/k", Cmdline: "a\nDEFAULT evil", Loader: LoaderPXELINUX}, ConfigRequest{Loader: LoaderPXELINUX, MAC: macPXL}, "line breaks"},
		{"comma in a file name", Profile{Name: "c", Kernel: "/k", Initrds: []string{"/a,b"}, Loader: LoaderPXELINUX}, ConfigRequest{Loader: LoaderPXELINUX, MAC: macPXL}, "comma"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoaderConfig(tc.p, tc.req, "pxelinux.cfg/01-52-54-00-00-00-23")
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("LoaderConfig error = %v, want %q", err, tc.err)
			}
		})
	}
	if s, err := LoaderConfig(Profile{}, ConfigRequest{Loader: LoaderGRUB}, "grub/grub.cfg"); err != nil || s != GRUBDispatcher() {
		t.Errorf("grub.cfg without a machine = %q, %v; want the dispatcher", s, err)
	}
}

func TestKernelArgs(t *testing.T) {
	for in, want := range map[string][]string{
		"":                            nil,
		"  console=ttyS0   quiet ":    {"console=ttyS0", "quiet"},
		`a="b c" "d e"=f g""h`:        {"a=b c", "d e=f", "gh"},
		"tab\tsep":                    {"tab", "sep"},
		`empty="" next`:               {"empty=", "next"},
		`unterminated="x y`:           {"unterminated=x y"},
		"ip=::::host:eth0:dhcp panic": {"ip=::::host:eth0:dhcp", "panic"},
	} {
		if got := KernelArgs(in); !reflect.DeepEqual(got, want) {
			t.Errorf("KernelArgs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChainLoaderScript(t *testing.T) {
	c := loaderConfig()
	p, _ := c.ProfileFor(macPXL)
	s, err := Script(p, srv, macPXL)
	if err != nil {
		t.Fatal(err)
	}
	want := "iseq ${platform} pcbios && chain http://192.0.2.1:8080/boot/52-54-00-00-00-23/pxelinux.0 ||\n" +
		"iseq ${platform} efi && iseq ${buildarch} x86_64 && chain http://192.0.2.1:8080/boot/52-54-00-00-00-23/syslinux.efi ||\n"
	if !strings.HasPrefix(s, "#!ipxe\n") || !strings.Contains(s, want) {
		t.Errorf("script:\n%s\nwant it to contain:\n%s", s, want)
	}
}

func TestResolve(t *testing.T) {
	c := loaderConfig()
	tests := []struct {
		path string
		kind PathKind
		mac  string
		rel  string // PathBootDir
		file string // PathProfile
	}{
		{"boot/52-54-00-00-00-23/pxelinux.cfg/01-52-54-00-00-00-23", PathGenerated, "52:54:00:00:00:23", "", ""},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/default", PathGenerated, "52:54:00:00:00:23", "", ""},
		{"pxelinux.cfg/01-52-54-00-00-00-23", PathGenerated, "52:54:00:00:00:23", "", ""},
		{"boot/52-54-00-00-00-23/vmlinuz", PathProfile, "52:54:00:00:00:23", "", "/srv/linux/vmlinuz"},
		{"boot/52-54-00-00-00-23/extra.cpio", PathProfile, "52:54:00:00:00:23", "", "/srv/extra.cpio"},
		{"boot/52-54-00-00-00-23/ldlinux.c32", PathBootDir, "52:54:00:00:00:23", "ldlinux.c32", ""},
		{"boot/52-54-00-00-00-23/pxelinux.0", PathBootDir, "52:54:00:00:00:23", "pxelinux.0", ""},
		{"boot/52-54-00-00-00-23/pxelinux.cfg/8a0e9a4c-2d1b-4b6c-9f0e-1d2c3b4a5968", PathBootDir, "52:54:00:00:00:23", "pxelinux.cfg/8a0e9a4c-2d1b-4b6c-9f0e-1d2c3b4a5968", ""},
		// An iPXE profile's machine: no generated PXELINUX file, the boot dir's (a static one) if any.
		{"pxelinux.cfg/01-52-54-00-ab-cd-ef", PathBootDir, "", "pxelinux.cfg/01-52-54-00-ab-cd-ef", ""},
		{"boot/52-54-00-00-00-21/grub.cfg", PathGenerated, "52:54:00:00:00:21", "", ""},
		{"grub/grub.cfg-01-52-54-00-00-00-22", PathGenerated, "52:54:00:00:00:22", "", ""},
		{"grub/grub.cfg", PathGenerated, "", "", ""},
		{"boot/52-54-00-00-00-22/grubx64.efi", PathBootDir, "52:54:00:00:00:22", "grubx64.efi", ""},
		// The grub profile's kernel is reached through its machines only.
		{"boot/52-54-00-00-00-21/vmlinuz", PathProfile, "52:54:00:00:00:21", "", "/srv/linux/vmlinuz"},
		{"boot/not-a-mac/vmlinuz", PathBootDir, "", "boot/not-a-mac/vmlinuz", ""},
		{"boot/52-54-00-00-00-21/", PathBootDir, "", "boot/52-54-00-00-00-21/", ""},
		{"undionly.kpxe", PathBootDir, "", "undionly.kpxe", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := c.Resolve(tc.path)
			mac := ""
			if r.MAC != nil {
				mac = Normalize(r.MAC)
			}
			if r.Kind != tc.kind || mac != tc.mac || r.Rel != tc.rel || r.File != tc.file {
				t.Errorf("Resolve = kind %d mac %q rel %q file %q, want kind %d mac %q rel %q file %q", r.Kind, mac, r.Rel, r.File, tc.kind, tc.mac, tc.rel, tc.file)
			}
		})
	}
	noGRUB := testConfig()
	if r := noGRUB.Resolve("grub/grub.cfg"); r.Kind != PathBootDir || r.Rel != "grub/grub.cfg" {
		t.Errorf("grub/grub.cfg with no GRUB profile = %+v, want the boot dir's", r)
	}
}
