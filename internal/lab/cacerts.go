package lab

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// efiCertX509GUID is EFI_CERT_X509_GUID (UEFI 2.10 §32.4.1,
// a5c059a1-94e4-4aa7-87b5-ab155c2bf072), as stored: the first three
// fields little-endian.
var efiCertX509GUID = [16]byte{0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}

// pxedOwnerGUID is the SignatureOwner of the certificates pxed's lab
// enrols (any GUID will do; EDK II does not check it).
var pxedOwnerGUID = [16]byte{0x70, 0x78, 0x65, 0x64, 0x2d, 0x6c, 0x61, 0x62, 0x2d, 0x63, 0x61, 0x63, 0x65, 0x72, 0x74, 0x73}

// EFISignatureList encodes DER X.509 certificates as the EFI_SIGNATURE_LIST
// array that EDK II's HTTPS Boot reads from the TlsCaCertificate variable
// (NetworkPkg/HttpDxe/HttpsSupport.c TlsConfigCertificate; UEFI 2.10
// §32.4.1): one list per certificate (a list's signatures share one
// size), each with SignatureType EFI_CERT_X509_GUID, no header, and one
// EFI_SIGNATURE_DATA (owner GUID, then the certificate).
func EFISignatureList(certs ...[]byte) []byte {
	var out []byte
	for _, der := range certs {
		sigSize := 16 + len(der)
		listSize := 16 + 4 + 4 + 4 + sigSize
		b := make([]byte, 0, listSize)
		b = append(b, efiCertX509GUID[:]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(listSize))
		b = binary.LittleEndian.AppendUint32(b, 0) // SignatureHeaderSize
		b = binary.LittleEndian.AppendUint32(b, uint32(sigSize))
		b = append(b, pxedOwnerGUID[:]...)
		b = append(b, der...)
		out = append(out, b...)
	}
	return out
}

// caCertsFwCfg writes certs as OVMF's fw_cfg file etc/edk2/https/cacerts
// (OvmfPkg/Library/TlsAuthConfigLib: copied into the TlsCaCertificate
// variable at boot) and returns the -fw_cfg argument.
func caCertsFwCfg(t testing.TB, dir string, certs [][]byte) string {
	t.Helper()
	p := filepath.Join(dir, "cacerts.esl")
	if err := os.WriteFile(p, EFISignatureList(certs...), 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return fmt.Sprintf("name=etc/edk2/https/cacerts,file=%s", p)
}
