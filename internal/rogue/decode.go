// Package rogue notices DHCP and ProxyDHCP replies to boot clients from
// servers other than pxed on the networks it serves, and reports them: an
// event, a log line per server and interval, a bounded table for the API and
// the metrics.
//
// It has the three layers of every protocol in pxed: the codec (Decode: an
// Ethernet frame read from a packet socket → Reply), the policy (Classify: a
// pure function that says whether a reply is pxed's own, expected, or a
// rogue's, and why) and the loop (Detector: packet sockets with a classic
// BPF filter that lets through only server → client DHCP traffic, so the
// kernel drops everything else and pxed spends nothing while nobody else
// talks).
//
// Replies from other servers go to the client port (UDP 68, DHCPv6 546),
// which pxed never binds: a host's own DHCP client owns it. Only what
// reaches pxed's interfaces can be seen: broadcast replies (PXE firmware and
// iPXE set the broadcast flag, so their offers are broadcast) and unicast
// replies a bridge or hub floods; DHCPv6 replies are unicast to the client's
// link-local address and are seen only where they are flooded.
package rogue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
)

// Ports of the server → client direction.
const (
	PortServer4    = 67   // DHCPv4 and ProxyDHCP server (RFC 2131 §4.1)
	PortBootServer = 4011 // PXE boot server (PXE 2.1 §2.2.5); its replies go to the client's port
	PortClient4    = 68
	PortServer6    = 547 // RFC 8415 §7.2
	PortClient6    = 546
)

const (
	etherHeaderLen = 14
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	protoUDP       = 17
	udpHeaderLen   = 8
	ipv6HeaderLen  = 40
)

// Reply is a DHCP server's reply to a client as seen on the wire: who sent
// it, to whom, and what it offered.
type Reply struct {
	Family  int              // 4 or 6
	SrcMAC  net.HardwareAddr // the sender's MAC (a relay agent's when relayed)
	DstMAC  net.HardwareAddr
	Src     netip.Addr // IP source (a relay agent's when relayed)
	Dst     netip.Addr
	SrcPort uint16
	DstPort uint16

	// Type is the message: "offer", "ack", "nak", "bootp" (a BOOTREPLY
	// without DHCP message type), "other" (DHCPv4); "advertise", "reply",
	// "other" (DHCPv6).
	Type   string
	XID    uint32
	Client net.HardwareAddr // chaddr; DHCPv6: the client DUID's link-layer address, if it has one

	YIAddr   netip.Addr // DHCPv4 yiaddr (0.0.0.0 for ProxyDHCP); DHCPv6: the first IA_NA address, if any
	SIAddr   netip.Addr // DHCPv4 siaddr (next server)
	GIAddr   netip.Addr // DHCPv4 giaddr: set when the reply went through a relay agent
	ServerID netip.Addr // DHCPv4 option 54
	ServerHW net.HardwareAddr
	// ServerHW is the DHCPv6 server DUID's link-layer address, if it has one.

	File        string // DHCPv4 file field, else option 67; DHCPv6 option 59 (boot file URL)
	VendorClass string // DHCPv4 option 60; DHCPv6 option 16's first class
	VendorOpts  bool   // DHCPv4 option 43 present (PXE vendor options)
}

// ErrNotReply is returned for a frame that is not a server → client DHCP
// reply (the BPF filter lets only those through; Decode checks again).
var ErrNotReply = errors.New("not a DHCP server reply")

// Decode reads an Ethernet frame carrying a DHCPv4 or DHCPv6 message from a
// server port to a client port. Any other frame, or a malformed one, is an
// error; Decode never panics on input.
func Decode(frame []byte) (Reply, error) {
	var r Reply
	if len(frame) < etherHeaderLen {
		return r, fmt.Errorf("frame of %d bytes: %w", len(frame), ErrNotReply)
	}
	r.DstMAC = net.HardwareAddr(append([]byte(nil), frame[0:6]...))
	r.SrcMAC = net.HardwareAddr(append([]byte(nil), frame[6:12]...))
	var payload []byte
	var err error
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeIPv4:
		r.Family = 4
		payload, err = r.decodeIPv4(frame[etherHeaderLen:])
	case etherTypeIPv6:
		r.Family = 6
		payload, err = r.decodeIPv6(frame[etherHeaderLen:])
	default:
		return r, fmt.Errorf("ethertype %#04x: %w", binary.BigEndian.Uint16(frame[12:14]), ErrNotReply)
	}
	if err != nil {
		return r, err
	}
	if r.Family == 4 {
		if (r.SrcPort != PortServer4 && r.SrcPort != PortBootServer) || r.DstPort != PortClient4 {
			return r, fmt.Errorf("udp %d → %d: %w", r.SrcPort, r.DstPort, ErrNotReply)
		}
		return r, r.decodeDHCPv4(payload)
	}
	if r.SrcPort != PortServer6 || r.DstPort != PortClient6 {
		return r, fmt.Errorf("udp %d → %d: %w", r.SrcPort, r.DstPort, ErrNotReply)
	}
	return r, r.decodeDHCPv6(payload)
}

func (r *Reply) decodeIPv4(b []byte) ([]byte, error) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return nil, errors.New("ipv4: short or wrong version")
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl+udpHeaderLen || total > len(b) {
		return nil, fmt.Errorf("ipv4: header length %d, total length %d, %d bytes read", ihl, total, len(b))
	}
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 {
		return nil, errors.New("ipv4: fragment")
	}
	if b[9] != protoUDP {
		return nil, fmt.Errorf("ipv4: protocol %d: %w", b[9], ErrNotReply)
	}
	r.Src = netip.AddrFrom4([4]byte(b[12:16]))
	r.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	return r.decodeUDP(b[ihl:total])
}

