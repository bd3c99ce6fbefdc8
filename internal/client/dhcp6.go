package client

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/pxe"
)

// EnterprisePXE is the enterprise number of the vendor class EDK II sends
// and expects over DHCPv6 (PXEBC_DHCP6_ENTERPRISE_NUM, Intel's 343; UEFI
// 2.10 §24.3.1).
const EnterprisePXE = 343

// DHCPv6 destinations.
var (
	// AllDHCP6 is All_DHCP_Relay_Agents_and_Servers port 547 (RFC 8415
	// §7.1): where Solicit, Request and Information-request go.
	AllDHCP6 = netip.AddrPortFrom(netip.MustParseAddr("ff02::1:2"), 547)
)

// DUID kinds the client sends as its identifier (Dhcp6Dxe
// Dhcp6GenerateClientId: DUID-UUID when PcdDhcp6UidType asks for it and
// the machine has an SMBIOS UUID, else DUID-LLT).
const (
	DUIDUUID = "uuid"
	DUIDLLT  = "llt"
)

// Identity6 is who a simulated machine is over DHCPv6.
type Identity6 struct {
	MAC  net.HardwareAddr
	UUID [16]byte
	// DUID is DUIDUUID or DUIDLLT; "" means DUIDUUID.
	DUID string
	// IAID of the IA_NA; zero derives one from the MAC.
	IAID [4]byte
}

// ClientDUID returns the DUID id sends as its client identifier. A
// DUID-LLT's time is fixed (2000-01-01 plus the MAC's last bytes), so one
// machine keeps one identity.
func (id Identity6) ClientDUID() dhcpv6.DUID {
	if id.DUID == DUIDLLT {
		var t uint32
		for _, b := range id.MAC {
			t = t<<8 | uint32(b)
		}
		return &dhcpv6.DUIDLLT{HWType: iana.HWTypeEthernet, Time: t & 0x00ffffff, LinkLayerAddr: id.MAC}
	}
	return &dhcpv6.DUIDUUID{UUID: id.UUID}
}

func (id Identity6) iaid() [4]byte {
	if id.IAID != ([4]byte{}) || len(id.MAC) < 4 {
		return id.IAID
	}
	n := len(id.MAC)
	return [4]byte{id.MAC[n-4], id.MAC[n-3], id.MAC[n-2], id.MAC[n-1]}
}

// options6 are the options PxeBcBuildDhcp6Options (and HttpBootBuildDhcp6Options,
// identical but for the class) add to every message: ORO with the boot
// file URL and parameters, DNS servers and the vendor class (59, 60, 23,
// 16), the NII (62), the architecture (61) and the vendor class under
// enterprise 343.
func (p Profile) options6() []dhcpv6.Option {
	return []dhcpv6.Option{
		dhcpv6.OptRequestedOption(dhcpv6.OptionBootfileURL, dhcpv6.OptionBootfileParam,
			dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionVendorClass),
		&dhcpv6.OptNetworkInterfaceID{Typ: dhcpv6.NII_UNDI_NOEFI, Major: uint8(p.UNDIMajor), Minor: uint8(p.UNDIMinor)},
		dhcpv6.OptClientArchType(iana.Arch(p.Arch)),
		&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: [][]byte{[]byte(p.VendorClass())}},
	}
}

// NewSolicit6 builds the Solicit of EDK II's PXE (or HTTP boot) client
// (Dhcp6SendSolicitMsg): client identifier, elapsed time 0, an IA_NA with
// T1 = T2 = 0 and no address, then the options of options6.
func NewSolicit6(p Profile, id Identity6, xid dhcpv6.TransactionID) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: xid}
	m.AddOption(dhcpv6.OptClientID(id.ClientDUID()))
	m.AddOption(dhcpv6.OptElapsedTime(0))
	m.AddOption(&dhcpv6.OptIANA{IaId: id.iaid()})
	for _, o := range p.options6() {
		m.AddOption(o)
	}
	return m
}

// NewRequest6 builds the Request for the address of adv (Dhcp6SendRequestMsg):
// the server's identifier, the IA_NA of the Advertise, and the Solicit's
// options.
func NewRequest6(p Profile, id Identity6, xid dhcpv6.TransactionID, adv *dhcpv6.Message, elapsed time.Duration) (*dhcpv6.Message, error) {
	sid := adv.Options.ServerID()
	ia := adv.Options.OneIANA()
	if sid == nil || ia == nil {
		return nil, errors.New("client: build request: the Advertise has no server identifier or IA_NA")
	}
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeRequest, TransactionID: xid}
	m.AddOption(dhcpv6.OptClientID(id.ClientDUID()))
	m.AddOption(dhcpv6.OptServerID(sid))
	m.AddOption(elapsedTime(elapsed))
	m.AddOption(&dhcpv6.OptIANA{IaId: ia.IaId, Options: ia.Options})
	for _, o := range p.options6() {
		m.AddOption(o)
	}
	return m, nil
}

