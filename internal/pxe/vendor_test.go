package pxe

import (
	"testing"
)

func TestParseVendorClass(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		want VendorClass
	}{
		{"PXE 2.1 §2.2.1 full EDK II x64", "PXEClient:Arch:00007:UNDI:003016", true,
			VendorClass{Kind: PXEClient, Arch: ArchEFIX64, HasArch: true, UNDIMajor: 3, UNDIMinor: 16, HasUNDI: true}},
		{"PXE 2.1 §2.2.1 full legacy BIOS", "PXEClient:Arch:00000:UNDI:002001", true,
			VendorClass{Kind: PXEClient, Arch: ArchBIOS, HasArch: true, UNDIMajor: 2, UNDIMinor: 1, HasUNDI: true}},
		{"PXE 2.1 §2.2.1 short form", "PXEClient", true, VendorClass{Kind: PXEClient}},
		{"short form with arch only", "PXEClient:Arch:00011", true, VendorClass{Kind: PXEClient, Arch: ArchEFIARM64, HasArch: true}},
		{"UEFI 2.10 §24.7.2 HTTPClient", "HTTPClient:Arch:00016:UNDI:003000", true,
			VendorClass{Kind: HTTPClient, Arch: ArchEFIX64HTTP, HasArch: true, UNDIMajor: 3, HasUNDI: true}},
		{"HTTPClient short", "HTTPClient", true, VendorClass{Kind: HTTPClient}},
		{"odd trailing fields are ignored", "PXEClient:Arch:xyz:UNDI:12", true, VendorClass{Kind: PXEClient}},
		{"arch out of 16-bit range ignored", "PXEClient:Arch:70000", true, VendorClass{Kind: PXEClient}},
		{"trailing colon", "PXEClient:", true, VendorClass{Kind: PXEClient}},
		{"prefix must be exact: PXEClientX", "PXEClientX", false, VendorClass{}},
		{"prefix must be exact: PXEClientX with fields", "PXEClientX:Arch:00007", false, VendorClass{}},
		{"lower case is not PXE", "pxeclient:Arch:00007", false, VendorClass{}},
		{"garbage", "MSFT 5.0", false, VendorClass{}},
		{"empty", "", false, VendorClass{}},
		{"binary garbage", "\x00\xff\x01", false, VendorClass{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseVendorClass(tc.in)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseVendorClass(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestVendorClassString(t *testing.T) {
	tests := []struct {
		name string
		vc   VendorClass
		want string
	}{
		{"full", VendorClass{Kind: PXEClient, Arch: 7, HasArch: true, UNDIMajor: 3, UNDIMinor: 16, HasUNDI: true}, "PXEClient:Arch:00007:UNDI:003016"},
		{"short", VendorClass{Kind: PXEClient}, "PXEClient"},
		{"http arch only", VendorClass{Kind: HTTPClient, Arch: 16, HasArch: true}, "HTTPClient:Arch:00016"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.vc.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			back, ok := ParseVendorClass(tc.want)
			if !ok || back != tc.vc {
				t.Fatalf("ParseVendorClass(String()) = %+v, %v; want %+v", back, ok, tc.vc)
			}
		})
	}
}
