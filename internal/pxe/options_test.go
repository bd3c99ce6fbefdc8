package pxe

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestVendorOptionsRoundTrip(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name string
		v    VendorOptions
		wire []byte // expected encoding, nil to skip the byte comparison
	}{
		{"PXE 2.1 table 2-1 discovery control use boot file", VendorOptions{DiscoveryControl: DiscoveryUseBootFile, HasDiscovery: true},
			[]byte{6, 1, 8, 255}},
		{"discovery control all bits", VendorOptions{DiscoveryControl: DiscoveryNoBroadcast | DiscoveryNoMulticast | DiscoveryListOnly, HasDiscovery: true},
			[]byte{6, 1, 7, 255}},
		{"MTFTP sub-options 1-5 (WfM 1.1a)", VendorOptions{MTFTPAddr: a("224.1.2.3"), MTFTPClientPort: 1758, MTFTPServerPort: 1759,
			MTFTPTimeout: 1, MTFTPDelay: 10, HasMTFTP: true},
			[]byte{1, 4, 224, 1, 2, 3, 2, 2, 0x06, 0xde, 3, 2, 0x06, 0xdf, 4, 1, 1, 5, 1, 10, 255}},
		{"multicast discovery address", VendorOptions{McastAddr: a("224.0.1.2")}, []byte{7, 4, 224, 0, 1, 2, 255}},
		{"PXE 2.1 boot servers", VendorOptions{BootServers: []BootServer{
			{Type: 0x8000, Addrs: []netip.Addr{a("192.0.2.1"), a("192.0.2.2")}},
			{Type: 1, Addrs: []netip.Addr{a("198.51.100.7")}},
		}}, []byte{8, 18, 0x80, 0, 2, 192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 1, 198, 51, 100, 7, 255}},
		{"boot menu", VendorOptions{Menu: []MenuItem{{Type: 0, Desc: "Local disk"}, {Type: 0x8000, Desc: "pxed"}}},
			append(append([]byte{9, 20, 0, 0, 10}, "Local disk"...), append([]byte{0x80, 0, 4}, "pxed\xff"...)...)},
		{"menu prompt", VendorOptions{PromptTimeout: 5, Prompt: "Press F8", HasPrompt: true}, append([]byte{10, 9, 5}, "Press F8\xff"...)},
		{"menu prompt empty text", VendorOptions{PromptTimeout: 255, HasPrompt: true}, []byte{10, 1, 255, 255}},
		{"boot item 71", VendorOptions{BootItem: &BootItem{Type: 0x8000, Layer: 0}}, []byte{71, 4, 0x80, 0, 0, 0, 255}},
		{"unknown sub-options kept in code order", VendorOptions{Unknown: map[uint8][]byte{200: {1, 2}, 12: {3}}},
			[]byte{12, 1, 3, 200, 2, 1, 2, 255}},
		{"everything", VendorOptions{
			MTFTPAddr: a("224.1.2.3"), MTFTPClientPort: 1, MTFTPServerPort: 2, MTFTPTimeout: 3, MTFTPDelay: 4, HasMTFTP: true,
			DiscoveryControl: 3, HasDiscovery: true, McastAddr: a("224.0.1.2"),
			BootServers:   []BootServer{{Type: 7, Addrs: []netip.Addr{a("192.0.2.9")}}},
			Menu:          []MenuItem{{Type: 7, Desc: "x"}},
			PromptTimeout: 10, Prompt: "p", HasPrompt: true,
			BootItem: &BootItem{Type: 7, Layer: 1},
			Unknown:  map[uint8][]byte{100: {9}},
		}, nil},
		{"empty", VendorOptions{}, []byte{255}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.v.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if tc.wire != nil && !bytes.Equal(b, tc.wire) {
				t.Fatalf("Marshal = % x\nwant      % x", b, tc.wire)
			}
			got, err := ParseVendorOptions(b)
			if err != nil {
				t.Fatalf("ParseVendorOptions(% x): %v", b, err)
			}
			if !reflect.DeepEqual(got, tc.v) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.v)
			}
		})
	}
}

