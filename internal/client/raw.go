package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Frame layouts for the raw-socket transport: Ethernet II carrying IPv4 and
// UDP (RFC 791, RFC 768) or ARP (RFC 826). Simulated machines need their
// own MAC address on the wire, which a kernel UDP socket cannot give, so
// pxed storm writes whole frames on an AF_PACKET socket.
const (
	etherHeaderLen = 14
	ipv4HeaderLen  = 20 // without options, as we send
	udpHeaderLen   = 8
	arpLen         = 28

	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	protoUDP      = 17
)

// BroadcastMAC is the Ethernet broadcast address.
var BroadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// UDPFrame is an Ethernet frame carrying one IPv4 UDP datagram.
type UDPFrame struct {
	DstMAC, SrcMAC net.HardwareAddr
	Src, Dst       netip.AddrPort // IPv4
	TTL            uint8          // 0 means 64 when encoding
	Payload        []byte
}

// Errors of DecodeUDPFrame that callers skip quietly.
var (
	errNotIPv4UDP = errors.New("not an IPv4 UDP frame")
	errFragment   = errors.New("IPv4 fragment")
)

// AppendUDPFrame appends the encoding of f to b and returns it. The IPv4
// header checksum is filled in (RFC 791 §3.1) and so is the UDP checksum
// over the pseudo-header (RFC 768); DF is set and the ID is 0 (RFC 6864
// §4.1: atomic datagrams). Payloads that do not fit one IPv4 datagram are
// an error.
func AppendUDPFrame(b []byte, f UDPFrame) ([]byte, error) {
	if len(f.DstMAC) != 6 || len(f.SrcMAC) != 6 {
		return b, fmt.Errorf("client: frame: MAC addresses must have 6 bytes (dst %v, src %v)", f.DstMAC, f.SrcMAC)
	}
	if !f.Src.Addr().Is4() || !f.Dst.Addr().Is4() {
		return b, fmt.Errorf("client: frame: %v → %v: IPv4 addresses only", f.Src, f.Dst)
	}
	total := ipv4HeaderLen + udpHeaderLen + len(f.Payload)
	if total > 0xffff {
		return b, fmt.Errorf("client: frame: payload of %d bytes does not fit an IPv4 datagram", len(f.Payload))
	}
	ttl := f.TTL
	if ttl == 0 {
		ttl = 64
	}
	b = append(b, f.DstMAC...)
	b = append(b, f.SrcMAC...)
	b = binary.BigEndian.AppendUint16(b, etherTypeIPv4)
	ip := len(b)
	src, dst := f.Src.Addr().As4(), f.Dst.Addr().As4()
	b = append(b, 0x45, 0)                              // version 4, IHL 5; DSCP 0
	b = binary.BigEndian.AppendUint16(b, uint16(total)) // total length
	b = append(b, 0, 0, 0x40, 0, ttl, protoUDP, 0, 0)   // ID 0, DF, TTL, UDP, checksum
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], checksum(b[ip:ip+ipv4HeaderLen], 0))
	udp := len(b)
	b = binary.BigEndian.AppendUint16(b, f.Src.Port())
	b = binary.BigEndian.AppendUint16(b, f.Dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(udpHeaderLen+len(f.Payload)))
	b = append(b, 0, 0)
	b = append(b, f.Payload...)
	sum := checksum(b[udp:], pseudoHeader(src, dst, udpHeaderLen+len(f.Payload)))
	if sum == 0 {
		sum = 0xffff // RFC 768: a computed 0 is sent as all ones
	}
	binary.BigEndian.PutUint16(b[udp+6:], sum)
	return b, nil
}