func (r *Reply) decodeIPv6(b []byte) ([]byte, error) {
	if len(b) < ipv6HeaderLen || b[0]>>4 != 6 {
		return nil, errors.New("ipv6: short or wrong version")
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if ipv6HeaderLen+plen > len(b) {
		return nil, fmt.Errorf("ipv6: payload length %d, %d bytes read", plen, len(b)-ipv6HeaderLen)
	}
	if b[6] != protoUDP { // extension headers: not what a DHCPv6 server sends
		return nil, fmt.Errorf("ipv6: next header %d: %w", b[6], ErrNotReply)
	}
	r.Src = netip.AddrFrom16([16]byte(b[8:24]))
	r.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	return r.decodeUDP(b[ipv6HeaderLen : ipv6HeaderLen+plen])
}

func (r *Reply) decodeUDP(b []byte) ([]byte, error) {
	if len(b) < udpHeaderLen {
		return nil, errors.New("udp: short header")
	}
	r.SrcPort = binary.BigEndian.Uint16(b[0:2])
	r.DstPort = binary.BigEndian.Uint16(b[2:4])
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n < udpHeaderLen || n > len(b) {
		return nil, fmt.Errorf("udp: length %d, %d bytes read", n, len(b))
	}
	return b[udpHeaderLen:n], nil
}

func (r *Reply) decodeDHCPv4(b []byte) error {
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return fmt.Errorf("dhcpv4: %w", err)
	}
	if m.OpCode != dhcpv4.OpcodeBootReply {
		return fmt.Errorf("dhcpv4 %s: %w", m.OpCode, ErrNotReply)
	}
	r.XID = binary.BigEndian.Uint32(m.TransactionID[:])
	r.Client = append(net.HardwareAddr(nil), m.ClientHWAddr...)
	r.YIAddr = addr4(m.YourIPAddr)
	r.SIAddr = addr4(m.ServerIPAddr)
	r.GIAddr = addr4(m.GatewayIPAddr)
	r.ServerID = addr4(m.ServerIdentifier())
	switch t := m.MessageType(); t {
	case dhcpv4.MessageTypeOffer:
		r.Type = "offer"
	case dhcpv4.MessageTypeAck:
		r.Type = "ack"
	case dhcpv4.MessageTypeNak:
		r.Type = "nak"
	case dhcpv4.MessageTypeNone:
		r.Type = "bootp"
	default:
		r.Type = "other"
	}
	r.File = m.BootFileName
	if r.File == "" {
		// Servers (dnsmasq) often send the NUL terminator in option 67.
		r.File = strings.TrimRight(string(m.GetOneOption(dhcpv4.OptionBootfileName)), "\x00")
	}
	r.VendorClass = strings.TrimRight(string(m.GetOneOption(dhcpv4.OptionClassIdentifier)), "\x00")
	r.VendorOpts = m.Options.Has(dhcpv4.OptionVendorSpecificInformation)
	return nil
}

func (r *Reply) decodeDHCPv6(b []byte) error {
	m, err := dhcpv6.MessageFromBytes(b)
	if err != nil {
		return fmt.Errorf("dhcpv6: %w", err)
	}
	r.XID = uint32(m.TransactionID[0])<<16 | uint32(m.TransactionID[1])<<8 | uint32(m.TransactionID[2])
	switch m.MessageType {
	case dhcpv6.MessageTypeAdvertise:
		r.Type = "advertise"
	case dhcpv6.MessageTypeReply:
		r.Type = "reply"
	default:
		r.Type = "other"
	}
	r.Client = duidHW(m.Options.ClientID())
	r.ServerHW = duidHW(m.Options.ServerID())
	if ia := m.Options.OneIANA(); ia != nil {
		if a := ia.Options.OneAddress(); a != nil {
			r.YIAddr, _ = netip.AddrFromSlice(a.IPv6Addr)
		}
	}
	r.File = m.Options.BootFileURL()
	if vcs := m.Options.VendorClasses(); len(vcs) > 0 && len(vcs[0].Data) > 0 {
		r.VendorClass = string(vcs[0].Data[0])
	}
	return nil
}

// duidHW is the link-layer address of a DUID-LL or DUID-LLT, else nil.
func duidHW(d dhcpv6.DUID) net.HardwareAddr {
	switch d := d.(type) {
	case *dhcpv6.DUIDLL:
		return append(net.HardwareAddr(nil), d.LinkLayerAddr...)
	case *dhcpv6.DUIDLLT:
		return append(net.HardwareAddr(nil), d.LinkLayerAddr...)
	}
	return nil
}

func addr4(ip net.IP) netip.Addr {
	if ip4 := ip.To4(); ip4 != nil {
		return netip.AddrFrom4([4]byte(ip4))
	}
	return netip.IPv4Unspecified()
}

// PXE reports whether the reply carries PXE or HTTP boot information for
// the firmware: option 60 PXEClient or HTTPClient (PXE 2.1 §2.2.1, UEFI
// 2.10 §24.7.2), PXE vendor options (43), or a boot file.
func (r Reply) PXE() bool {
	return strings.HasPrefix(r.VendorClass, "PXEClient") || strings.HasPrefix(r.VendorClass, "HTTPClient") ||
		r.VendorOpts || r.File != ""
}

// Server is the address that names the replying server: DHCPv4 option 54
// when present (it survives a relay agent), else the IP source.
func (r Reply) Server() netip.Addr {
	if r.Family == 4 && r.ServerID.IsValid() && !r.ServerID.IsUnspecified() {
		return r.ServerID
	}
	return r.Src
}

// Relayed reports whether a relay agent forwarded the reply (giaddr set).
func (r Reply) Relayed() bool {
	return r.Family == 4 && r.GIAddr.IsValid() && !r.GIAddr.IsUnspecified()
}
