package rogue

import (
	"encoding/binary"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// frame encodes r as Decode reads it (the tests' and the fuzz round trip's
// encoder): Ethernet, IPv4 or IPv6 (no checksums: Decode does not check
// them, the kernel did), UDP, DHCP.
func frame(r Reply) []byte {
	var payload []byte
	if r.Family == 4 {
		payload = dhcp4Payload(r)
	} else {
		payload = dhcp6Payload(r)
	}
	udp := make([]byte, udpHeaderLen, udpHeaderLen+len(payload))
	binary.BigEndian.PutUint16(udp[0:], r.SrcPort)
	binary.BigEndian.PutUint16(udp[2:], r.DstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpHeaderLen+len(payload)))
	udp = append(udp, payload...)
	eth := make([]byte, etherHeaderLen)
	copy(eth[0:6], r.DstMAC)
	copy(eth[6:12], r.SrcMAC)
	var ip []byte
	if r.Family == 4 {
		binary.BigEndian.PutUint16(eth[12:], etherTypeIPv4)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip[8], ip[9] = 64, protoUDP
		s, d := r.Src.As4(), r.Dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(eth[12:], etherTypeIPv6)
		ip = make([]byte, ipv6HeaderLen)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
		ip[6], ip[7] = protoUDP, 64
		s, d := r.Src.As16(), r.Dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	return append(append(eth, ip...), udp...)
}

func dhcp4Payload(r Reply) []byte {
	m := &dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootReply, HWType: iana.HWTypeEthernet, ClientHWAddr: r.Client,
		YourIPAddr: r.YIAddr.AsSlice(), ServerIPAddr: r.SIAddr.AsSlice(), GatewayIPAddr: r.GIAddr.AsSlice(),
		ClientIPAddr: net.IPv4zero, Options: dhcpv4.Options{}}
	binary.BigEndian.PutUint32(m.TransactionID[:], r.XID)
	switch r.Type {
	case "offer":
		m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
	case "ack":
		m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck))
	case "nak":
		m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
	case "other":
		m.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeInform))
	}
	if r.ServerID.IsValid() && !r.ServerID.IsUnspecified() {
		m.UpdateOption(dhcpv4.OptServerIdentifier(r.ServerID.AsSlice()))
	}
	if r.File != "" {
		m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionBootfileName, []byte(r.File)))
	}
	if r.VendorClass != "" {
		m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClassIdentifier, []byte(r.VendorClass)))
	}
	if r.VendorOpts {
		m.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, []byte{6, 1, 8}))
	}
	return m.ToBytes()
}

func dhcp6Payload(r Reply) []byte {
	m := &dhcpv6.Message{}
	switch r.Type {
	case "advertise":
		m.MessageType = dhcpv6.MessageTypeAdvertise
	case "reply":
		m.MessageType = dhcpv6.MessageTypeReply
	default:
		m.MessageType = dhcpv6.MessageTypeReconfigure
	}
	m.TransactionID = dhcpv6.TransactionID{byte(r.XID >> 16), byte(r.XID >> 8), byte(r.XID)}
	if r.Client != nil {
		m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: r.Client}))
	}
	if r.ServerHW != nil {
		m.AddOption(dhcpv6.OptServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: r.ServerHW}))
	}
	if r.YIAddr.IsValid() {
		m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 1}, Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{
			&dhcpv6.OptIAAddress{IPv6Addr: r.YIAddr.AsSlice()}}}})
	}
	if r.File != "" {
		m.AddOption(dhcpv6.OptBootFileURL(r.File))
	}
	if r.VendorClass != "" {
		m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: 343, Data: [][]byte{[]byte(r.VendorClass)}})
	}
	return m.ToBytes()
}
