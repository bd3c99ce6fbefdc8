package pxe

import (
	"slices"
	"testing"
)

func TestArchTable(t *testing.T) {
	tests := []struct {
		name  string
		arch  Arch
		str   string
		class Class
		http  bool
	}{
		{"RFC 4578 §2.1 0 x86 BIOS", 0, "bios", ClassBIOS, false},
		{"RFC 4578 §2.1 6 EFI IA32", 6, "efi-ia32", ClassEFIIA32, false},
		{"RFC 4578 §2.1 7 EFI x86-64", 7, "efi-x64", ClassEFIX64, false},
		{"RFC 4578 §2.1 9 EFI BC boots x64 files", 9, "efi-bc", ClassEFIX64, false},
		{"IANA 10 EFI ARM32", 10, "efi-arm32", ClassEFIARM32, false},
		{"IANA 11 EFI ARM64", 11, "efi-arm64", ClassEFIARM64, false},
		{"IANA 15 x86 UEFI HTTP", 15, "efi-ia32-http", ClassEFIIA32, true},
		{"IANA 16 x64 UEFI HTTP", 16, "efi-x64-http", ClassEFIX64, true},
		{"IANA 17 EBC HTTP", 17, "efi-bc-http", ClassEFIX64, true},
		{"IANA 18 ARM32 HTTP", 18, "efi-arm32-http", ClassEFIARM32, true},
		{"IANA 19 ARM64 HTTP", 19, "efi-arm64-http", ClassEFIARM64, true},
		{"IANA 20 BIOS HTTP", 20, "bios-http", ClassBIOS, true},
		{"IANA 27 RISC-V 64", 27, "efi-riscv64", ClassEFIRISCV, false},
		{"IANA 28 RISC-V 64 HTTP", 28, "efi-riscv64-http", ClassEFIRISCV, true},
		{"IANA 1 PC98 has no boot file class", 1, "pc98", ClassUnknown, false},
		{"IANA 2 Itanium has no class", 2, "efi-itanium", ClassUnknown, false},
		{"IANA 8 Xscale has no class", 8, "efi-xscale", ClassUnknown, false},
		{"unregistered 42", 42, "arch-42", ClassUnknown, false},
		{"max 65535", 65535, "arch-65535", ClassUnknown, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.arch.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
			if got := tc.arch.Class(); got != tc.class {
				t.Errorf("Class() = %q, want %q", got, tc.class)
			}
			if got := tc.arch.HTTP(); got != tc.http {
				t.Errorf("HTTP() = %v, want %v", got, tc.http)
			}
		})
	}
}

func TestParseArch(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Arch
		wantErr bool
	}{
		{"name bios", "bios", ArchBIOS, false},
		{"name efi-x64", "efi-x64", ArchEFIX64, false},
		{"name efi-arm64", "efi-arm64", ArchEFIARM64, false},
		{"name efi-x64-http", "efi-x64-http", ArchEFIX64HTTP, false},
		{"case and space insensitive", "  EFI-X64 ", ArchEFIX64, false},
		{"number", "7", ArchEFIX64, false},
		{"unnamed number", "42", 42, false},
		{"max number", "65535", 65535, false},
		{"number too large", "65536", 0, true},
		{"negative", "-1", 0, true},
		{"unknown name", "efi-sparc", 0, true},
		{"empty", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseArch(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseArch(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestArchNamesRoundTrip(t *testing.T) {
	names := ArchNames()
	if len(names) != len(archTable) {
		t.Fatalf("ArchNames has %d names, table has %d", len(names), len(archTable))
	}
	for _, want := range []string{"bios", "efi-x64", "efi-arm64", "efi-x64-http"} {
		if !slices.Contains(names, want) {
			t.Errorf("ArchNames() lacks %q", want)
		}
	}
	for _, n := range names {
		a, err := ParseArch(n)
		if err != nil || a.String() != n {
			t.Errorf("ParseArch(%q) = %v, %v; want it back", n, a, err)
		}
	}
}
