package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// lab is a directory with what a good configuration points at: a kernel, an
// initrd, an iPXE directory with Debian's NBPs, and a boot directory.
type lab struct {
	dir, kernel, initrd, ipxe, boot string
}

func newLab(t *testing.T) lab {
	t.Helper()
	d := t.TempDir()
	l := lab{dir: d, kernel: filepath.Join(d, "vmlinuz"), initrd: filepath.Join(d, "initrd.img"),
		ipxe: filepath.Join(d, "ipxe"), boot: filepath.Join(d, "boot")}
	for _, dir := range []string{l.ipxe, l.boot} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{l.kernel, l.initrd, filepath.Join(l.ipxe, "undionly.kpxe"), filepath.Join(l.ipxe, "snponly.efi"),
		filepath.Join(l.boot, "shimx64.efi"), filepath.Join(l.boot, "live.iso")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// yaml fills in the lab's paths: {kernel}, {initrd}, {ipxe}, {boot}, {dir}.
func (l lab) yaml(s string) string {
	return strings.NewReplacer("{kernel}", l.kernel, "{initrd}", l.initrd, "{ipxe}", l.ipxe, "{boot}", l.boot, "{dir}", l.dir).Replace(s)
}

func (l lab) write(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(l.dir, "pxed.yaml")
	if err := os.WriteFile(f, []byte(l.yaml(text)), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

const goodYAML = `interfaces: [lo]
dhcp:
  mode: proxy
boot_dir: {boot}
ipxe_dir: {ipxe}
http_addr: 192.0.2.1:8080
boot_files:
  efi-arm64: ""
profiles:
  linux:
    kernel: {kernel}
    initrds:
      - {initrd}
    cmdline: console=ttyS0
  secure:
    kernel: {kernel}
    boot_files:
      efi-x64: shimx64.efi
default_profile: linux
machines:
  52:54:00:AB:CD:EF: secure
`

func TestGoodConfigLoadsClean(t *testing.T) {
	l := newLab(t)
	c, err := Load(l.write(t, goodYAML))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.File() != filepath.Join(l.dir, "pxed.yaml") {
		t.Errorf("File() = %q", c.File())
	}
	if got := c.Line("profiles.linux.kernel"); got != 11 {
		t.Errorf("Line(profiles.linux.kernel) = %d, want 11", got)
	}
	if got := c.Line("profiles.linux.initrds[0]"); got != 13 {
		t.Errorf("Line(profiles.linux.initrds[0]) = %d, want 13", got)
	}
	bc := c.Boot()
	if bc.Default != "linux" || bc.Machines["52:54:00:ab:cd:ef"] != "secure" {
		t.Errorf("Boot() default %q machines %v; want linux and the MAC in lower case", bc.Default, bc.Machines)
	}
	want := map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi", "efi-arm64": ""}
	if !reflect.DeepEqual(bc.BootFiles, want) {
		t.Errorf("Boot().BootFiles = %v, want %v", bc.BootFiles, want)
	}
	p := bc.Profiles["linux"]
	if p.Name != "linux" || p.Kernel != l.kernel || !reflect.DeepEqual(p.Initrds, []string{l.initrd}) || p.Cmdline != "console=ttyS0" {
		t.Errorf("Boot().Profiles[linux] = %+v", p)
	}
	if bc.Profiles["secure"].BootFiles["efi-x64"] != "shimx64.efi" {
		t.Errorf("profile boot_files lost: %+v", bc.Profiles["secure"])
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		msg  string
	}{
		{"unknown field", "interfaces: [lo]\ninterfacs: [eth0]\n", 2, "unknown field"},
		{"unknown nested field", "dhcp:\n  mode: proxy\n  rnage: x\n", 3, "unknown field"},
		{"bad YAML", "interfaces: [lo\nboot_dir: /srv\n", 0, ""},
		{"bad indentation", "dhcp:\n  mode: proxy\n mode: off\n", 0, ""},
		{"wrong type: list for a string", "dhcp:\n  mode: [proxy]\n", 2, "cannot unmarshal"},
		{"wrong type: string for a list", "profiles:\n  p:\n    initrds: /boot/initrd\n", 3, "cannot unmarshal"},
		{"wrong type: mapping for a string", "boot_dir:\n  a: b\n", 2, "cannot unmarshal"},
		{"limit duration not a duration", "limits:\n  http_idle_timeout: 30\n", 2, "write e.g. 30s"},
		{"limit duration negative", "limits:\n  tftp_queue_wait: -5s\n", 2, "is not a duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("pxed.yaml", []byte(tc.yaml))
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("Parse error = %v (%T), want config.Errors", err, err)
			}
			e := es[0]
			if e.File != "pxed.yaml" || e.Line == 0 || (tc.line != 0 && e.Line != tc.line) {
				t.Fatalf("error %q at %s:%d, want pxed.yaml:%d", e, e.File, e.Line, tc.line)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("error %q does not say %q", e, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), "pxed.yaml:") {
				t.Fatalf("error %q does not start with file:line", err)
			}
		})
	}
	t.Run("empty file parses", func(t *testing.T) {
		c, err := Parse("pxed.yaml", nil)
		if err != nil || c == nil {
			t.Fatalf("Parse(empty) = %v, %v", c, err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Load(missing) = %v, want ErrNotExist", err)
		}
	})
}

func TestValidateErrors(t *testing.T) {
	base := func(extra string) string {
		return "ipxe_dir: {ipxe}\nprofiles:\n  linux:\n    kernel: {kernel}\n" + extra
	}
	tests := []struct {
		name  string
		yaml  string
		field string
		line  int    // 0: not from the file
		fix   string // substring of the message: what to write
	}{
		{"missing interface", base(""), "interfaces", 0, "write `interfaces: [eth1]`"},
		{"interface that does not exist", "interfaces:\n  - lo\n  - pxed-nope0\n" + base(""), "interfaces[1]", 3, "does not exist on this host"},
		{"bad mode", "interfaces: [lo]\ndhcp:\n  mode: relay\n" + base(""), "dhcp.mode", 3, "write proxy, server, boot-server or off"},
		{"server mode without range", "interfaces: [lo]\ndhcp:\n  mode: server\n" + base(""), "dhcp.range", 2, "write `range: 192.0.2.100-192.0.2.200`"},
		{"bad range: reversed", "interfaces: [lo]\ndhcp:\n  mode: server\n  range: 192.0.2.200-192.0.2.100\n" + base(""), "dhcp.range", 4, "first address is after the last"},
		{"bad range: IPv6", "interfaces: [lo]\ndhcp:\n  mode: server\n  range: 2001:db8::1-2001:db8::9\n" + base(""), "dhcp.range", 4, "IPv4"},
		// the dhcp.range key is absent: the error points at its parent dhcp:
		{"missing kernel file", "interfaces: [lo]\nipxe_dir: {ipxe}\nprofiles:\n  linux:\n    kernel: {dir}/nope\n", "profiles.linux.kernel", 5, "write the path of an existing file"},
		{"kernel is a directory", "interfaces: [lo]\nipxe_dir: {ipxe}\nprofiles:\n  linux:\n    kernel: {dir}\n", "profiles.linux.kernel", 5, "is not a file"},
		{"missing initrd file", "interfaces: [lo]\n" + base("    initrds:\n      - {initrd}\n      - {dir}/nope.img\n"), "profiles.linux.initrds[1]", 8, "does not exist"},
		{"profile without kernel or script", "interfaces: [lo]\nipxe_dir: {ipxe}\nprofiles:\n  empty:\n    cmdline: quiet\n", "profiles.empty", 4, "write `kernel: /path/to/vmlinuz`"},
		{"missing image file", "interfaces: [lo]\n" + base("    image: {dir}/nope.iso\n"), "profiles.linux.image", 6, "write the path of an existing ISO or disk image"},
		{"image is a directory", "interfaces: [lo]\n" + base("    image: {boot}\n"), "profiles.linux.image", 6, "not a regular file"},
		{"image neither .iso nor .img", "interfaces: [lo]\n" + base("    image: {boot}/shimx64.efi\n"), "profiles.linux.image", 6, "name the image NAME.iso (a CD/DVD image) or NAME.img"},
		{"bad unknown_machines", "interfaces: [lo]\nunknown_machines: approve\n" + base(""), "unknown_machines", 2, "write boot (boot every machine), hold"},
		{"selector of an undefined profile", "interfaces: [lo]\nselectors:\n  - profile: nope\n    arch: bios\n" + base(""), "selectors[0].profile", 3, `profile "nope" is not defined`},
		{"selector with a bad arch", "interfaces: [lo]\nselectors:\n  - profile: linux\n    arch: sparc\n" + base(""), "selectors[0].arch", 4, "unknown architecture class"},
		{"selector with a bad MAC prefix", "interfaces: [lo]\nselectors:\n  - profile: linux\n    mac_prefix: 5g:54\n" + base(""), "selectors[0].mac_prefix", 4, "write whole bytes"},
		{"cmdline template with an unknown field", "interfaces: [lo]\n" + base("    cmdline: host={{.Serial}}\n"), "profiles.linux.cmdline", 6, "can't evaluate field Serial"},
		{"script template that does not parse", "interfaces: [lo]\n" + base("    script: \"chain {{.ServerURL\"\n"), "profiles.linux.script", 6, "template"},
		{"kernel and initrd with one base name", "interfaces: [lo]\n" + base("    initrds: [{dir}/ipxe/../vmlinuz]\n"), "profiles.linux", 4, "distinct base names"},
		{"unknown class in boot_files", "interfaces: [lo]\nboot_files:\n  efi-sparc: x.efi\n" + base(""), "boot_files.efi-sparc", 3, "write one of bios, efi-ia32, efi-x64"},
		{"unknown class in profile boot_files", "interfaces: [lo]\n" + base("    boot_files:\n      sparc: x.efi\n"), "profiles.linux.boot_files.sparc", 7, "unknown architecture class"},
		{"boot file missing from ipxe_dir", "interfaces: [lo]\nboot_files:\n  bios: ipxe.pxe\n" + base(""), "boot_files.bios", 3, "install Debian package ipxe"},
		{"default boot file missing from ipxe_dir", "interfaces: [lo]\nipxe_dir: {dir}/empty\nboot_files:\n  bios: \"\"\nprofiles:\n  linux:\n    kernel: {kernel}\n", "boot_files.efi-x64", 3, "set ipxe_dir/--ipxe-dir"},
		{"profile boot file missing", "interfaces: [lo]\n" + base("    boot_files:\n      efi-x64: grubx64.efi\n"), "profiles.linux.boot_files.efi-x64", 7, "not found"},
		{"undefined default profile", "interfaces: [lo]\ndefault_profile: rescue\n" + base(""), "default_profile", 2, `profile "rescue" is not defined`},
		{"machine with bad MAC", "interfaces: [lo]\nmachines:\n  not-a-mac: linux\n" + base(""), "machines.not-a-mac", 3, "write aa:bb:cc:dd:ee:ff"},
		{"machine with undefined profile", "interfaces: [lo]\nmachines:\n  52:54:00:12:34:56: rescue\n" + base(""), "machines.52:54:00:12:34:56", 3, `profile "rescue" is not defined`},
		{"boot_dir not a directory", "interfaces: [lo]\nboot_dir: {kernel}\n" + base(""), "boot_dir", 2, "create it"},
		{"bad tftp_addr", "interfaces: [lo]\ntftp_addr: 69\n" + base(""), "tftp_addr", 2, `":69"`},
		{"bad log_format", "interfaces: [lo]\nlog_format: xml\n" + base(""), "log_format", 2, "write text or json"},
		{"bad log_level", "interfaces: [lo]\nlog_level: loud\n" + base(""), "log_level", 2, "write debug, info, warn or error"},
		{"limit out of range", "interfaces: [lo]\nlimits:\n  http_connections: 2\n" + base(""), "limits.http_connections", 3, "write a number from 8 to 100000"},
		{"limit duration out of range", "interfaces: [lo]\nlimits:\n  tftp_max_timeout: 300s\n" + base(""), "limits.tftp_max_timeout", 3, "write a duration from 1s to 4m15s"},
		{"RA prefix not IPv6", "interfaces: [lo]\nrouter_advertisements:\n  enabled: true\n  prefixes: [192.0.2.0/24]\n" + base(""), "router_advertisements.prefixes[0]", 4, "write e.g. 2001:db8:0:1::/64"},
		{"RA interval too short", "interfaces: [lo]\nrouter_advertisements:\n  interval: 1s\n" + base(""), "router_advertisements.interval", 3, "from 3s to 30m"},
		{"bad api_auth", "interfaces: [lo]\napi_auth: maybe\n" + base(""), "api_auth", 2, "write auto"},
		{"bad machine_urls", "interfaces: [lo]\nmachine_urls: secret\n" + base(""), "machine_urls", 2, "write token"},
		{"api_tls not a certificate", "interfaces: [lo]\napi_addr: \":8443\"\napi_tls:\n  cert: {kernel}\n  key: {kernel}\n" + base(""), "api_tls", 3, "cannot load the certificate"},
		{"api_tls half given", "interfaces: [lo]\napi_addr: \":8443\"\napi_tls:\n  cert: {kernel}\n" + base(""), "api_tls", 3, "give both cert and key"},
		{"https_boot without a certificate", "interfaces: [lo]\nhttps_boot:\n  addr: \":4433\"\n" + base(""), "https_boot", 2, "no certificate"},
		{"bad api_addr", "interfaces: [lo]\napi_addr: 8443\n" + base(""), "api_addr", 2, `":8443"`},
		{"api_auth_exempt under /api", "interfaces: [lo]\napi_auth_exempt: [/api/machines]\n" + base(""), "api_auth_exempt[0]", 2, "outside /api/"},
		{"per-client limit above the total", "interfaces: [lo]\nlimits:\n  tftp_transfers: 10\n  tftp_transfers_per_client: 20\n" + base(""), "limits.tftp_transfers_per_client", 4, "write at most 10"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			file := l.write(t, tc.yaml)
			c, err := Load(file)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			c.Defaults()
			err = c.Validate()
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Validate = %v, want config.Errors", err)
			}
			var e *Error
			for _, x := range es {
				if x.Field == tc.field {
					e = x
				}
			}
			if e == nil {
				t.Fatalf("no error for field %q in:\n%v", tc.field, err)
			}
			if e.Line != tc.line {
				t.Errorf("error %q at line %d, want %d", e, e.Line, tc.line)
			}
			// A field the file lacks still names the file: the fix goes there.
			wantFile := file
			if e.File != wantFile {
				t.Errorf("error %q in file %q, want %q", e, e.File, wantFile)
			}
			if !strings.Contains(e.Msg, l.yaml(tc.fix)) {
				t.Errorf("error %q does not say %q", e, tc.fix)
			}
			if len(es) != 1 {
				t.Errorf("want exactly one mistake, got:\n%v", err)
			}
		})
	}
}

func TestImageOnlyProfile(t *testing.T) {
	l := newLab(t)
	c, err := Load(l.write(t, "interfaces: [lo]\nipxe_dir: {ipxe}\ndefault_profile: live\nprofiles:\n  live:\n    image: {boot}/live.iso\n"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := c.Boot().Profiles["live"].Image; got != filepath.Join(l.boot, "live.iso") {
		t.Errorf("boot profile image %q", got)
	}
}

func TestValidateModeOffNeedsNoInterface(t *testing.T) {
	l := newLab(t)
	c, err := Parse("pxed.yaml", []byte(l.yaml("dhcp:\n  mode: off\nipxe_dir: {ipxe}\nprofiles:\n  p:\n    script: exit\n")))
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "pxed.yaml", Line: 3, Field: "dhcp.mode", Msg: "bad"}, "pxed.yaml:3: dhcp.mode: bad"},
		{Error{Field: "interfaces", Msg: "none"}, "flags: interfaces: none"},
		{Error{File: "pxed.yaml", Line: 1, Msg: "bad yaml"}, "pxed.yaml:1: bad yaml"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	var c Config
	c.Profiles = map[string]Profile{"only": {Kernel: "/k"}}
	c.BootFiles = map[string]string{"bios": ""} // explicitly disabled stays disabled
	c.Defaults()
	if c.DHCP.Mode != ModeProxy || c.TFTPAddr != ":69" || c.HTTPAddr != ":8080" || c.IPXEDir != "/usr/lib/ipxe" ||
		c.LogFormat != "text" || c.LogLevel != "info" {
		t.Errorf("Defaults: %+v", c)
	}
	if want := map[string]string{"bios": "", "efi-x64": "snponly.efi"}; !reflect.DeepEqual(c.BootFiles, want) {
		t.Errorf("BootFiles = %v, want %v", c.BootFiles, want)
	}
	if c.Default != "only" {
		t.Errorf("Default = %q, want the only profile", c.Default)
	}

	two := Config{Profiles: map[string]Profile{"a": {}, "b": {}}, DHCP: DHCP{Mode: ModeServer}, HTTPAddr: "off"}
	two.Defaults()
	if two.Default != "" || two.DHCP.Mode != ModeServer || two.HTTPAddr != "off" {
		t.Errorf("Defaults changed set fields or picked a default among two profiles: %+v", two)
	}
	if !reflect.DeepEqual(two.BootFiles, DefaultBootFiles) {
		t.Errorf("BootFiles = %v, want %v", two.BootFiles, DefaultBootFiles)
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in          string
		first, last string
		err         string
	}{
		{"192.0.2.100-192.0.2.200", "192.0.2.100", "192.0.2.200", ""},
		{" 192.0.2.100 - 192.0.2.100 ", "192.0.2.100", "192.0.2.100", ""},
		{"192.0.2.100", "", "", "not FIRST-LAST"},
		{"192.0.2.200-192.0.2.100", "", "", "first address is after the last"},
		{"192.0.2.1-2001:db8::1", "", "", "IPv4"},
		{"a-b", "", "", "IPv4"},
		{"", "", "", "not FIRST-LAST"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			f, l, err := ParseRange(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRange error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || f != netip.MustParseAddr(tc.first) || l != netip.MustParseAddr(tc.last) {
				t.Fatalf("ParseRange = %v, %v, %v", f, l, err)
			}
		})
	}
}

func TestFindBootFile(t *testing.T) {
	l := newLab(t)
	if err := os.WriteFile(filepath.Join(l.boot, "snponly.efi"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Config{BootDir: l.boot, IPXEDir: l.ipxe}
	tests := []struct {
		name, in, want string
	}{
		{"boot_dir first", "snponly.efi", filepath.Join(l.boot, "snponly.efi")},
		{"then ipxe_dir", "undionly.kpxe", filepath.Join(l.ipxe, "undionly.kpxe")},
		{"leading slash", "/undionly.kpxe", filepath.Join(l.ipxe, "undionly.kpxe")},
		{"missing", "nope.efi", ""},
		{"directory is not a file", "../boot", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.FindBootFile(tc.in)
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Fatalf("FindBootFile(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestSharedPort: lockstep TFTP transfers share one port per local address
// unless tftp_shared_port is false.
func TestSharedPort(t *testing.T) {
	l := newLab(t)
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"", true},
		{"tftp_shared_port: true\n", true},
		{"tftp_shared_port: false\n", false},
	} {
		c, err := Load(l.write(t, goodYAML+tc.line))
		if err != nil {
			t.Fatalf("%q: Load: %v", tc.line, err)
		}
		if got := c.SharedPort(); got != tc.want {
			t.Errorf("%q: SharedPort() = %v, want %v", tc.line, got, tc.want)
		}
	}
}
