package dhcp4

import (
	"fmt"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/pxe"
)

// MTFTPTable says which boot files are offered for PXE MTFTP (multicast
// download, PXE 2.1 §3.2) and with which group, ports and timeouts.
type MTFTPTable interface {
	MTFTP(file string) (pxe.MTFTP, bool)
}

// addMTFTP adds option 43 sub-options 1–5 to reply when table offers the
// plan's boot file by MTFTP and the client is a legacy BIOS PXE ROM. Never
// to EDK II, whatever table says: it discards an offer carrying them (see
// pxe.MayOfferMTFTP), nor to iPXE (it does no MTFTP) or HTTP boot.
func addMTFTP(reply, p *dhcpv4.DHCPv4, m boot.Machine, plan boot.Plan, table MTFTPTable) error {
	if table == nil || plan.Action != boot.ServeNBP || m.Firmware != boot.FirmwarePXE {
		return nil
	}
	var arch uint16
	b := p.Options.Get(dhcpv4.GenericOptionCode(optClientArch))
	if len(b) >= 2 {
		arch = uint16(b[0])<<8 | uint16(b[1])
	}
	if !pxe.MayOfferMTFTP(p.ClassIdentifier(), arch, len(b) >= 2) {
		return nil
	}
	mt, ok := table.MTFTP(plan.BootFile)
	if !ok {
		return nil
	}
	var vo pxe.VendorOptions
	if cur := reply.Options.Get(dhcpv4.GenericOptionCode(optPXEVendor)); cur != nil {
		var err error
		if vo, err = pxe.ParseVendorOptions(cur); err != nil {
			return fmt.Errorf("adding MTFTP to option 43: %w", err)
		}
	}
	vo.SetMTFTP(mt)
	enc, err := vo.Marshal()
	if err != nil {
		return fmt.Errorf("encoding option 43 with MTFTP: %w", err)
	}
	reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optPXEVendor), enc))
	return nil
}