// NewBootRequest6 builds the request EDK II sends to a BINL offer's boot
// service on port 4011 (PxeBcRequestBootService): the Request it sent to
// its address server without IA_NA, IA_TA and server identifier, headed by
// the proxy offer's server identifier when the offer is ProxyBinl (a
// DhcpBinl offer gets none), with the proxy offer's transaction ID.
func NewBootRequest6(request *dhcpv6.Message, offer *dhcpv6.Message, proxy bool, elapsed time.Duration) (*dhcpv6.Message, error) {
	m := &dhcpv6.Message{MessageType: request.MessageType, TransactionID: offer.TransactionID}
	if proxy {
		sid := offer.Options.ServerID()
		if sid == nil {
			return nil, errors.New("client: boot request: the ProxyBinl offer has no server identifier")
		}
		// PXEBC_MIN_SIZE_OF_DUID, PXEBC_MAX_SIZE_OF_DUID.
		if n := len(sid.ToBytes()); n < 2 || n > 130 {
			return nil, fmt.Errorf("client: boot request: the ProxyBinl offer's server identifier is %d bytes", n)
		}
		m.AddOption(dhcpv6.OptServerID(sid))
	}
	for _, o := range request.Options.Options {
		switch o.Code() {
		case dhcpv6.OptionIANA, dhcpv6.OptionIATA, dhcpv6.OptionServerID:
			continue
		case dhcpv6.OptionElapsedTime:
			o = elapsedTime(elapsed)
		}
		m.AddOption(o)
	}
	return m, nil
}

// NewInfoRequest6 builds iPXE's Information-request (net/udp/dhcpv6.c
// dhcpv6_tx in stateless mode): client identifier (iPXE's DUID-UUID), its
// fixed options (ORO 23, 24, 59, 60; vendor class PXEClient under 343;
// architecture; NII), user class "iPXE" and elapsed time.
func NewInfoRequest6(p Profile, id Identity6, xid dhcpv6.TransactionID) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeInformationRequest, TransactionID: xid}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDUUID{UUID: id.UUID}))
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList,
		dhcpv6.OptionBootfileURL, dhcpv6.OptionBootfileParam))
	m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: [][]byte{[]byte(p.VendorClass())}})
	m.AddOption(dhcpv6.OptClientArchType(iana.Arch(p.Arch)))
	m.AddOption(&dhcpv6.OptNetworkInterfaceID{Typ: dhcpv6.NII_UNDI_NOEFI, Major: uint8(p.UNDIMajor), Minor: uint8(p.UNDIMinor)})
	m.AddOption(&dhcpv6.OptUserClass{UserClasses: [][]byte{[]byte("iPXE")}})
	m.AddOption(dhcpv6.OptElapsedTime(0))
	return m
}

// elapsedTime is option 8 in hundredths of a second, capped at 0xffff
// (RFC 8415 §21.9).
func elapsedTime(d time.Duration) dhcpv6.Option {
	return dhcpv6.OptElapsedTime(min(d, 655350*time.Millisecond))
}

// Offer6 is one Advertise (or boot service Reply) the client received.
type Offer6 struct {
	From     netip.AddrPort `json:"from"`
	ServerID string         `json:"server_id"` // hex of the DUID
	// Kind is "dhcp" (an IA_NA without a failed status: it gives an
	// address) or "proxy" (EDK II's IsProxyOffer).
	Kind string `json:"kind"`
	// Type is the firmware's offer type: DhcpBinl, ProxyBinl or DhcpOnly
	// for PXE (PxeBcParseDhcp6Packet); an HTTPOfferType name for HTTP boot.
	Type           string        `json:"type"`
	Addr           netip.Addr    `json:"addr,omitzero"` // the IA_NA address
	HasPreference  bool          `json:"has_preference,omitempty"`
	Preference     uint8         `json:"preference,omitempty"`
	BootFileURL    string        `json:"boot_file_url,omitempty"` // option 59
	BootFileParams []string      `json:"boot_file_params,omitempty"`
	VendorClass    string        `json:"vendor_class,omitempty"` // first class data of option 16
	Enterprise     uint32        `json:"enterprise,omitempty"`   // of that option 16
	DNS            []netip.Addr  `json:"dns,omitempty"`
	Status         string        `json:"status,omitempty"` // a status code, when the message has one
	After          time.Duration `json:"after_ns"`         // since the first Solicit
	// Dropped says why the firmware discards this message (Dhcp6Dxe: a
	// failed status; HttpBootDxe: not a usable offer); "" when it counts.
	Dropped string `json:"dropped,omitempty"`

	Msg *dhcpv6.Message `json:"-"`
}

