package boot

import (
	"net/netip"
	"strings"
	"testing"
)

func TestScript(t *testing.T) {
	tests := []struct {
		name    string
		p       Profile
		want    []string // lines the script must contain, in order
		not     []string // substrings it must not contain
		wantErr string
	}{
		{"kernel line carries initrd=NAME for each initrd", Profile{Name: "linux", Kernel: "/srv/vmlinuz",
			Initrds: []string{"/srv/a/initrd.img", "/srv/b/firmware.cpio"}, Cmdline: "console=ttyS0 quiet"},
			[]string{
				"#!ipxe",
				"echo pxed: 52:54:00:ab:cd:ef boots profile linux",
				"kernel http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/vmlinuz initrd=initrd.img initrd=firmware.cpio console=ttyS0 quiet || goto failed",
				"initrd http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/initrd.img || goto failed",
				"initrd http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/firmware.cpio || goto failed",
				"boot || goto failed",
				":failed",
			}, []string{"/srv/"}, ""},
		{"kernel without initrd or cmdline", Profile{Name: "k", Kernel: "vmlinuz"},
			[]string{"#!ipxe", "kernel http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/vmlinuz || goto failed", "boot || goto failed"},
			[]string{"initrd"}, ""},
		{"Windows-style path gives its base name", Profile{Name: "w", Kernel: `C:\boot\vmlinuz`},
			[]string{"kernel http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/vmlinuz || goto failed"}, nil, ""},
		{"custom script: ${base} and ${mac} substituted, #!ipxe added", Profile{Name: "c",
			Script: "chain ${base}/menu.ipxe?mac=${mac}\n"},
			[]string{"#!ipxe", "chain http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/menu.ipxe?mac=52:54:00:ab:cd:ef"}, []string{"${"}, ""},
		{"custom script keeps its own #!ipxe once", Profile{Name: "c", Script: "#!ipxe\nshell\n"},
			[]string{"#!ipxe", "shell"}, nil, ""},
		{"custom script wins over kernel", Profile{Name: "c", Kernel: "/srv/vmlinuz", Script: "exit"},
			[]string{"#!ipxe", "exit"}, []string{"kernel"}, ""},
		{"duplicate base names refused", Profile{Name: "dup", Kernel: "/a/vmlinuz", Initrds: []string{"/b/initrd", "/c/initrd"}},
			nil, nil, `two files named "initrd"`},
		{"kernel named like an initrd refused", Profile{Name: "dup", Kernel: "/a/x", Initrds: []string{"/b/x"}},
			nil, nil, `two files named "x"`},
		{"file named script.ipxe refused", Profile{Name: "s", Kernel: "/a/script.ipxe"}, nil, nil, `two files named "script.ipxe"`},
		{"neither kernel nor script", Profile{Name: "none"}, nil, nil, "neither kernel nor script"},
		{"image only: iPXE sanboots it", Profile{Name: "iso", Image: "/srv/images/live.iso"},
			[]string{"#!ipxe", "sanboot --no-describe http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/live.iso || goto failed", ":failed"},
			[]string{"kernel", "/srv/"}, ""},
		{"kernel wins over image for iPXE", Profile{Name: "both", Kernel: "/srv/vmlinuz", Image: "/srv/live.iso"},
			[]string{"kernel http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/vmlinuz || goto failed"}, []string{"sanboot", "live.iso"}, ""},
		{"image named like the kernel refused", Profile{Name: "dup", Kernel: "/a/boot", Image: "/b/boot"}, nil, nil, `two files named "boot"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Script(tc.p, srv, macB)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Script error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Script: %v", err)
			}
			if !strings.HasPrefix(got, "#!ipxe\n") {
				t.Fatalf("script does not start with #!ipxe:\n%s", got)
			}
			if strings.Count(got, "#!ipxe") != 1 {
				t.Fatalf("script has several #!ipxe lines:\n%s", got)
			}
			lines := strings.Split(got, "\n")
			i := 0
			for _, w := range tc.want {
				for i < len(lines) && lines[i] != w {
					i++
				}
				if i == len(lines) {
					t.Fatalf("script lacks line %q (in order):\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Fatalf("script contains %q:\n%s", n, got)
				}
			}
		})
	}
}

func TestResolveFile(t *testing.T) {
	p := Profile{Name: "linux", Kernel: "/srv/k/vmlinuz", Initrds: []string{"/srv/i/initrd.img", "/srv/i/extra.cpio"}}
	tests := []struct {
		name string
		p    Profile
		in   string
		file string
		kind FileKind
		ok   bool
	}{
		{"kernel", p, "vmlinuz", "/srv/k/vmlinuz", FileKernel, true},
		{"first initrd", p, "initrd.img", "/srv/i/initrd.img", FileInitrd, true},
		{"second initrd", p, "extra.cpio", "/srv/i/extra.cpio", FileInitrd, true},
		{"unknown name", p, "passwd", "", 0, false},
		{"script is not a file", p, "script.ipxe", "", 0, false},
		{"full path is not a name", p, "/srv/k/vmlinuz", "", 0, false},
		{"traversal is not a name", p, "../vmlinuz", "", 0, false},
		{"profile without kernel", Profile{Script: "exit"}, "vmlinuz", "", 0, false},
		{"profile with duplicate names resolves nothing", Profile{Kernel: "/a/x", Initrds: []string{"/b/x"}}, "x", "", 0, false},
		{"image beside a kernel", Profile{Kernel: "/a/vmlinuz", Image: "/i/live.iso"}, "live.iso", "/i/live.iso", FileImage, true},
		{"image alone", Profile{Image: "/i/disk.img"}, "disk.img", "/i/disk.img", FileImage, true},
		{"image alone has no kernel", Profile{Image: "/i/disk.img"}, "vmlinuz", "", 0, false},
		{"image named like an initrd resolves nothing", Profile{Kernel: "/a/k", Initrds: []string{"/b/x"}, Image: "/c/x"}, "x", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file, kind, ok := ResolveFile(tc.p, tc.in)
			if file != tc.file || kind != tc.kind || ok != tc.ok {
				t.Fatalf("ResolveFile(%q) = %q, %v, %v; want %q, %v, %v", tc.in, file, kind, ok, tc.file, tc.kind, tc.ok)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	tests := []struct {
		name   string
		s      Server
		script string
		file   string
	}{
		{"IPv4 with port 8080", Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080},
			"http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe", "http://192.0.2.1:8080/files/snponly.efi"},
		{"IPv4 port 80 omitted", Server{IP: netip.MustParseAddr("198.51.100.2"), HTTPPort: 80},
			"http://198.51.100.2/boot/52-54-00-ab-cd-ef/script.ipxe", "http://198.51.100.2/files/snponly.efi"},
		{"IPv4 port 0 omitted", Server{IP: netip.MustParseAddr("198.51.100.2")},
			"http://198.51.100.2/boot/52-54-00-ab-cd-ef/script.ipxe", "http://198.51.100.2/files/snponly.efi"},
		{"RFC 3986 §3.2.2 IPv6 in brackets", Server{IP: netip.MustParseAddr("2001:db8::1"), HTTPPort: 8080},
			"http://[2001:db8::1]:8080/boot/52-54-00-ab-cd-ef/script.ipxe", "http://[2001:db8::1]:8080/files/snponly.efi"},
		{"IPv6 port 80", Server{IP: netip.MustParseAddr("2001:db8::2"), HTTPPort: 80},
			"http://[2001:db8::2]/boot/52-54-00-ab-cd-ef/script.ipxe", "http://[2001:db8::2]/files/snponly.efi"},
		{"IPv4-mapped IPv6 written as IPv4", Server{IP: netip.MustParseAddr("::ffff:192.0.2.1"), HTTPPort: 8080},
			"http://192.0.2.1:8080/boot/52-54-00-ab-cd-ef/script.ipxe", "http://192.0.2.1:8080/files/snponly.efi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ScriptURL(tc.s, macB); got != tc.script {
				t.Errorf("ScriptURL = %q, want %q", got, tc.script)
			}
			if got := FileURL(tc.s, "/snponly.efi"); got != tc.file {
				t.Errorf("FileURL = %q, want %q", got, tc.file)
			}
		})
	}
}

func TestTFTPURL(t *testing.T) {
	tests := []struct {
		name string
		s    Server
		file string
		want string
	}{
		{"RFC 5970 §3.1 IPv6 in brackets", Server{IP: netip.MustParseAddr("2001:db8::1")}, "snponly.efi", "tftp://[2001:db8::1]/snponly.efi"},
		{"leading slash not doubled", Server{IP: netip.MustParseAddr("2001:db8::1")}, "/boot/shimx64.efi", "tftp://[2001:db8::1]/boot/shimx64.efi"},
		{"IPv4", Server{IP: netip.MustParseAddr("192.0.2.1")}, "undionly.kpxe", "tftp://192.0.2.1/undionly.kpxe"},
		{"port 69 omitted", Server{IP: netip.MustParseAddr("2001:db8::1"), TFTPPort: 69}, "a.efi", "tftp://[2001:db8::1]/a.efi"},
		{"another port kept", Server{IP: netip.MustParseAddr("2001:db8::1"), TFTPPort: 1069}, "a.efi", "tftp://[2001:db8::1]:1069/a.efi"},
		{"zone dropped", Server{IP: netip.MustParseAddr("fe80::1%eth0")}, "a.efi", "tftp://[fe80::1]/a.efi"},
		{"IPv4-mapped written as IPv4", Server{IP: netip.MustParseAddr("::ffff:192.0.2.1")}, "a.efi", "tftp://192.0.2.1/a.efi"},
		{"RFC 3986 escapes a space and a percent", Server{IP: netip.MustParseAddr("2001:db8::1")}, "my boot%.efi", "tftp://[2001:db8::1]/my%20boot%25.efi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := TFTPURL(tc.s, tc.file); got != tc.want {
				t.Fatalf("TFTPURL = %q, want %q", got, tc.want)
			}
		})
	}
}
