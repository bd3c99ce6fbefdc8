package boot

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	macA = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56} // in Machines → "rescue"
	macB = net.HardwareAddr{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef} // unknown: default profile
	macS = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x05} // in Machines → "secure"
	macX = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x09} // in Machines → undefined profile
	macI = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x0a} // in Machines → "iso" (kernel and image)
	macJ = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x0b} // in Machines → "isoonly" (image only)
	srv  = Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
)

func testConfig() *Config {
	return &Config{
		BootFiles: map[string]string{
			"bios":      "undionly.kpxe",
			"efi-x64":   "snponly.efi",
			"efi-arm64": "arm64/snp.efi",
			"efi-ia32":  "",
		},
		Profiles: map[string]Profile{
			"linux":   {Kernel: "/srv/linux/vmlinuz", Initrds: []string{"/srv/linux/initrd.img"}, Cmdline: "console=ttyS0"},
			"rescue":  {Name: "rescue", Kernel: "/srv/rescue/vmlinuz"},
			"secure":  {Kernel: "/srv/linux/vmlinuz", BootFiles: map[string]string{"efi-x64": "shimx64.efi"}},
			"empty":   {},
			"iso":     {Kernel: "/srv/linux/vmlinuz", Image: "/srv/images/live.iso"},
			"isoonly": {Image: "/srv/images/disk.img"},
		},
		Default: "linux",
		Machines: map[string]string{
			"52:54:00:12:34:56": "rescue",
			"52:54:00:00:00:05": "secure",
			"52:54:00:00:00:09": "missing",
			"52:54:00:00:00:0a": "iso",
			"52:54:00:00:00:0b": "isoonly",
		},
	}
}

func pxeMachine(mac net.HardwareAddr, arch uint16, class string) Machine {
	return Machine{MAC: mac, Firmware: FirmwarePXE, Arch: arch, HasArch: true, Class: class}
}