// DecodeUDPFrame parses an Ethernet II frame carrying an IPv4 UDP
// datagram. The payload aliases frame. Frames that are not IPv4 UDP,
// fragments, and lengths that do not add up are errors; checksums are not
// verified (the kernel's own receive path has done so for frames that
// crossed a real link, and veth frames carry none).
func DecodeUDPFrame(frame []byte) (UDPFrame, error) {
	var f UDPFrame
	if len(frame) < etherHeaderLen {
		return f, fmt.Errorf("client: frame of %d bytes: %w", len(frame), errNotIPv4UDP)
	}
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv4 {
		return f, errNotIPv4UDP
	}
	f.DstMAC, f.SrcMAC = net.HardwareAddr(frame[0:6]), net.HardwareAddr(frame[6:12])
	ip := frame[etherHeaderLen:]
	if len(ip) < ipv4HeaderLen || ip[0]>>4 != 4 {
		return f, fmt.Errorf("client: truncated or not IPv4: %w", errNotIPv4UDP)
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < ipv4HeaderLen || total < ihl || total > len(ip) {
		return f, fmt.Errorf("client: IPv4 header length %d, total length %d, %d bytes: %w", ihl, total, len(ip), errNotIPv4UDP)
	}
	if ip[9] != protoUDP {
		return f, errNotIPv4UDP
	}
	if frag := binary.BigEndian.Uint16(ip[6:8]); frag&0x3fff != 0 { // MF or an offset
		return f, errFragment
	}
	f.TTL = ip[8]
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	udp := ip[ihl:total] // Ethernet padding after total is dropped
	if len(udp) < udpHeaderLen {
		return f, fmt.Errorf("client: UDP header truncated: %w", errNotIPv4UDP)
	}
	ulen := int(binary.BigEndian.Uint16(udp[4:6]))
	if ulen < udpHeaderLen || ulen > len(udp) {
		return f, fmt.Errorf("client: UDP length %d in %d bytes: %w", ulen, len(udp), errNotIPv4UDP)
	}
	f.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:2]))
	f.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:4]))
	f.Payload = udp[udpHeaderLen:ulen]
	return f, nil
}

// pseudoHeader is the one's complement sum of the UDP pseudo-header
// (RFC 768): addresses, protocol and UDP length.
func pseudoHeader(src, dst [4]byte, udpLen int) uint32 {
	var s uint32
	s += uint32(src[0])<<8 | uint32(src[1])
	s += uint32(src[2])<<8 | uint32(src[3])
	s += uint32(dst[0])<<8 | uint32(dst[1])
	s += uint32(dst[2])<<8 | uint32(dst[3])
	s += protoUDP
	s += uint32(udpLen)
	return s
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// ARP operations (RFC 826).
const (
	arpRequest = 1
	arpReply   = 2
)

// ARPPacket is an Ethernet/IPv4 ARP packet.
type ARPPacket struct {
	Op                   uint16 // 1 request, 2 reply
	SenderMAC, TargetMAC net.HardwareAddr
	SenderIP, TargetIP   netip.Addr
}

// DecodeARP parses an Ethernet frame carrying an Ethernet/IPv4 ARP packet.
func DecodeARP(frame []byte) (ARPPacket, error) {
	var a ARPPacket
	if len(frame) < etherHeaderLen+arpLen || binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP {
		return a, fmt.Errorf("client: not an ARP frame (%d bytes)", len(frame))
	}
	p := frame[etherHeaderLen:]
	// Hardware type Ethernet (1), protocol IPv4, lengths 6 and 4.
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return a, fmt.Errorf("client: ARP for hardware %d protocol %#x: not Ethernet/IPv4", binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]))
	}
	a.Op = binary.BigEndian.Uint16(p[6:8])
	a.SenderMAC = net.HardwareAddr(p[8:14])
	a.SenderIP, _ = netip.AddrFromSlice(p[14:18])
	a.TargetMAC = net.HardwareAddr(p[18:24])
	a.TargetIP, _ = netip.AddrFromSlice(p[24:28])
	return a, nil
}

// AppendARPFrame appends an Ethernet frame carrying a to b, sent from
// a.SenderMAC to dst.
func AppendARPFrame(b []byte, dst net.HardwareAddr, a ARPPacket) ([]byte, error) {
	if len(dst) != 6 || len(a.SenderMAC) != 6 || len(a.TargetMAC) != 6 || !a.SenderIP.Is4() || !a.TargetIP.Is4() {
		return b, fmt.Errorf("client: ARP frame: 6-byte MACs and IPv4 addresses only (%v %v %v %v)", a.SenderMAC, a.TargetMAC, a.SenderIP, a.TargetIP)
	}
	b = append(b, dst...)
	b = append(b, a.SenderMAC...)
	b = binary.BigEndian.AppendUint16(b, etherTypeARP)
	b = append(b, 0, 1, 0x08, 0x00, 6, 4)
	b = binary.BigEndian.AppendUint16(b, a.Op)
	s, t := a.SenderIP.As4(), a.TargetIP.As4()
	b = append(b, a.SenderMAC...)
	b = append(b, s[:]...)
	b = append(b, a.TargetMAC...)
	b = append(b, t[:]...)
	return b, nil
}
