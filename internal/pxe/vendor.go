package pxe

import (
	"fmt"
	"strconv"
	"strings"
)

// Vendor class identifiers (option 60) of network boot clients.
const (
	PXEClient  = "PXEClient"  // PXE 2.1 §2.2.1
	HTTPClient = "HTTPClient" // UEFI 2.10 §24.7.2
)

// VendorClass is a parsed option 60 of a boot client:
// "PXEClient:Arch:xxxxx:UNDI:yyyzzz" (PXE 2.1 §2.2.1) or the same with
// "HTTPClient" (UEFI HTTP boot). Short forms ("PXEClient") are valid.
type VendorClass struct {
	Kind      string // PXEClient or HTTPClient
	Arch      Arch
	HasArch   bool
	UNDIMajor int
	UNDIMinor int
	HasUNDI   bool
}

// ParseVendorClass parses option 60. ok is false when s is not from a PXE or
// HTTP boot client. Malformed trailing fields are ignored (firmware in the
// wild sends odd ones), but the prefix must be exact.
func ParseVendorClass(s string) (vc VendorClass, ok bool) {
	switch {
	case strings.HasPrefix(s, PXEClient):
		vc.Kind = PXEClient
	case strings.HasPrefix(s, HTTPClient):
		vc.Kind = HTTPClient
	default:
		return vc, false
	}
	rest := s[len(vc.Kind):]
	if rest != "" && rest[0] != ':' {
		return VendorClass{}, false
	}
	fields := strings.Split(strings.TrimPrefix(rest, ":"), ":")
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case "Arch":
			if n, err := strconv.ParseUint(fields[i+1], 10, 16); err == nil {
				vc.Arch, vc.HasArch = Arch(n), true
			}
		case "UNDI":
			v := fields[i+1]
			if len(v) == 6 {
				maj, err1 := strconv.Atoi(v[:3])
				min, err2 := strconv.Atoi(v[3:])
				if err1 == nil && err2 == nil {
					vc.UNDIMajor, vc.UNDIMinor, vc.HasUNDI = maj, min, true
				}
			}
		}
	}
	return vc, true
}

// String formats vc as a client would send it.
func (vc VendorClass) String() string {
	s := vc.Kind
	if vc.HasArch {
		s += fmt.Sprintf(":Arch:%05d", vc.Arch)
	}
	if vc.HasUNDI {
		s += fmt.Sprintf(":UNDI:%03d%03d", vc.UNDIMajor, vc.UNDIMinor)
	}
	return s
}