// Server returns the address identifying the server of o: its source.
func (o Offer6) Server() netip.Addr { return o.From.Addr() }

// NewOffer6 summarises m, received from from; iaid is the client's IA_NA
// (Dhcp6SeekStsOption looks for the status in the IA of that IAID).
func NewOffer6(m *dhcpv6.Message, from netip.AddrPort, after time.Duration, iaid [4]byte) Offer6 {
	o := Offer6{From: from, After: after, Msg: m, Kind: "proxy", BootFileURL: m.Options.BootFileURL(),
		BootFileParams: m.Options.BootFileParam()}
	if sid := m.Options.ServerID(); sid != nil {
		o.ServerID = hex.EncodeToString(sid.ToBytes())
	}
	if p := m.Options.GetOne(dhcpv6.OptionPreference); p != nil {
		o.HasPreference, o.Preference = true, m.Options.Preference()
	}
	if vcs := m.Options.VendorClasses(); len(vcs) > 0 {
		// EDK II keeps the last option 16 and compares its first class data.
		vc := vcs[len(vcs)-1]
		o.Enterprise = vc.EnterpriseNumber
		if len(vc.Data) > 0 {
			o.VendorClass = string(vc.Data[0])
		}
	}
	for _, ip := range m.Options.DNS() {
		if a, ok := netip.AddrFromSlice(ip); ok {
			o.DNS = append(o.DNS, a)
		}
	}
	if st := m.Options.Status(); st != nil {
		o.Status = st.StatusCode.String()
		if st.StatusCode != iana.StatusSuccess {
			// Dhcp6SeekStsOption: a top-level status other than Success.
			o.Dropped = fmt.Sprintf("status %s: Dhcp6Dxe discards the Advertise", st.StatusCode)
		}
	}
	if ia := iaByID(m, iaid); ia != nil {
		if st := ia.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess && o.Dropped == "" {
			o.Status = st.StatusCode.String()
			o.Dropped = fmt.Sprintf("IA_NA status %s: Dhcp6Dxe discards the Advertise", st.StatusCode)
		}
	}
	// PxeBcParseDhcp6Packet: the last IA_NA, with a status of success in
	// its options or none, is an address offer.
	if ias := m.Options.IANA(); len(ias) > 0 {
		ia := ias[len(ias)-1]
		if st := ia.Options.Status(); st == nil || st.StatusCode == iana.StatusSuccess {
			o.Kind = "dhcp"
		}
		if a := ia.Options.OneAddress(); a != nil {
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok {
				o.Addr = ip
			}
		}
	}
	return o
}

func iaByID(m *dhcpv6.Message, iaid [4]byte) *dhcpv6.OptIANA {
	for _, ia := range m.Options.IANA() {
		if ia.IaId == iaid {
			return ia
		}
	}
	return nil
}

// PXE6 offer types (PXEBC_OFFER_TYPE as PxeBcParseDhcp6Packet sets it:
// over IPv6 only these three occur).
const (
	PXE6DhcpBinl  = "DhcpBinl"  // an address and vendor class PXEClient under 343
	PXE6ProxyBinl = "ProxyBinl" // PXEClient under 343, no address
	PXE6DhcpOnly  = "DhcpOnly"  // anything else, address or not
)

// ClassifyPXE6 returns o's offer type as PxeBcParseDhcp6Packet decides
// it: vendor class data starting "PXEClient" (nine bytes compared) under
// enterprise 343 makes a BINL offer, proxy without an address; anything
// else is DhcpOnly.
func ClassifyPXE6(o Offer6) string {
	pxeOffer := o.Enterprise == EnterprisePXE && strings.HasPrefix(o.VendorClass, pxe.PXEClient)
	switch {
	case pxeOffer && o.Kind == "proxy":
		return PXE6ProxyBinl
	case pxeOffer:
		return PXE6DhcpBinl
	}
	return PXE6DhcpOnly
}

// pxeOfferMax is PXEBC_OFFER_MAX_NUM: offers past it are not cached.
const pxeOfferMax = 16

