package pxe

import (
	"net/netip"
	"testing"
)

func TestMayOfferMTFTP(t *testing.T) {
	for _, c := range []struct {
		name    string
		vc      string
		arch    uint16
		hasArch bool
		want    bool
	}{
		{"BIOS PXE 2.1 ROM", "PXEClient:Arch:00000:UNDI:002001", 0, true, true},
		{"BIOS ROM without option 93", "PXEClient:Arch:00000:UNDI:002001", 0, false, true},
		{"EDK II x64 (OVMF)", "PXEClient:Arch:00007:UNDI:003000", 7, true, false},
		{"EDK II ia32", "PXEClient:Arch:00006:UNDI:003000", 6, true, false},
		{"EDK II with option 93 = 0 but UNDI 3.0", "PXEClient:Arch:00000:UNDI:003000", 0, true, false},
		{"option 93 says UEFI, option 60 says BIOS", "PXEClient:Arch:00000:UNDI:002001", 7, true, false},
		{"option 60 says UEFI, option 93 says BIOS", "PXEClient:Arch:00007:UNDI:002001", 0, true, false},
		{"bare PXEClient, no arch anywhere", "PXEClient", 0, false, false},
		{"bare PXEClient with option 93 = 0", "PXEClient", 0, true, true},
		{"HTTP boot", "HTTPClient:Arch:00016:UNDI:003000", 16, true, false},
		{"not PXE", "MSFT 5.0", 0, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := MayOfferMTFTP(c.vc, c.arch, c.hasArch); got != c.want {
				t.Errorf("MayOfferMTFTP(%q, %d, %v) = %v, want %v", c.vc, c.arch, c.hasArch, got, c.want)
			}
		})
	}
}

// A VendorOptions with SetMTFTP is a WfM 1.1a offer's option 43: it round
// trips and classifies as one.
func TestSetMTFTPRoundTrip(t *testing.T) {
	var v VendorOptions
	v.SetMTFTP(MTFTP{Addr: netip.MustParseAddr("239.255.70.255"), ClientPort: 1758, ServerPort: 1759, Timeout: 2, Delay: 3})
	v.DiscoveryControl, v.HasDiscovery = DiscoveryUseBootFile, true
	b, err := v.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseVendorOptions(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.HasMTFTP || got.MTFTPAddr != v.MTFTPAddr || got.MTFTPClientPort != 1758 || got.MTFTPServerPort != 1759 ||
		got.MTFTPTimeout != 2 || got.MTFTPDelay != 3 {
		t.Errorf("round trip: got %+v, want %+v", got, v)
	}
}
