// Package pxe holds PXE semantics on top of the DHCP wire format: the client
// architecture table (option 93, RFC 4578 §2.1 and the IANA "Processor
// Architecture Types" registry), the vendor class (option 60) of PXE and HTTP
// boot clients, the PXE vendor options carried in option 43 (PXE 2.1 §2.4),
// and EDK II's classification and ranking of offers. Server and client both
// use it.
package pxe

import (
	"fmt"
	"strconv"
	"strings"
)

// Arch is a client system architecture type, the value of DHCP option 93
// (RFC 4578 §2.1) and DHCPv6 option 61 (RFC 5970 §3.3).
type Arch uint16

// Architecture types from the IANA registry.
const (
	ArchBIOS           Arch = 0  // Intel x86PC (legacy BIOS)
	ArchPC98           Arch = 1  // NEC/PC98
	ArchItanium        Arch = 2  // EFI Itanium
	ArchAlpha          Arch = 3  // DEC Alpha
	ArchArcX86         Arch = 4  // Arc x86
	ArchLeanClient     Arch = 5  // Intel Lean Client
	ArchEFIIA32        Arch = 6  // EFI IA32
	ArchEFIX64         Arch = 7  // EFI x86-64
	ArchEFIXscale      Arch = 8  // EFI Xscale
	ArchEFIBC          Arch = 9  // EFI BC (x86-64 firmware that mislabels itself)
	ArchEFIARM32       Arch = 10 // EFI ARM32
	ArchEFIARM64       Arch = 11 // EFI ARM64
	ArchEFIIA32HTTP    Arch = 15 // EFI x86 boot from HTTP
	ArchEFIX64HTTP     Arch = 16 // EFI x86-64 boot from HTTP
	ArchEFIBCHTTP      Arch = 17 // EFI BC boot from HTTP
	ArchEFIARM32HTTP   Arch = 18 // EFI ARM32 boot from HTTP
	ArchEFIARM64HTTP   Arch = 19 // EFI ARM64 boot from HTTP
	ArchBIOSHTTP       Arch = 20 // x86 BIOS boot from HTTP
	ArchEFIRISCV64     Arch = 27 // EFI RISC-V 64
	ArchEFIRISCV64HTTP Arch = 28 // EFI RISC-V 64 boot from HTTP
)

// Class groups architectures that take the same boot file.
type Class string

// The classes pxed has boot files for.
const (
	ClassBIOS     Class = "bios"      // legacy BIOS PXE: undionly.kpxe
	ClassEFIIA32  Class = "efi-ia32"  // 32-bit UEFI
	ClassEFIX64   Class = "efi-x64"   // 64-bit x86 UEFI (7 and the mislabelled 9)
	ClassEFIARM32 Class = "efi-arm32" // 32-bit ARM UEFI
	ClassEFIARM64 Class = "efi-arm64" // 64-bit ARM UEFI
	ClassEFIRISCV Class = "efi-riscv64"
	ClassUnknown  Class = ""
)

type archInfo struct {
	name  string
	class Class
	http  bool
}

var archTable = map[Arch]archInfo{
	ArchBIOS:           {"bios", ClassBIOS, false},
	ArchPC98:           {"pc98", ClassUnknown, false},
	ArchItanium:        {"efi-itanium", ClassUnknown, false},
	ArchAlpha:          {"alpha", ClassUnknown, false},
	ArchArcX86:         {"arc-x86", ClassUnknown, false},
	ArchLeanClient:     {"lean-client", ClassUnknown, false},
	ArchEFIIA32:        {"efi-ia32", ClassEFIIA32, false},
	ArchEFIX64:         {"efi-x64", ClassEFIX64, false},
	ArchEFIXscale:      {"efi-xscale", ClassUnknown, false},
	ArchEFIBC:          {"efi-bc", ClassEFIX64, false},
	ArchEFIARM32:       {"efi-arm32", ClassEFIARM32, false},
	ArchEFIARM64:       {"efi-arm64", ClassEFIARM64, false},
	ArchEFIIA32HTTP:    {"efi-ia32-http", ClassEFIIA32, true},
	ArchEFIX64HTTP:     {"efi-x64-http", ClassEFIX64, true},
	ArchEFIBCHTTP:      {"efi-bc-http", ClassEFIX64, true},
	ArchEFIARM32HTTP:   {"efi-arm32-http", ClassEFIARM32, true},
	ArchEFIARM64HTTP:   {"efi-arm64-http", ClassEFIARM64, true},
	ArchBIOSHTTP:       {"bios-http", ClassBIOS, true},
	ArchEFIRISCV64:     {"efi-riscv64", ClassEFIRISCV, false},
	ArchEFIRISCV64HTTP: {"efi-riscv64-http", ClassEFIRISCV, true},
}

// String returns the architecture's short name ("bios", "efi-x64", …) or
// "arch-N" for a value pxed has no name for.
func (a Arch) String() string {
	if i, ok := archTable[a]; ok {
		return i.name
	}
	return "arch-" + strconv.Itoa(int(a))
}

// Class returns the boot-file class of a, ClassUnknown when pxed has none.
func (a Arch) Class() Class { return archTable[a].class }

// HTTP reports whether a is an HTTP boot architecture (UEFI 2.10 §24.7).
func (a Arch) HTTP() bool { return archTable[a].http }

// ParseArch accepts a name ("bios", "efi-x64", "efi-x64-http", …) or a number.
func ParseArch(s string) (Arch, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for a, i := range archTable {
		if i.name == s {
			return a, nil
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("pxe: unknown architecture %q (want a name such as bios, efi-x64, efi-arm64, or a number 0-65535)", s)
	}
	return Arch(n), nil
}

// ArchNames returns the known architecture names, for usage messages.
func ArchNames() []string {
	out := make([]string, 0, len(archTable))
	for a := Arch(0); a < 64; a++ {
		if i, ok := archTable[a]; ok {
			out = append(out, i.name)
		}
	}
	return out
}