func TestDecide(t *testing.T) {
	noArm := testConfig()
	delete(noArm.BootFiles, "efi-arm64")
	noDefault := testConfig()
	noDefault.Default = ""
	emptyDefault := testConfig()
	emptyDefault.Default = "empty"

	scriptB := "http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe"
	tests := []struct {
		name    string
		cfg     *Config
		m       Machine
		action  Action
		file    string
		vclass  string
		profile string
		reason  string // substring of Plan.Reason
	}{
		// PXE ROMs: the NBP of their class over TFTP (PXE 2.1 §2.2.3).
		{"BIOS PXE arch 0 gets undionly.kpxe", nil, pxeMachine(macB, 0, "bios"), ServeNBP, "undionly.kpxe", "PXEClient", "linux", "bios PXE"},
		{"UEFI x64 arch 7 gets the efi-x64 NBP", nil, pxeMachine(macB, 7, "efi-x64"), ServeNBP, "snponly.efi", "PXEClient", "linux", "efi-x64 PXE"},
		{"RFC 4578 arch 9 (EFI BC) gets the efi-x64 NBP", nil, pxeMachine(macB, 9, "efi-x64"), ServeNBP, "snponly.efi", "PXEClient", "linux", "efi-x64"},
		{"UEFI arm64 arch 11 gets the arm64 NBP when configured", nil, pxeMachine(macB, 11, "efi-arm64"), ServeNBP, "arm64/snp.efi", "PXEClient", "linux", "efi-arm64"},
		{"UEFI arm64 arch 11 ignored when no arm64 NBP", noArm, pxeMachine(macB, 11, "efi-arm64"), Ignore, "", "", "linux", "no boot file for architecture efi-arm64 (option 93 11)"},
		{"ia32 arch 6 with an empty boot file is ignored", nil, pxeMachine(macB, 6, "efi-ia32"), Ignore, "", "", "linux", "no boot file for architecture efi-ia32 (option 93 6)"},
		{"unknown arch 42 ignored with reason", nil, pxeMachine(macB, 42, ""), Ignore, "", "", "linux", "no boot file for architecture unknown (option 93 42)"},
		{"PXE client without option 93 ignored", nil, Machine{MAC: macB, Firmware: FirmwarePXE}, Ignore, "", "", "linux", "(option 93 none)"},
		// UEFI 2.10 §24.7: HTTP boot gets a URL and vendor class HTTPClient.
		{"HTTP boot arch 16 gets a URL", nil, Machine{MAC: macB, Firmware: FirmwareHTTP, Arch: 16, HasArch: true, Class: "efi-x64"},
			ServeURL, "http://192.0.2.1:8080/files/snponly.efi", "HTTPClient", "linux", "UEFI HTTP boot"},
		{"HTTP boot arm64 arch 19 gets the arm64 URL", nil, Machine{MAC: macB, Firmware: FirmwareHTTP, Arch: 19, HasArch: true, Class: "efi-arm64"},
			ServeURL, "http://192.0.2.1:8080/files/arm64/snp.efi", "HTTPClient", "linux", "UEFI HTTP boot"},
		// UEFI 2.10 §24.7.2: a profile's image goes to HTTP boot clients,
		// whatever their architecture (the image is the operator's choice).
		{"HTTP boot of a profile with an image gets the image URL", nil, Machine{MAC: macI, Firmware: FirmwareHTTP, Arch: 16, HasArch: true, Class: "efi-x64"},
			ServeURL, "http://192.0.2.1:8080/boot/52-54-00-00-00-0a/live.iso", "HTTPClient", "iso", "image live.iso as a RAM disk"},
		{"HTTP boot of an image needs no NBP for the class", nil, Machine{MAC: macJ, Firmware: FirmwareHTTP, Arch: 42, HasArch: true},
			ServeURL, "http://192.0.2.1:8080/boot/52-54-00-00-00-0b/disk.img", "HTTPClient", "isoonly", "image disk.img"},
		{"PXE of a profile with an image still gets the NBP", nil, pxeMachine(macI, 7, "efi-x64"), ServeNBP, "snponly.efi", "PXEClient", "iso", "efi-x64 PXE"},
		{"iPXE of a profile with only an image gets its script (sanboot)", nil, Machine{MAC: macJ, Firmware: FirmwareIPXE},
			ServeScript, "http://192.0.2.1:8080/boot/52-54-00-00-00-0b/script.ipxe", "PXEClient", "isoonly", "iPXE"},
		{"HTTP boot with unknown class ignored", nil, Machine{MAC: macB, Firmware: FirmwareHTTP, Arch: 42, HasArch: true}, Ignore, "", "", "linux", "no boot file"},
		// iPXE gets its script URL, never the NBP again (chainload loop).
		{"iPXE on BIOS gets the script URL", nil, Machine{MAC: macB, Firmware: FirmwareIPXE, Arch: 0, HasArch: true, Class: "bios"},
			ServeScript, scriptB, "PXEClient", "linux", "iPXE"},
		{"iPXE on UEFI gets the script URL", nil, Machine{MAC: macB, Firmware: FirmwareIPXE, Arch: 7, HasArch: true, Class: "efi-x64"},
			ServeScript, scriptB, "PXEClient", "linux", "iPXE"},
		{"iPXE with unknown arch still gets its script", nil, Machine{MAC: macB, Firmware: FirmwareIPXE},
			ServeScript, scriptB, "PXEClient", "linux", "iPXE"},
		{"iPXE with a profile without kernel or script ignored", emptyDefault, Machine{MAC: macB, Firmware: FirmwareIPXE, Class: "bios"},
			Ignore, "", "", "empty", "neither a kernel, a script nor an image"},
		// Who is answered at all.
		{"non-PXE client ignored", nil, Machine{MAC: macB, Arch: 7, HasArch: true, Class: "efi-x64"}, Ignore, "", "", "", "not a network boot client"},
		{"no chaddr ignored", nil, Machine{Firmware: FirmwarePXE, Arch: 0, HasArch: true, Class: "bios"}, Ignore, "", "", "", "no client hardware address"},
		// Profiles.
		{"per-machine profile wins over default", nil, pxeMachine(macA, 0, "bios"), ServeNBP, "undionly.kpxe", "PXEClient", "rescue", "bios"},
		{"per-machine profile for iPXE", nil, Machine{MAC: macA, Firmware: FirmwareIPXE}, ServeScript,
			"http://192.0.2.1:8080/boot/52-54-00-12-34-56/script.ipxe", "PXEClient", "rescue", "iPXE"},
		{"no default profile: unknown machine ignored", noDefault, pxeMachine(macB, 7, "efi-x64"), Ignore, "", "", "", "no profile for 52:54:00:ab:cd:ef and no default profile"},
		{"no default profile: listed machine still boots", noDefault, pxeMachine(macA, 7, "efi-x64"), ServeNBP, "snponly.efi", "PXEClient", "rescue", "efi-x64"},
		{"machine pointing at an undefined profile ignored", nil, pxeMachine(macX, 7, "efi-x64"), Ignore, "", "", "", "no profile"},
		{"profile BootFiles override the class NBP", nil, pxeMachine(macS, 7, "efi-x64"), ServeNBP, "shimx64.efi", "PXEClient", "secure", "efi-x64"},
		{"profile BootFiles override for HTTP boot", nil, Machine{MAC: macS, Firmware: FirmwareHTTP, Arch: 16, HasArch: true, Class: "efi-x64"},
			ServeURL, "http://192.0.2.1:8080/files/shimx64.efi", "HTTPClient", "secure", "HTTP"},
		{"profile override falls back to Config for other classes", nil, pxeMachine(macS, 0, "bios"), ServeNBP, "undionly.kpxe", "PXEClient", "secure", "bios"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg == nil {
				cfg = testConfig()
			}
			p := cfg.Decide(tc.m, srv)
			if p.Action != tc.action || p.BootFile != tc.file || p.VendorClass != tc.vclass || p.Profile != tc.profile {
				t.Fatalf("Decide = %+v\nwant action %v file %q class %q profile %q", p, tc.action, tc.file, tc.vclass, tc.profile)
			}
			if p.Reason == "" || !strings.Contains(p.Reason, tc.reason) {
				t.Fatalf("Reason %q does not contain %q", p.Reason, tc.reason)
			}
			if tc.m.Firmware == FirmwareIPXE && p.BootFile != "" && !strings.HasSuffix(p.BootFile, "/script.ipxe") {
				t.Fatalf("iPXE was given %q, not its script: chainload loop", p.BootFile)
			}
		})
	}
}

