package pxe

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseBootItem(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want BootItem
		err  string
	}{
		{"EDK II request: type and layer", []byte{71, 4, 0x80, 0x01, 0, 0, 255}, BootItem{0x8001, 0}, ""},
		{"after other sub-options and padding", []byte{0, 6, 1, 3, 71, 4, 0, 9, 0, 2}, BootItem{9, 2}, ""},
		{"credentials bit kept", []byte{71, 4, 0, 1, 0x80, 0}, BootItem{1, 0x8000}, ""},
		{"malformed sub-options after 71 do not matter", []byte{71, 4, 0, 1, 0, 0, 9, 200}, BootItem{1, 0}, ""},
		{"absent", []byte{6, 1, 8, 255}, BootItem{}, "no boot item"},
		{"empty", nil, BootItem{}, "no boot item"},
		{"71 too short", []byte{71, 3, 0, 1, 0}, BootItem{}, "length 3, want 4"},
		{"71 too long", []byte{71, 5, 0, 1, 0, 0, 0}, BootItem{}, "length 5, want 4"},
		{"71 truncated", []byte{71, 4, 0, 1}, BootItem{}, "truncated"},
		{"length byte missing", []byte{6}, BootItem{}, "truncated"},
		{"end before 71", []byte{255, 71, 4, 0, 1, 0, 0}, BootItem{}, "no boot item"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBootItem(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseBootItem(% x) = %+v, %v; want error %q", tc.in, got, err, tc.err)
				}
				if tc.err == "no boot item" && !errors.Is(err, ErrNoBootItem) {
					t.Fatalf("error %v is not ErrNoBootItem", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBootItem(% x) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestMenuRoundTrip encodes the option 43 of offers with menus and
// decodes it back, byte for byte as PXE 2.1 table 2-1 lays it out.
func TestMenuRoundTrip(t *testing.T) {
	v := VendorOptions{
		DiscoveryControl: Discovery(true, true, false, false), HasDiscovery: true,
		BootServers: []BootServer{{Type: 0x8001, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}},
		Menu:        []MenuItem{{Type: 0x8001, Desc: "Linux"}, {Type: 0, Desc: "Local"}},
		Prompt:      "F8", PromptTimeout: 5, HasPrompt: true,
	}
	b, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{6, 1, 3,
		8, 7, 0x80, 0x01, 1, 192, 0, 2, 1,
		9, 16, 0x80, 0x01, 5, 'L', 'i', 'n', 'u', 'x', 0, 0, 5, 'L', 'o', 'c', 'a', 'l',
		10, 3, 5, 'F', '8',
		255}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("Marshal = % x\nwant      % x", b, want)
	}
	back, err := ParseVendorOptions(b)
	if err != nil || !reflect.DeepEqual(back, v) {
		t.Fatalf("ParseVendorOptions(Marshal) = %+v, %v\nwant %+v", back, err, v)
	}
	for _, tc := range []struct {
		bits                   uint8
		nob, nom, list, usebfn bool
	}{{0, false, false, false, false}, {1, true, false, false, false}, {2, false, true, false, false}, {4, false, false, true, false}, {8, false, false, false, true}, {15, true, true, true, true}} {
		if got := Discovery(tc.nob, tc.nom, tc.list, tc.usebfn); got != tc.bits {
			t.Errorf("Discovery(%v,%v,%v,%v) = %d, want %d", tc.nob, tc.nom, tc.list, tc.usebfn, got, tc.bits)
		}
	}
}

func TestCheckMenu(t *testing.T) {
	item := func(n int, desc string) []MenuItem {
		var out []MenuItem
		for i := 0; i < n; i++ {
			out = append(out, MenuItem{Type: uint16(i + 1), Desc: desc})
		}
		return out
	}
	tests := []struct {
		name string
		v    VendorOptions
		err  string
	}{
		{"two items", VendorOptions{Menu: item(2, "Linux"), HasPrompt: true, Prompt: "Press F8"}, ""},
		{"24 short items fit", VendorOptions{Menu: item(24, "abcdefg")}, ""},
		{"25 items: more than EDK II shows", VendorOptions{Menu: item(25, "a")}, "at most 24"},
		{"description of 71 bytes", VendorOptions{Menu: item(1, strings.Repeat("x", 71))}, "at most 70"},
		{"non-ASCII description", VendorOptions{Menu: item(1, "Démarrer")}, "not printable ASCII"},
		{"control byte in the prompt", VendorOptions{HasPrompt: true, Prompt: "a\nb"}, "not printable ASCII"},
		{"four 70-byte items overflow sub-option 9", VendorOptions{Menu: item(4, strings.Repeat("x", 70))}, "max 255"},
		{"menu and prompt overflow option 43", VendorOptions{Menu: item(3, strings.Repeat("x", 70)), HasPrompt: true, Prompt: strings.Repeat("p", 60)}, "one option holds 255"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMenu(tc.v)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("CheckMenu = %v, want %q", err, tc.err)
			}
		})
	}
}

// FuzzBootItem checks ParseBootItem against ParseVendorOptions: whatever
// option 43 both accept, they agree on sub-option 71, and a boot item
// encoded by Marshal is found again.
func FuzzBootItem(f *testing.F) {
	for _, s := range [][]byte{
		{71, 4, 0x80, 0x01, 0, 0, 255},
		{6, 1, 3, 71, 4, 0, 9, 0, 2},
		{71, 3, 0, 1, 0},
		{9, 4, 0, 1, 1, 'a', 71, 4, 0, 1, 0x80, 0},
		{0, 0, 71},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bi, err := ParseBootItem(b)
		v, verr := ParseVendorOptions(b)
		if verr == nil {
			switch {
			case v.BootItem == nil && err == nil:
				t.Fatalf("ParseBootItem(% x) = %+v, ParseVendorOptions found none", b, bi)
			case v.BootItem != nil && (err != nil || bi != *v.BootItem):
				t.Fatalf("ParseBootItem(% x) = %+v, %v; ParseVendorOptions %+v", b, bi, err, *v.BootItem)
			}
		}
		if err != nil {
			return
		}
		enc, err := VendorOptions{BootItem: &bi}.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseBootItem(enc); err != nil || back != bi {
			t.Fatalf("ParseBootItem(Marshal(%+v)) = %+v, %v", bi, back, err)
		}
	})
}
