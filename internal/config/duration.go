package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as Go writes it ("30s", "5m",
// "250ms") in the file.
type Duration time.Duration

// UnmarshalYAML parses a duration string, naming the line when it is not one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration: write e.g. 30s, 5m or 250ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// OptionalDuration is a duration setting that may be left unset and, where
// its field allows it, written "off" (dhcp.probe_timeout). It is parsed
// once, from the file or a flag. A text that is not a duration is kept, not
// refused: Validate reports it with the field's line and the fix that field
// needs, and only when the field is used (mode server's settings are not
// checked in mode proxy). The zero value is unset.
type OptionalDuration struct {
	text string   // as written; "" when unset
	d    Duration // the value, when ok
	ok   bool     // text is a duration (negative ones too: fields check their ranges)
}

// ParseOptionalDuration returns the setting written as s: unset when s is
// empty, Off when s is "off", else a duration or, when s is not one, a
// setting whose Value reports false. It never fails; see OptionalDuration.
func ParseOptionalDuration(s string) OptionalDuration {
	o := OptionalDuration{text: s}
	if s != "" && s != "off" {
		d, err := time.ParseDuration(s)
		o.d, o.ok = Duration(d), err == nil
	}
	return o
}

// UnmarshalYAML reads a scalar as ParseOptionalDuration does; a list or a
// mapping is refused as it is for a string field.
func (o *OptionalDuration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*o = ParseOptionalDuration(s)
	return nil
}

// IsSet reports whether the file or a flag gave the setting.
func (o OptionalDuration) IsSet() bool { return o.text != "" }

// Off reports whether the setting is "off".
func (o OptionalDuration) Off() bool { return o.text == "off" }

// Value returns the duration and whether the setting is one (false when
// unset, off, or not a duration).
func (o OptionalDuration) Value() (time.Duration, bool) { return o.d.D(), o.ok }

// String returns the setting as it was written, "" when unset.
func (o OptionalDuration) String() string { return o.text }
