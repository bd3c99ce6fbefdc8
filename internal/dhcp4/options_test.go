package dhcp4

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestEncodeOption(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		v    any // as the YAML decoder gives it
		want []byte
		err  string // substring of the error: what to write instead
	}{
		{"ip", "ip", "192.0.2.9", []byte{192, 0, 2, 9}, ""},
		{"ip with spaces", "ip", " 192.0.2.9 ", []byte{192, 0, 2, 9}, ""},
		{"ip given a list", "ip", []any{"192.0.2.9", "192.0.2.8"}, nil, "write type: ips for a list"},
		{"ip given a comma list", "ip", "192.0.2.9,192.0.2.8", nil, "write type: ips for a list"},
		{"ip not IPv4", "ip", "2001:db8::1", nil, "is not an IPv4 address"},
		{"ips from a list", "ips", []any{"127.0.0.1", "127.0.0.2"}, []byte{127, 0, 0, 1, 127, 0, 0, 2}, ""},
		{"ips from a string", "ips", "127.0.0.1, 127.0.0.2", []byte{127, 0, 0, 1, 127, 0, 0, 2}, ""},
		{"ips with a bad address", "ips", []any{"127.0.0.1", "nope"}, nil, `"nope" is not an IPv4 address: write e.g. 192.0.2.1`},
		{"ips empty", "ips", "", nil, "is not an IPv4 address"},
		{"string", "string", "http://127.0.0.1/wpad.dat", []byte("http://127.0.0.1/wpad.dat"), ""},
		{"string from a number", "string", 42, []byte("42"), ""},
		{"string empty", "string", "", nil, "write 1 to 255 bytes"},
		{"string too long", "string", strings.Repeat("x", 256), nil, "string of 256 bytes"},
		{"uint8", "uint8", 64, []byte{64}, ""},
		{"uint8 hex", "uint8", "0x40", []byte{64}, ""},
		{"uint8 too large", "uint8", 300, nil, `"300" is not a uint8: write a number from 0 to 255`},
		{"uint8 negative", "uint8", -1, nil, "write a number from 0 to 255"},
		{"uint16 big endian", "uint16", 1500, []byte{0x05, 0xdc}, ""},
		{"uint16 too large", "uint16", 65536, nil, "write a number from 0 to 65535"},
		{"uint32 big endian", "uint32", 3600, []byte{0, 0, 0x0e, 0x10}, ""},
		{"uint32 max", "uint32", uint64(4294967295), []byte{0xff, 0xff, 0xff, 0xff}, ""},
		{"uint32 too large", "uint32", uint64(4294967296), nil, "write a number from 0 to 4294967295"},
		{"bool true", "bool", true, []byte{1}, ""},
		{"bool false", "bool", false, []byte{0}, ""},
		{"bool from text", "bool", "yes", nil, `"yes": write true or false`},
		{"hex with colons", "hex", "01:02:0a", []byte{1, 2, 10}, ""},
		{"hex with dashes and spaces", "hex", "01-02 0a", []byte{1, 2, 10}, ""},
		{"hex plain", "hex", "01020a", []byte{1, 2, 10}, ""},
		{"hex odd length", "hex", "01:2", nil, "write 1 to 255 hex bytes"},
		{"hex empty", "hex", "", nil, "write 1 to 255 hex bytes"},
		{"hex too long", "hex", strings.Repeat("00", 256), nil, "write 1 to 255 hex bytes"},
		{"unknown type", "blob", "x", nil, `type "blob": write ip, ips, string, uint8, uint16, uint32, bool or hex`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EncodeOption(tc.typ, tc.v)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("EncodeOption(%s, %v) = %v, %v; want an error saying %q", tc.typ, tc.v, got, err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("EncodeOption(%s, %v) = %v, %v; want %v", tc.typ, tc.v, got, err, tc.want)
			}
		})
	}
}

// decodeOption is the inverse of EncodeOption, for the round trip: the
// text that encodes to b, or false when b has a length typ never encodes.
func decodeOption(typ string, b []byte) (string, bool) {
	switch typ {
	case "ip", "ips":
		if len(b) == 0 || len(b)%4 != 0 || (typ == "ip" && len(b) != 4) {
			return "", false
		}
		var s []string
		for i := 0; i < len(b); i += 4 {
			s = append(s, netip.AddrFrom4([4]byte(b[i:i+4])).String())
		}
		return strings.Join(s, ","), true
	case "string":
		return string(b), len(b) >= 1 && len(b) <= 255
	case "uint8", "uint16", "uint32":
		bits, _ := strconv.Atoi(strings.TrimPrefix(typ, "uint"))
		if len(b) != bits/8 {
			return "", false
		}
		var n uint64
		for _, x := range b {
			n = n<<8 | uint64(x)
		}
		return strconv.FormatUint(n, 10), true
	case "bool":
		if len(b) != 1 || b[0] > 1 {
			return "", false
		}
		return strconv.FormatBool(b[0] == 1), true
	case "hex":
		return hex.EncodeToString(b), len(b) >= 1 && len(b) <= 255
	}
	return "", false
}

// FuzzEncodeOption: whatever is written, a value that encodes has the
// length its type allows and decodes to a text that encodes to the same
// bytes.
func FuzzEncodeOption(f *testing.F) {
	types := []string{"ip", "ips", "string", "uint8", "uint16", "uint32", "bool", "hex"}
	for i, s := range []string{"192.0.2.1", "192.0.2.1,192.0.2.2", "pxe", "0x40", "65535", "4294967295", "true", "01:02:0a", "-1", ""} {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, ti uint8, s string) {
		typ := types[int(ti)%len(types)]
		b, err := EncodeOption(typ, s)
		if err != nil {
			return
		}
		text, ok := decodeOption(typ, b)
		if !ok {
			t.Fatalf("EncodeOption(%s, %q) = %x: a length %s never has", typ, s, b, typ)
		}
		again, err := EncodeOption(typ, text)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("EncodeOption(%s, %q) = %x, decoded %q, encoded again %x, %v", typ, s, b, text, again, err)
		}
	})
}

// The uint encodings are network byte order (RFC 2132 §2).
func TestEncodeOptionByteOrder(t *testing.T) {
	b, err := EncodeOption("uint32", "0x01020304")
	if err != nil || binary.BigEndian.Uint32(b) != 0x01020304 {
		t.Fatalf("uint32 0x01020304 = %x, %v", b, err)
	}
}
