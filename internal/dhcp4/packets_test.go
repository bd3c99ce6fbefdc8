package dhcp4

import (
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
)

// Packets as firmware sends them, built with the codec.

var (
	macEFI  = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x07}
	macBIOS = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}
	macARM  = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0x0b}
	uuidOpt = append([]byte{0}, 0x8b, 0x5f, 0x1c, 0x3e, 0x22, 0x4a, 0x4d, 0x9a, 0xa1, 0x0d, 0x52, 0x54, 0x00, 0x00, 0x00, 0x07)
	server  = boot.Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	relay   = net.IPv4(198, 51, 100, 1).To4()
)

func gen(code uint8, b []byte) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(code), b)
}

func discover(t testing.TB, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func withType(mt dhcpv4.MessageType, p *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	p.UpdateOption(dhcpv4.OptMessageType(mt))
	return p
}

// edk2Discover is OVMF's (EDK II UefiPxeBcDxe) DHCPDISCOVER on x64.
func edk2Discover(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return discover(t, macEFI, append([]dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
		gen(94, []byte{1, 3, 16}),
		gen(97, uuidOpt),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1472)),
		dhcpv4.WithRequestedOptions(prl(1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135)...),
	}, mods...)...)
}

// biosDiscover is a legacy BIOS PXE ROM's DHCPDISCOVER (arch 0, UNDI 2.1).
func biosDiscover(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	return discover(t, macBIOS, append([]dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		gen(94, []byte{1, 2, 1}),
		gen(97, uuidOpt),
	}, mods...)...)
}

// ipxeDiscover is iPXE (SeaBIOS + ipxe-qemu ROM) DHCPing again: user class
// iPXE (RFC 3004 form when rfc, else the plain string) and option 175.
func ipxeDiscover(t testing.TB, rfc, with175 bool, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	m := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)),
		gen(94, []byte{1, 2, 1}),
		dhcpv4.WithUserClass("iPXE", rfc),
	}
	if with175 {
		m = append(m, gen(175, []byte{0xb1, 5, 1, 0x10, 0xec, 0x81, 0x39, 0x13, 1, 1, 0x11, 1, 1}))
	}
	return discover(t, macBIOS, append(m, mods...)...)
}

func prl(codes ...uint8) []dhcpv4.OptionCode {
	var out []dhcpv4.OptionCode
	for _, c := range codes {
		out = append(out, dhcpv4.GenericOptionCode(c))
	}
	return out
}

// proxyConfig is what `pxed boot` configures: iPXE NBPs and one profile.
func proxyConfig() *boot.Config {
	return &boot.Config{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Profiles:  map[string]boot.Profile{"default": {Kernel: "/srv/vmlinuz", Initrds: []string{"/srv/initrd.img"}}},
		Default:   "default",
	}
}
