package pxe

import "net/netip"

// MTFTP is what option 43 sub-options 1–5 tell a PXE client about the
// multicast download of its boot file (PXE 2.1 §2.4 table 2-1, §3.2).
type MTFTP struct {
	Addr       netip.Addr // PXE_MTFTP_IP_ADDR: the file's multicast group
	ClientPort uint16     // PXE_MTFTP_CPORT: where clients listen
	ServerPort uint16     // PXE_MTFTP_SPORT: where the server takes requests
	Timeout    uint8      // PXE_MTFTP_TMOUT: seconds to listen before asking
	Delay      uint8      // PXE_MTFTP_DELAY: seconds to wait before asking again
}

// SetMTFTP puts sub-options 1–5 into v (all five: a partial set is not a
// WfM 1.1a offer).
func (v *VendorOptions) SetMTFTP(m MTFTP) {
	v.MTFTPAddr, v.MTFTPClientPort, v.MTFTPServerPort = m.Addr, m.ClientPort, m.ServerPort
	v.MTFTPTimeout, v.MTFTPDelay, v.HasMTFTP = m.Timeout, m.Delay, true
}

// MayOfferMTFTP reports whether a client may be sent sub-options 1–5: only a
// legacy BIOS PXE ROM. EDK II discards every offer that carries them
// (PxeBcDhcp4.c, PxeBcParseDhcp4Packet: "multi-cast download is not
// supported currently, so discard it"), and it identifies as UEFI in three
// places, any one of which rules the client out: option 93 other than 0
// (x86 BIOS), the option 60 architecture field other than 0, and the
// option 60 UNDI version 3 or later (EDK II sends UNDI:003000, PXE 2.1 ROMs
// 002001). A client that gives no architecture at all is not offered MTFTP
// either: pxed cannot tell it is not EDK II.
func MayOfferMTFTP(vendorClass string, optArch uint16, hasOptArch bool) bool {
	vc, ok := ParseVendorClass(vendorClass)
	if !ok || vc.Kind != PXEClient {
		return false
	}
	if !hasOptArch && !vc.HasArch {
		return false
	}
	if hasOptArch && optArch != 0 {
		return false
	}
	if vc.HasArch && vc.Arch != 0 {
		return false
	}
	if vc.HasUNDI && vc.UNDIMajor >= 3 {
		return false
	}
	return true
}
