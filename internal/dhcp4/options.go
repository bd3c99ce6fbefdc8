package dhcp4

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// EncodeOption encodes an option value written in a configuration as typ,
// in the RFC 2132 §2 encodings: ip (one IPv4 address, 4 bytes), ips (a
// list of them, or one string of addresses separated by commas), string (1
// to 255 bytes), uint8, uint16, uint32 (big endian; decimal, or 0x… hex),
// bool (1 or 0) and hex (1 to 255 bytes written as hex, optionally
// separated by ':', '-' or ' '). v is the value as the YAML decoder gives
// it: a string, a number, a bool, or for ips a list. The error says what is
// wrong and what to write instead.
func EncodeOption(typ string, v any) ([]byte, error) {
	str := fmt.Sprint(v)
	num := func(bits int) ([]byte, error) {
		n, err := strconv.ParseUint(str, 0, bits)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %s: write a number from 0 to %d", str, typ, uint64(1)<<bits-1)
		}
		b := make([]byte, bits/8)
		for i := range b {
			b[len(b)-1-i] = byte(n >> (8 * i))
		}
		return b, nil
	}
	switch typ {
	case "ip", "ips":
		var list []string
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				list = append(list, fmt.Sprint(e))
			}
		default:
			list = strings.Split(str, ",")
		}
		if typ == "ip" && len(list) != 1 {
			return nil, fmt.Errorf("type ip takes one address: write type: ips for a list")
		}
		var b []byte
		for _, s := range list {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%q is not an IPv4 address: write e.g. 192.0.2.1", s)
			}
			b = append(b, a.AsSlice()...)
		}
		return b, nil
	case "string":
		if str == "" || len(str) > 255 {
			return nil, fmt.Errorf("string of %d bytes: write 1 to 255 bytes", len(str))
		}
		return []byte(str), nil
	case "uint8":
		return num(8)
	case "uint16":
		return num(16)
	case "uint32":
		return num(32)
	case "bool":
		switch str {
		case "true":
			return []byte{1}, nil
		case "false":
			return []byte{0}, nil
		}
		return nil, fmt.Errorf("%q: write true or false", str)
	case "hex":
		b, err := hex.DecodeString(strings.NewReplacer(":", "", "-", "", " ", "").Replace(str))
		if err != nil || len(b) == 0 || len(b) > 255 {
			return nil, fmt.Errorf("%q: write 1 to 255 hex bytes, e.g. 01:02:0a", str)
		}
		return b, nil
	}
	return nil, fmt.Errorf("type %q: write ip, ips, string, uint8, uint16, uint32, bool or hex", typ)
}