func TestProfileFor(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name string
		mac  net.HardwareAddr
		want string
		ok   bool
	}{
		{"listed machine", macA, "rescue", true},
		{"unlisted machine gets default, named from its key", macB, "linux", true},
		{"listed machine with undefined profile", macX, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := cfg.ProfileFor(tc.mac)
			if ok != tc.ok || p.Name != tc.want {
				t.Fatalf("ProfileFor(%s) = %q, %v; want %q, %v", tc.mac, p.Name, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for f, want := range map[Firmware]string{FirmwareUnknown: "unknown", FirmwarePXE: "pxe", FirmwareHTTP: "uefi-http", FirmwareIPXE: "ipxe"} {
		if got := f.String(); got != want {
			t.Errorf("Firmware(%d).String() = %q, want %q", int(f), got, want)
		}
	}
	for a, want := range map[Action]string{Ignore: "ignore", ServeNBP: "nbp", ServeURL: "http-url", ServeScript: "ipxe-script"} {
		if got := a.String(); got != want {
			t.Errorf("Action(%d).String() = %q, want %q", int(a), got, want)
		}
	}
}

func TestClasses(t *testing.T) {
	got := strings.Join(testConfig().Classes(), ",")
	if want := "bios,efi-arm64,efi-x64"; got != want {
		t.Fatalf("Classes() = %q, want %q (sorted, without empty boot files)", got, want)
	}
}
