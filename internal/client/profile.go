// Package client is pxed's own network boot client. It behaves as a chosen
// firmware would — a legacy BIOS PXE ROM, UEFI (EDK II) PXE or HTTP boot, or
// iPXE — so that `pxed probe` can tell an operator what a real machine will
// do on a network, and `pxed storm` can boot many simulated machines:
//
//   - it builds DHCPDISCOVER/DHCPREQUEST with the options that firmware sends
//     (60, 93, 94, 97, 55, and 77/175 for iPXE);
//   - it collects offers for the firmware's wait window, classifies and ranks
//     them with EDK II's rules (pxe.Classify, pxe.Select), retrying with
//     4, 8, 16 and 32 s windows (scaled for tests);
//   - it requests the address, asks the boot server on port 4011 when the
//     selected offer needs it, then fetches the boot file over TFTP or HTTP
//     and, for iPXE, the script and the files it names.
//
// The DHCP exchange (Exchange) talks to a Transport, so other packet sources
// (raw sockets for many simulated machines, in-memory fakes for tests) plug
// in; UDPTransport is the socket of one client on one interface. Pure parts
// (offer summaries, warnings, script parsing, packet building) have no
// sockets.
package client

import (
	"crypto/sha256"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/pxe"
)

// Option codes the codec has no typed helpers for.
const (
	optVendorSpecific = 43  // PXE vendor options (PXE 2.1 §2.4)
	optUserClass      = 77  // RFC 3004
	optClientArch     = 93  // RFC 4578 §2.1
	optClientNDI      = 94  // RFC 4578 §2.2
	optClientUUID     = 97  // RFC 4578 §2.3
	optIPXEEncap      = 175 // iPXE encapsulated options
)

// Profile is the firmware the client simulates: what it says about itself
// in its DHCP packets and how it fetches its boot file.
type Profile struct {
	Name      string   // "bios", "efi-x64", "ipxe-efi", …
	Arch      pxe.Arch // option 93
	Kind      string   // pxe.PXEClient or pxe.HTTPClient (option 60 prefix)
	UNDIMajor int      // option 94 and the UNDI field of option 60
	UNDIMinor int
	IPXE      bool   // user class "iPXE" and option 175: iPXE, expects a script
	Blksize   int    // TFTP block size the firmware asks for
	Window    int    // TFTP windowsize the firmware asks for (1: none)
	Firmware  string // for people: "EDK II UEFI PXE", …
}

// HTTPBoot reports whether p is a UEFI HTTP boot client.
func (p Profile) HTTPBoot() bool { return p.Kind == pxe.HTTPClient }

// VendorClass is option 60 as p sends it, e.g. "PXEClient:Arch:00007:UNDI:003016".
func (p Profile) VendorClass() string {
	return pxe.VendorClass{Kind: p.Kind, Arch: p.Arch, HasArch: true,
		UNDIMajor: p.UNDIMajor, UNDIMinor: p.UNDIMinor, HasUNDI: true}.String()
}

