package api

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"pxed/internal/fleet"
)

// appendMachines encodes the machines list by hand: encoding/json's
// reflection and time.Time's MarshalJSON took most of GET /api/machines'
// time at 5,000 machines. The fields and their form are those of
// fleet.Machine's JSON tags (TestMachineJSONMatches checks it).
func appendMachines(b []byte, ms []fleet.Machine) []byte {
	b = append(b, '[')
	for i := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMachine(b, &ms[i])
	}
	return append(b, "]\n"...)
}

func appendMachine(b []byte, m *fleet.Machine) []byte {
	str := func(name, v string) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = appendString(b, v)
		b = append(b, ',')
	}
	tm := func(name string, t time.Time) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":"`...)
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `",`...)
	}
	b = append(b, '{')
	str("mac", m.MAC)
	str("uuid", m.UUID)
	str("arch", m.Arch)
	str("firmware", m.Firmware)
	tm("first_seen", m.FirstSeen)
	tm("last_seen", m.LastSeen)
	str("address", m.Address)
	str("hostname", m.Hostname)
	b = append(b, `"labels":`...)
	if m.Labels == nil {
		b = append(b, "null"...)
	} else {
		keys := make([]string, 0, len(m.Labels))
		for k := range m.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, m.Labels[k])
		}
		b = append(b, '}')
	}
	b = append(b, ',')
	str("profile", m.Profile)
	str("effective_profile", m.EffectiveProfile)
	str("state", string(m.State))
	b = append(b, `"boot_once":`...)
	if m.BootOnce == nil {
		b = append(b, "null,"...)
	} else {
		b = append(b, `{"profile":`...)
		b = appendString(b, m.BootOnce.Profile)
		b = append(b, `,"then":`...)
		b = appendString(b, m.BootOnce.Then)
		b = append(b, "},"...)
	}
	if !m.LastEvent.IsZero() {
		tm("last_event", m.LastEvent)
	}
	b = append(b, `"last_stage":`...)
	b = appendString(b, m.LastStage)
	return append(b, '}')
}

// appendString appends s as a JSON string (RFC 8259 §7), escaping as
// encoding/json does for HTML-safe output.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, `\n`...)
			case c == '\r':
				b = append(b, `\r`...)
			case c == '\t':
				b = append(b, `\t`...)
			case c == '\b':
				b = append(b, `\b`...)
			case c == '\f':
				b = append(b, `\f`...)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, `\u00`...)
				b = append(b, hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = strconv.AppendInt(b, int64(r&0xf), 16)
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
