package boot

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

type fleetMap map[string]Entry

func (f fleetMap) Lookup(mac string) (Entry, bool) { e, ok := f[mac]; return e, ok }

func TestCheckTemplate(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"plain", "console=ttyS0", true},
		{"facts", "hostname={{.Hostname}} mac={{.MAC}} rack={{.Labels.rack}} {{.CheckinURL}}", true},
		{"syntax", "x={{.MAC", false},
		{"unknown field", "x={{.Serial}}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckTemplate(tc.text); (err == nil) != tc.ok {
				t.Errorf("CheckTemplate(%q) = %v, want ok %v", tc.text, err, tc.ok)
			}
		})
	}
}

func TestScriptTemplate(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:00:00:07")
	c := &Config{Fleet: fleetMap{"52:54:00:00:00:07": {Hostname: "web7", Labels: map[string]string{"rack": "r2"}, UUID: "u"}},
		CheckinToken: func(string) string { return "tok" }}
	s := Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	p := Profile{Name: "x", Kernel: "/k", Cmdline: "host={{.Hostname}} rack={{.Labels.rack}} ci={{.CheckinURL}}"}
	p, err := c.Expand(p, s, mac)
	if err != nil {
		t.Fatal(err)
	}
	want := "host=web7 rack=r2 ci=http://192.0.2.1:8080/api/machines/52:54:00:00:00:07/checkin?token=tok"
	if p.Cmdline != want {
		t.Errorf("cmdline %q, want %q", p.Cmdline, want)
	}
	// A label map value that is not a string fails at render time: the
	// machine gets the error script.
	if _, err := Render("{{index .Labels 1}}", c.FactsFor(mac, s)); err == nil {
		t.Error("Render with a bad index: no error")
	}
	if s := ErrorScript(mac, "bad\ntemplate"); !strings.HasPrefix(s, "#!ipxe\necho pxed: cannot boot 52:54:00:00:00:07: bad template") {
		t.Errorf("ErrorScript = %q", s)
	}
}

func TestFleetDecide(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:00:00:09")
	key := Normalize(mac)
	s := Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	base := func() *Config {
		return &Config{BootFiles: map[string]string{"bios": "undionly.kpxe"}, Default: "def",
			Profiles: map[string]Profile{"def": {Kernel: "/k"}, "rescue": {Kernel: "/r"}, "sel": {Kernel: "/s"}}}
	}
	pxeM := Machine{MAC: mac, Firmware: FirmwarePXE, Class: "bios", HasArch: true}
	ipxeM := Machine{MAC: mac, Firmware: FirmwareIPXE, Class: "bios", HasArch: true}
	for _, tc := range []struct {
		name    string
		mod     func(c *Config)
		m       Machine
		action  Action
		profile string
	}{
		{"default", func(c *Config) {}, ipxeM, ServeScript, "def"},
		{"selector by class", func(c *Config) {
			c.Selectors = []Selector{{Class: "efi-x64", Profile: "rescue"}, {Class: "bios", Profile: "sel"}}
		}, ipxeM, ServeScript, "sel"},
		{"selector by label", func(c *Config) {
			c.Selectors = []Selector{{Labels: map[string]string{"role": "db"}, Profile: "sel"}}
			c.Fleet = fleetMap{key: {Labels: map[string]string{"role": "db"}}}
		}, ipxeM, ServeScript, "sel"},
		{"selector by MAC prefix", func(c *Config) {
			c.Selectors = []Selector{{MACPrefix: "52:54:01", Profile: "rescue"}, {MACPrefix: "52:54:00", Profile: "sel"}}
		}, ipxeM, ServeScript, "sel"},
		{"runtime profile over selector", func(c *Config) {
			c.Selectors = []Selector{{MACPrefix: "52:54", Profile: "sel"}}
			c.Fleet = fleetMap{key: {Profile: "rescue"}}
		}, ipxeM, ServeScript, "rescue"},
		{"boot-once over runtime profile", func(c *Config) {
			c.Fleet = fleetMap{key: {Profile: "def", BootOnce: &BootOnce{Profile: "rescue", Then: "local"}}}
		}, ipxeM, ServeScript, "rescue"},
		{"local, iPXE: exit script", func(c *Config) { c.Fleet = fleetMap{key: {Profile: LocalProfile}} }, ipxeM, ServeScript, "(local)"},
		{"local, PXE ROM: not answered", func(c *Config) { c.Fleet = fleetMap{key: {Profile: LocalProfile}} }, pxeM, Ignore, "(local)"},
		{"hold, PXE ROM: iPXE", func(c *Config) { c.Unknown = UnknownHold }, pxeM, ServeNBP, "(hold)"},
		{"hold, iPXE: waiting script", func(c *Config) { c.Unknown = UnknownHold }, ipxeM, ServeScript, "(hold)"},
		{"hold, approved", func(c *Config) { c.Unknown = UnknownHold; c.Fleet = fleetMap{key: {State: StateApproved}} }, ipxeM, ServeScript, "def"},
		{"hold, listed under machines", func(c *Config) { c.Unknown = UnknownHold; c.Machines = map[string]string{key: "rescue"} }, ipxeM, ServeScript, "rescue"},
		{"denied", func(c *Config) { c.Fleet = fleetMap{key: {State: StateDenied}} }, pxeM, Ignore, "(deny)"},
		{"ignore unknown", func(c *Config) { c.Unknown = UnknownIgnore }, pxeM, Ignore, ""},
		{"ignore, approved boots", func(c *Config) { c.Unknown = UnknownIgnore; c.Fleet = fleetMap{key: {State: StateApproved}} }, pxeM, ServeNBP, "def"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mod(c)
			p := c.Decide(tc.m, s)
			if p.Action != tc.action || p.Profile != tc.profile {
				t.Errorf("Decide = %v profile %q (%s), want %v profile %q", p.Action, p.Profile, p.Reason, tc.action, tc.profile)
			}
		})
	}
}

func TestSpecialScripts(t *testing.T) {
	mac, _ := net.ParseMAC("52:54:00:00:00:09")
	s := Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	for kind, want := range map[string]string{
		SpecialHold:  "chain --autofree --replace http://192.0.2.1:8080/boot/52-54-00-00-00-09/script.ipxe",
		SpecialDeny:  "exit 1",
		SpecialLocal: "\nexit\n",
	} {
		out, err := Script(special(kind), s, mac)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("%s script = %q, %v; want it to contain %q", kind, out, err, want)
		}
	}
}

func TestCanonicalUUID(t *testing.T) {
	// QEMU -uuid 01234567-89ab-cdef-0123-456789abcdef: SeaBIOS/OVMF send
	// 67452301ab89efcd0123456789abcdef in option 97.
	if got := CanonicalUUID("67452301ab89efcd0123456789abcdef"); got != "01234567-89ab-cdef-0123-456789abcdef" {
		t.Errorf("CanonicalUUID = %q", got)
	}
	if got := CanonicalUUID("zz"); got != "zz" {
		t.Errorf("CanonicalUUID(zz) = %q", got)
	}
}