// profiles are the firmware the client can simulate. UNDI versions and TFTP
// options are what the real firmware sends: EDK II (UNDI 3.16, blksize
// 1468, windowsize 4 with PcdPxeTftpWindowSize), PXE 2.1 ROMs (UNDI 2.1,
// 1456), iPXE (UNDI 2.1, 1432).
var profiles = map[string]Profile{
	"bios":           {Arch: pxe.ArchBIOS, Kind: pxe.PXEClient, UNDIMajor: 2, UNDIMinor: 1, Blksize: 1456, Window: 1, Firmware: "legacy BIOS PXE ROM"},
	"efi-ia32":       {Arch: pxe.ArchEFIIA32, Kind: pxe.PXEClient, UNDIMajor: 3, UNDIMinor: 16, Blksize: 1468, Window: 4, Firmware: "EDK II UEFI PXE (IA32)"},
	"efi-x64":        {Arch: pxe.ArchEFIX64, Kind: pxe.PXEClient, UNDIMajor: 3, UNDIMinor: 16, Blksize: 1468, Window: 4, Firmware: "EDK II UEFI PXE (x64)"},
	"efi-arm64":      {Arch: pxe.ArchEFIARM64, Kind: pxe.PXEClient, UNDIMajor: 3, UNDIMinor: 16, Blksize: 1468, Window: 4, Firmware: "EDK II UEFI PXE (ARM64)"},
	"efi-x64-http":   {Arch: pxe.ArchEFIX64HTTP, Kind: pxe.HTTPClient, UNDIMajor: 3, UNDIMinor: 16, Firmware: "EDK II UEFI HTTP boot (x64)"},
	"efi-ia32-http":  {Arch: pxe.ArchEFIIA32HTTP, Kind: pxe.HTTPClient, UNDIMajor: 3, UNDIMinor: 16, Firmware: "EDK II UEFI HTTP boot (IA32)"},
	"efi-arm64-http": {Arch: pxe.ArchEFIARM64HTTP, Kind: pxe.HTTPClient, UNDIMajor: 3, UNDIMinor: 16, Firmware: "EDK II UEFI HTTP boot (ARM64)"},
	"ipxe-bios":      {Arch: pxe.ArchBIOS, Kind: pxe.PXEClient, UNDIMajor: 2, UNDIMinor: 1, IPXE: true, Blksize: 1432, Window: 1, Firmware: "iPXE (BIOS)"},
	"ipxe-efi":       {Arch: pxe.ArchEFIX64, Kind: pxe.PXEClient, UNDIMajor: 3, UNDIMinor: 16, IPXE: true, Blksize: 1432, Window: 1, Firmware: "iPXE (UEFI x64)"},
}

// ProfileNames returns the names ParseProfile accepts, sorted.
func ProfileNames() []string {
	out := make([]string, 0, len(profiles))
	for n := range profiles {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ParseProfile returns the firmware profile called name.
func ParseProfile(name string) (Profile, error) {
	p, ok := profiles[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Profile{}, fmt.Errorf("client: unknown firmware %q (want one of %s)", name, strings.Join(ProfileNames(), ", "))
	}
	p.Name = strings.ToLower(strings.TrimSpace(name))
	return p, nil
}

// HTTPProfile returns the UEFI HTTP boot profile of the same machine as p
// (efi-x64 → efi-x64-http: HttpBootDxe on the same NIC sends the same UNDI
// version as PxeBcDxe, from the same NII); an HTTP profile is returned as
// it is.
func HTTPProfile(p Profile) (Profile, error) {
	if p.HTTPBoot() {
		return p, nil
	}
	if p.IPXE || !strings.HasPrefix(p.Name, "efi-") {
		return Profile{}, fmt.Errorf("client: %s has no UEFI HTTP boot client (want an efi-* firmware)", p.Name)
	}
	return ParseProfile(p.Name + "-http")
}

// Identity is who the simulated machine is.
type Identity struct {
	MAC  net.HardwareAddr
	UUID [16]byte // option 97; UUIDFromMAC gives a stable one
}

// UUIDFromMAC derives a stable machine UUID from a MAC address (a version 4
// style UUID from a hash), so the same simulated machine always has the
// same identity.
func UUIDFromMAC(mac net.HardwareAddr) [16]byte {
	sum := sha256.Sum256(append([]byte("pxed-client-uuid:"), mac...))
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// Parameter request lists (option 55) as the firmware sends them.
var (
	// EDK II PxeBcDhcp4 (mPxeBcDhcp4ParamRequestList, abridged to the codes
	// that matter to servers).
	paramsEDK2 = []uint8{1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135}
	// PXE 2.1 ROMs.
	paramsBIOS = []uint8{1, 2, 3, 5, 6, 11, 12, 13, 15, 16, 17, 18, 43, 54, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135}
	// iPXE (net/udp/dhcp.c dhcp_request_options_data).
	paramsIPXE = []uint8{1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203}
	// EDK II HttpBootDxe.
	paramsHTTP = []uint8{1, 3, 6, 15, 43, 60, 66, 67}
)

func (p Profile) params() []uint8 {
	switch {
	case p.IPXE:
		return paramsIPXE
	case p.HTTPBoot():
		return paramsHTTP
	case p.Arch == pxe.ArchBIOS:
		return paramsBIOS
	default:
		return paramsEDK2
	}
}

// clientOptions are the options every packet of the profile carries.
func (p Profile) clientOptions(id Identity) []dhcpv4.Option {
	codes := make([]dhcpv4.OptionCode, 0, len(p.params()))
	for _, c := range p.params() {
		codes = append(codes, dhcpv4.GenericOptionCode(c))
	}
	uuid := append([]byte{0}, id.UUID[:]...) // RFC 4578 §2.3: type 0 + 16 bytes
	opts := []dhcpv4.Option{
		dhcpv4.OptParameterRequestList(codes...),
		dhcpv4.OptMaxMessageSize(1472),
		dhcpv4.OptClassIdentifier(p.VendorClass()),
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optClientArch), []byte{byte(p.Arch >> 8), byte(p.Arch)}),
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optClientNDI), []byte{1, byte(p.UNDIMajor), byte(p.UNDIMinor)}),
		dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optClientUUID), uuid),
	}
	if p.IPXE {
		// iPXE sends its user class as a plain string, not RFC 3004 encoded,
		// and its feature list in option 175 (19 = HTTP, 16 = PXE ext, 23 =
		// bzImage, 24 = multiboot, 25 = EFI).
		opts = append(opts,
			dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optUserClass), []byte("iPXE")),
			dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optIPXEEncap), []byte{16, 1, 2, 19, 1, 1, 23, 1, 1, 25, 1, 1}))
	}
	return opts
}

