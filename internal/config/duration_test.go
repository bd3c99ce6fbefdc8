package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOptionalDuration(t *testing.T) {
	tests := []struct {
		name, yaml    string
		set, off, ok  bool
		d             time.Duration
		text, wantErr string // wantErr: Parse fails saying this
	}{
		{name: "unset", yaml: "mode: server"},
		{name: "null", yaml: "probe_timeout: ~"},
		{name: "duration", yaml: "probe_timeout: 150ms", set: true, ok: true, d: 150 * time.Millisecond, text: "150ms"},
		{name: "zero", yaml: "probe_timeout: 0s", set: true, ok: true, text: "0s"},
		{name: "negative is kept for Validate", yaml: "probe_timeout: -1s", set: true, ok: true, d: -time.Second, text: "-1s"},
		{name: "off quoted", yaml: `probe_timeout: "off"`, set: true, off: true, text: "off"},
		{name: "off bare", yaml: "probe_timeout: off", set: true, off: true, text: "off"},
		{name: "not a duration is kept for Validate", yaml: "probe_timeout: soon", set: true, text: "soon"},
		{name: "a number without unit", yaml: "probe_timeout: 300", set: true, text: "300"},
		{name: "a list is refused as for a string", yaml: "probe_timeout: [1s]", wantErr: "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("pxed.yaml", []byte("dhcp:\n  "+tc.yaml+"\n"))
			if tc.wantErr != "" {
				var es Errors
				if !errors.As(err, &es) || es[0].Line != 2 || !strings.Contains(es[0].Msg, tc.wantErr) {
					t.Fatalf("Parse = %v, want pxed.yaml:2 saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			o := c.DHCP.ProbeTimeout
			d, ok := o.Value()
			if o.IsSet() != tc.set || o.Off() != tc.off || ok != tc.ok || d != tc.d || o.String() != tc.text {
				t.Errorf("got set %v off %v value %v,%v text %q; want %v %v %v,%v %q",
					o.IsSet(), o.Off(), d, ok, o, tc.set, tc.off, tc.d, tc.ok, tc.text)
			}
			if ParseOptionalDuration(tc.text) != o {
				t.Errorf("ParseOptionalDuration(%q) differs from the file's %+v", tc.text, o)
			}
		})
	}
}

// TestDHCPDurationErrors: a value that is no duration, or out of its
// field's range, is reported by Validate at the field's line with that
// field's fix, whether it came from the file or a flag.
func TestDHCPDurationErrors(t *testing.T) {
	tests := []struct {
		name, old, new string
		field          string
		line           int
		fix            string
	}{
		{"negative probe timeout", "probe_timeout: 150ms", "probe_timeout: -1s", "dhcp.probe_timeout", 5, `"-1s" is not a duration: write e.g. 300ms, or off`},
		{"commit interval off", "probe_timeout: 150ms\n", "probe_timeout: 150ms\n  commit_interval: \"off\"\n", "dhcp.commit_interval", 6, `"off" is not a duration between 0s and 1s`},
		{"lease time not a duration", "lease_time: 2h", "lease_time: soon", "dhcp.subnets[0].lease_time", 15, `"soon": write a duration of at least 1m, e.g. 1h or 12h`},
		{"lease time off", "lease_time: 2h", "lease_time: off", "dhcp.subnets[0].lease_time", 15, `"off": write a duration of at least 1m`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(serverYAML, tc.old, tc.new, 1)
			if text == serverYAML {
				t.Fatalf("%q not in the base configuration", tc.old)
			}
			c, err := Parse("pxed.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			c.Defaults()
			es := c.validateServer()
			if len(es) != 1 || es[0].Field != tc.field || es[0].Line != tc.line || !strings.Contains(es[0].Msg, tc.fix) {
				t.Fatalf("errors %v, want one at pxed.yaml:%d %s saying %q", es, tc.line, tc.field, tc.fix)
			}
		})
	}
	t.Run("flag", func(t *testing.T) {
		c := &Config{Interfaces: []string{"lo"}, DHCP: DHCP{Mode: ModeServer, Range: "127.0.0.100-127.0.0.200",
			ProbeTimeout: ParseOptionalDuration("soon")}}
		c.Defaults()
		es := c.validateServer()
		if want := `flags: dhcp.probe_timeout: "soon" is not a duration: write e.g. 300ms, or off`; len(es) != 1 || es[0].Error() != want {
			t.Fatalf("errors %v, want %q", es, want)
		}
	})
}
