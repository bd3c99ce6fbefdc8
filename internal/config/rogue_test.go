package config

import (
	"errors"
	"strings"
	"testing"
)

func TestRogueDetectionConfig(t *testing.T) {
	const prof = "interfaces: [lo]\nipxe_dir: {ipxe}\nprofiles:\n  linux:\n    kernel: {kernel}\n"
	for _, tc := range []struct {
		yaml string
		on   bool
	}{{"", true}, {"rogue_detection: on\n", true}, {"rogue_detection: off\n", false}} {
		l := newLab(t)
		c, err := Load(l.write(t, prof+tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		c.Defaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if c.RogueDetectionOn() != tc.on {
			t.Errorf("%q: RogueDetectionOn = %v", tc.yaml, !tc.on)
		}
	}
	l := newLab(t)
	c, err := Load(l.write(t, prof+"rogue_detection: yes please\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Defaults()
	var es Errors
	if err := c.Validate(); !errors.As(err, &es) || len(es) != 1 || es[0].Field != "rogue_detection" || es[0].Line != 6 ||
		!strings.Contains(es[0].Msg, "write on") {
		t.Errorf("Validate = %v, want rogue_detection at line 6 saying what to write", err)
	}
}