func newPacket(p Profile, id Identity, xid dhcpv4.TransactionID, mt dhcpv4.MessageType, extra ...dhcpv4.Option) (*dhcpv4.DHCPv4, error) {
	mods := []dhcpv4.Modifier{
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithHwAddr(id.MAC),
		// The client cannot receive a unicast to an address it does not
		// hold yet on an ordinary socket: ask for broadcast replies
		// (RFC 2131 §4.1), as iPXE and many ROMs do.
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithMessageType(mt),
	}
	for _, o := range append(p.clientOptions(id), extra...) {
		mods = append(mods, dhcpv4.WithOption(o))
	}
	pkt, err := dhcpv4.New(mods...)
	if err != nil {
		return nil, fmt.Errorf("client: build %s: %w", mt, err)
	}
	return pkt, nil
}

// NewDiscover builds the DHCPDISCOVER the firmware of p broadcasts
// (PXE 2.1 §2.2.1).
func NewDiscover(p Profile, id Identity, xid dhcpv4.TransactionID) (*dhcpv4.DHCPv4, error) {
	return newPacket(p, id, xid, dhcpv4.MessageTypeDiscover)
}

// NewRequest builds the DHCPREQUEST (SELECTING state, RFC 2131 §4.3.2) for
// the address of offer.
func NewRequest(p Profile, id Identity, offer *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	if offer == nil || offer.YourIPAddr == nil || offer.YourIPAddr.IsUnspecified() {
		return nil, fmt.Errorf("client: build request: offer has no address")
	}
	return newPacket(p, id, offer.TransactionID, dhcpv4.MessageTypeRequest,
		dhcpv4.OptRequestedIPAddress(offer.YourIPAddr),
		dhcpv4.OptServerIdentifier(offer.ServerIdentifier()))
}

// NewBootRequest builds the boot server discovery DHCPREQUEST (PXE 2.1
// §2.2.5) a client sends to port 4011 once it holds address ciaddr, asking
// for the boot server type and layer of item (sub-option 71); a nil item
// sends no option 43, as EDK II does for a BINL offer.
func NewBootRequest(p Profile, id Identity, xid dhcpv4.TransactionID, ciaddr net.IP, item *pxe.BootItem) (*dhcpv4.DHCPv4, error) {
	var extra []dhcpv4.Option
	if item != nil {
		vo, err := pxe.VendorOptions{BootItem: item}.Marshal()
		if err != nil {
			return nil, fmt.Errorf("client: build boot request: %w", err)
		}
		extra = append(extra, dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optVendorSpecific), vo))
	}
	pkt, err := newPacket(p, id, xid, dhcpv4.MessageTypeRequest, extra...)
	if err != nil {
		return nil, err
	}
	pkt.ClientIPAddr = ciaddr
	pkt.SetUnicast()
	return pkt, nil
}
