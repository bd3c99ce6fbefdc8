package dhcp6

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
	"pxed/internal/pxe"
)

// EnterprisePXE is the enterprise number under which PXE clients send
// and expect vendor class "PXEClient" (UEFI 2.10 §24.3.1: 343, Intel).
const EnterprisePXE = 343

// Machine extracts what a client says about itself from its message: the
// architecture (option 61, RFC 5970 §3.3, else the vendor class string),
// the firmware (user class "iPXE" (option 15); vendor class PXEClient or
// HTTPClient under enterprise 343), the UUID of a DUID-UUID (hex of the
// wire bytes: firmware sends the SMBIOS UUID with its first three fields
// little-endian) and the MAC (see MAC).
func Machine(m *dhcpv6.Message, src netip.Addr) boot.Machine {
	mc := boot.Machine{MAC: MAC(m.Options.ClientID(), src)}
	var vc pxe.VendorClass
	isBoot := false
	for _, o := range m.Options.VendorClasses() {
		if o.EnterpriseNumber != EnterprisePXE {
			continue
		}
		for _, d := range o.Data {
			if v, ok := pxe.ParseVendorClass(string(d)); ok {
				vc, isBoot = v, true
			}
		}
	}
	if archs := m.Options.ArchTypes(); len(archs) > 0 {
		mc.Arch, mc.HasArch = uint16(archs[0]), true
	} else if vc.HasArch {
		mc.Arch, mc.HasArch = uint16(vc.Arch), true
	}
	if mc.HasArch {
		mc.Class = string(pxe.Arch(mc.Arch).Class())
	}
	if u, ok := m.Options.ClientID().(*dhcpv6.DUIDUUID); ok {
		mc.UUID = hex.EncodeToString(u.UUID[:])
	}
	switch {
	case isIPXE(m):
		mc.Firmware = boot.FirmwareIPXE
	case isBoot && vc.Kind == pxe.HTTPClient:
		mc.Firmware = boot.FirmwareHTTP
	case isBoot:
		mc.Firmware = boot.FirmwarePXE
	}
	return mc
}

// isIPXE reports whether m comes from iPXE: user class "iPXE" (option 15,
// RFC 8415 §21.15).
func isIPXE(m *dhcpv6.Message) bool {
	for _, uc := range m.Options.UserClasses() {
		if bytes.Equal(uc, []byte("iPXE")) {
			return true
		}
	}
	return false
}

// MAC is the client's Ethernet address as far as its message shows it:
// the link-layer address of a DUID-LL or DUID-LLT (RFC 8415 §11.2, §11.4;
// EDK II sends DUID-LLT when the machine has no SMBIOS UUID), else the
// interface identifier of an EUI-64 link-local source address (RFC 4291
// §2.5.1: EDK II and iPXE both form theirs from the MAC; iPXE always
// sends DUID-UUID). nil when neither shows it.
func MAC(duid dhcpv6.DUID, src netip.Addr) net.HardwareAddr {
	switch d := duid.(type) {
	case *dhcpv6.DUIDLL:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			return d.LinkLayerAddr
		}
	case *dhcpv6.DUIDLLT:
		if d.HWType == iana.HWTypeEthernet && len(d.LinkLayerAddr) == 6 {
			return d.LinkLayerAddr
		}
	}
	return eui64MAC(src)
}

// eui64MAC is the MAC an EUI-64 link-local address was formed from.
func eui64MAC(a netip.Addr) net.HardwareAddr {
	if !a.Is6() || a.Is4In6() || !a.IsLinkLocalUnicast() {
		return nil
	}
	b := a.As16()
	if b[11] != 0xff || b[12] != 0xfe {
		return nil
	}
	return net.HardwareAddr{b[8] ^ 0x02, b[9], b[10], b[13], b[14], b[15]}
}