// SelectPXE6 chooses among offers (their Type set by ClassifyPXE6, in the
// order received) as PxeBcSelectDhcp6Offer does with the default policy
// (offers sorted): 1. the first DhcpBinl offer; 2. the first DhcpOnly
// offer for the address with the ProxyBinl offers for the boot file;
// 3. the first DhcpOnly offer that carries a boot file URL. (Rules 1–4 of
// the IPv4 policy need PXE 1.0 or WfM 1.1a offers, which do not exist over
// IPv6.) Boot is the first ProxyBinl offer for rule 2; the client tries
// the others in order when its boot service does not answer. Dropped
// offers, and those past the first 16, are not considered.
func SelectPXE6(offers []Offer6) Selection {
	first := map[string]int{}
	firstURL := -1
	n := 0
	for i, o := range offers {
		if o.Dropped != "" {
			continue
		}
		if n++; n > pxeOfferMax {
			break
		}
		if _, ok := first[o.Type]; !ok {
			first[o.Type] = i
		}
		if o.Type == PXE6DhcpOnly && o.BootFileURL != "" && firstURL < 0 {
			firstURL = i
		}
	}
	dhcpOnly, hasDhcpOnly := first[PXE6DhcpOnly]
	proxy, hasProxy := first[PXE6ProxyBinl]
	if i, ok := first[PXE6DhcpBinl]; ok {
		return Selection{Address: i, Boot: i, Rank: 5, Reason: "DhcpBinl offer: address and PXEClient from one server (EDK II priority 5)"}
	}
	if hasProxy && hasDhcpOnly {
		return Selection{Address: dhcpOnly, Boot: proxy, Rank: 6, Reason: "DhcpOnly offer for the address, ProxyBinl offer for the boot file (EDK II priority 6)"}
	}
	if firstURL >= 0 {
		return Selection{Address: firstURL, Boot: firstURL, Rank: 7, Reason: "DhcpOnly offer with a boot file URL (EDK II priority 7)"}
	}
	switch {
	case len(offers) == 0:
		return Selection{Address: -1, Boot: -1, Reason: "no Advertise received"}
	case hasProxy:
		return Selection{Address: -1, Boot: -1, Reason: "ProxyBinl offers but no DHCPv6 server offered an address"}
	case hasDhcpOnly:
		return Selection{Address: -1, Boot: -1, Reason: "addresses offered, but no PXEClient offer and no boot file URL"}
	}
	return Selection{Address: -1, Boot: -1, Reason: "no usable Advertise (Dhcp6Dxe dropped every one)"}
}

// BootFileURL6 is a boot file URL split as PxeBcExtractBootFileUrl splits
// it: tftp://[SERVER_ADDRESS]/BOOTFILE_NAME, or a host name that needs DNS.
type BootFileURL6 struct {
	Server netip.Addr // zero when Host is a name
	Host   string     // the name, when not an address literal
	File   string     // without a trailing ";mode=octet"
}

// ParseBootFileURL6 splits a PXE boot file URL (option 59, RFC 5970 §3.1)
// the way EDK II does: it must start "tftp://"; "[addr]" must be followed
// by "/"; ";mode=octet" at the end is dropped and any other ";mode=" is
// refused. The file name is what follows, percent-encoding untouched.
func ParseBootFileURL6(u string) (BootFileURL6, error) {
	rest, ok := strings.CutPrefix(u, "tftp://")
	if !ok || rest == "" {
		return BootFileURL6{}, fmt.Errorf("client: boot file URL %q: not tftp://[addr]/file (EDK II loads PXE files over TFTP only)", u)
	}
	if i := strings.IndexByte(rest, 0); i >= 0 {
		rest = rest[:i] // a C string ends at NUL
	}
	var b BootFileURL6
	if host, ok := strings.CutPrefix(rest, "["); ok {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return b, fmt.Errorf("client: boot file URL %q: no ']' after the address", u)
		}
		a, err := netip.ParseAddr(host[:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return b, fmt.Errorf("client: boot file URL %q: %q is not an IPv6 address", u, host[:end])
		}
		b.Server = a
		if rest = host[end+1:]; !strings.HasPrefix(rest, "/") {
			return b, fmt.Errorf("client: boot file URL %q: no '/' after the address", u)
		}
		rest = rest[1:]
	} else {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return b, fmt.Errorf("client: boot file URL %q: no '/' after the host name", u)
		}
		b.Host, rest = rest[:i], rest[i+1:]
	}
	if f, ok := strings.CutSuffix(rest, ";mode=octet"); ok {
		rest = f
	} else if strings.Contains(rest, ";mode=") {
		return b, fmt.Errorf("client: boot file URL %q: only ;mode=octet is allowed", u)
	}
	b.File = rest
	return b, nil
}

// sameDUID reports whether two server identifiers are the same bytes.
func sameDUID(a, b dhcpv6.DUID) bool {
	return a != nil && b != nil && bytes.Equal(a.ToBytes(), b.ToBytes())
}
