package pxe

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// FuzzVendorOptions checks that whatever ParseVendorOptions accepts, Marshal
// encodes and ParseVendorOptions decodes back to the same options.
func FuzzVendorOptions(f *testing.F) {
	for _, s := range [][]byte{
		{6, 1, 8, 255},
		mtftp,
		{8, 7, 0x80, 0, 1, 192, 0, 2, 1, 255},
		append(append([]byte{9, 7, 0, 0, 4}, "disk"...), 10, 3, 5, 'g', 'o', 255),
		{71, 4, 0x80, 0, 0, 0, 255},
		{0, 0, 200, 2, 1, 2, 7, 4, 224, 0, 1, 2, 255},
		{6, 2, 1},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVendorOptions(b)
		if err != nil {
			return
		}
		enc, err := v.Marshal()
		if err != nil {
			// Only repeated sub-options 8 or 9 can add up to more than one
			// sub-option holds; everything else that parsed must encode.
			if !strings.Contains(err.Error(), "max 255") {
				t.Fatalf("Marshal(%+v) of parsed % x: %v", v, b, err)
			}
			return
		}
		back, err := ParseVendorOptions(enc)
		if err != nil {
			t.Fatalf("ParseVendorOptions(Marshal) = %v\ninput % x\nencoded % x", err, b, enc)
		}
		// MTFTP sub-options are meaningful (and encoded) only as the full set.
		want := v
		if !want.HasMTFTP {
			want.MTFTPAddr, want.MTFTPClientPort, want.MTFTPServerPort, want.MTFTPTimeout, want.MTFTPDelay = netip.Addr{}, 0, 0, 0, 0
		}
		if !reflect.DeepEqual(back, want) {
			t.Fatalf("round trip differs\ninput   % x\nencoded % x\nparsed  %+v\nback    %+v", b, enc, want, back)
		}
	})
}

// FuzzVendorClass checks that String gives back what ParseVendorClass parsed.
func FuzzVendorClass(f *testing.F) {
	for _, s := range []string{
		"PXEClient:Arch:00007:UNDI:003016",
		"PXEClient:Arch:00000:UNDI:002001",
		"HTTPClient:Arch:00016:UNDI:003000",
		"PXEClient",
		"HTTPClient:Arch:00019",
		"PXEClientX",
		"MSFT 5.0",
		"PXEClient:Arch:7:UNDI:-01+02",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vc, ok := ParseVendorClass(s)
		if !ok {
			if vc != (VendorClass{}) {
				t.Fatalf("ParseVendorClass(%q) = %+v, false; want the zero value", s, vc)
			}
			return
		}
		if vc.Kind != PXEClient && vc.Kind != HTTPClient {
			t.Fatalf("ParseVendorClass(%q).Kind = %q", s, vc.Kind)
		}
		str := vc.String()
		back, ok := ParseVendorClass(str)
		if !ok || back != vc {
			t.Fatalf("ParseVendorClass(%q) = %+v; String %q parses to %+v, %v", s, vc, str, back, ok)
		}
	})
}
