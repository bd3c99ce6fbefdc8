package lab

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestEFISignatureList parses the list back as EDK II's
// TlsConfigCertificate does (HttpDxe/HttpsSupport.c): each list's size,
// type EFI_CERT_X509_GUID, header size 0, and its data a whole number of
// signatures holding the certificates in order.
func TestEFISignatureList(t *testing.T) {
	certs := [][]byte{bytes.Repeat([]byte{0x30}, 700), bytes.Repeat([]byte{0x31}, 1201)}
	b := EFISignatureList(certs...)
	var got [][]byte
	for len(b) > 0 {
		if len(b) < 28 {
			t.Fatalf("%d bytes left: shorter than an EFI_SIGNATURE_LIST", len(b))
		}
		listSize := binary.LittleEndian.Uint32(b[16:])
		hdr := binary.LittleEndian.Uint32(b[20:])
		sigSize := binary.LittleEndian.Uint32(b[24:])
		if !bytes.Equal(b[:16], efiCertX509GUID[:]) || hdr != 0 || int(listSize) > len(b) || sigSize < 16 || (listSize-28)%sigSize != 0 {
			t.Fatalf("bad list: type %x size %d header %d signature size %d", b[:16], listSize, hdr, sigSize)
		}
		for off := uint32(28); off < listSize; off += sigSize {
			got = append(got, b[off+16:off+sigSize])
		}
		b = b[listSize:]
	}
	if len(got) != 2 || !bytes.Equal(got[0], certs[0]) || !bytes.Equal(got[1], certs[1]) {
		t.Fatalf("certificates did not round-trip: %d", len(got))
	}
}