func TestParseVendorOptionsWire(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want VendorOptions
	}{
		{"pad bytes skipped", []byte{0, 0, 6, 1, 8, 0, 255}, VendorOptions{DiscoveryControl: 8, HasDiscovery: true}},
		{"end stops parsing, trailing garbage ignored", []byte{6, 1, 8, 255, 1, 200}, VendorOptions{DiscoveryControl: 8, HasDiscovery: true}},
		{"no end option", []byte{6, 1, 8}, VendorOptions{DiscoveryControl: 8, HasDiscovery: true}},
		{"partial MTFTP set is not WfM 1.1a", []byte{1, 4, 224, 1, 2, 3, 2, 2, 0, 1, 255},
			VendorOptions{MTFTPAddr: netip.MustParseAddr("224.1.2.3"), MTFTPClientPort: 1}},
		{"boot server with zero addresses", []byte{8, 3, 0, 5, 0, 255}, VendorOptions{BootServers: []BootServer{{Type: 5}}}},
		{"empty input", nil, VendorOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVendorOptions(tc.in)
			if err != nil {
				t.Fatalf("ParseVendorOptions: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseVendorOptionsInvalid(t *testing.T) {
	tests := []struct {
		name      string
		in        []byte
		truncated bool
	}{
		{"code without length", []byte{6}, true},
		{"length past end", []byte{6, 2, 8}, true},
		{"long length past end", []byte{9, 200, 0, 0}, true},
		{"MTFTP address length 3", []byte{1, 3, 1, 2, 3}, false},
		{"MTFTP port length 1", []byte{2, 1, 1}, false},
		{"MTFTP timeout length 2", []byte{4, 2, 1, 1}, false},
		{"discovery control length 0", []byte{6, 0}, false},
		{"discovery control length 2", []byte{6, 2, 1, 1}, false},
		{"multicast address length 16", append([]byte{7, 16}, make([]byte, 16)...), false},
		{"boot server list short header", []byte{8, 2, 0, 1}, false},
		{"boot server count larger than data", []byte{8, 7, 0, 1, 2, 192, 0, 2, 1}, false},
		{"menu item description past data", []byte{9, 4, 0, 1, 5, 'a'}, false},
		{"menu item short header", []byte{9, 1, 0}, false},
		{"prompt empty", []byte{10, 0}, false},
		{"boot item length 2", []byte{71, 2, 0, 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseVendorOptions(tc.in)
			if err == nil {
				t.Fatalf("ParseVendorOptions(% x) succeeded, want an error", tc.in)
			}
			if got := errors.Is(err, ErrTruncated); got != tc.truncated {
				t.Errorf("errors.Is(%v, ErrTruncated) = %v, want %v", err, got, tc.truncated)
			}
			if !strings.HasPrefix(err.Error(), "pxe: option 43 sub-option ") {
				t.Errorf("error %q does not name the sub-option", err)
			}
		})
	}
}

func TestVendorOptionsMarshalErrors(t *testing.T) {
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
	}
	tests := []struct {
		name string
		v    VendorOptions
	}{
		{"boot server with 256 addresses", VendorOptions{BootServers: []BootServer{{Type: 1, Addrs: many}}}},
		{"boot servers over 255 bytes", VendorOptions{BootServers: []BootServer{{Type: 1, Addrs: many[:63]}, {Type: 2, Addrs: many[:1]}}}},
		{"IPv6 boot server", VendorOptions{BootServers: []BootServer{{Type: 1, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}}}},
		{"menu description 256 bytes", VendorOptions{Menu: []MenuItem{{Desc: strings.Repeat("m", 256)}}}},
		{"menu over 255 bytes", VendorOptions{Menu: []MenuItem{{Desc: strings.Repeat("m", 200)}, {Desc: strings.Repeat("n", 60)}}}},
		{"prompt 255 bytes plus timeout", VendorOptions{Prompt: strings.Repeat("p", 255), HasPrompt: true}},
		{"unknown 256 bytes", VendorOptions{Unknown: map[uint8][]byte{100: make([]byte, 256)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := tc.v.Marshal(); err == nil {
				t.Fatalf("Marshal succeeded (% x), want an error", b)
			}
		})
	}
}
