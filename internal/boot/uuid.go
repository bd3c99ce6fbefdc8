package boot

import (
	"encoding/hex"
	"fmt"
)

// CanonicalUUID turns the 16 bytes of a machine UUID as firmware sends them
// (hex; option 97, DUID-UUID) into the canonical form the SMBIOS UUID is
// printed in (dmidecode, the vendor's label): firmware sends the first
// three fields little-endian (SMBIOS 2.6+ §7.2.1), so they are swapped
// back. Anything that is not 16 bytes of hex is returned unchanged.
func CanonicalUUID(wire string) string {
	b, err := hex.DecodeString(wire)
	if err != nil || len(b) != 16 {
		return wire
	}
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
