package dhcp4

import (
	"encoding/binary"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Wire layout of a BOOTP/DHCP message (RFC 2131 §2, RFC 951).
const (
	optPad        = 0
	optAgentInfo  = 82 // RFC 3046 §2.1: the relay agent information option comes last
	optEnd        = 255
	bootpMinLen   = 300 // RFC 951: relays may drop shorter messages
	replyCapacity = 576 // RFC 2131 §2: every client accepts a message this long
)

var magicCookie = [4]byte{99, 130, 83, 99}

// appendPacket appends the wire form of d to b and returns the result. It
// writes byte for byte what d.ToBytes() returns (options in code order,
// option 82 last, long options split per RFC 3396, padded to 300 bytes),
// without its intermediate buffers: the loop encodes each reply into a
// buffer it reuses.
func appendPacket(b []byte, d *dhcpv4.DHCPv4) []byte {
	start := len(b)
	b = append(b, byte(d.OpCode), byte(d.HWType), byte(len(d.ClientHWAddr)), d.HopCount)
	b = append(b, d.TransactionID[:]...)
	b = binary.BigEndian.AppendUint16(b, d.NumSeconds)
	b = binary.BigEndian.AppendUint16(b, d.Flags)
	for _, ip := range []net.IP{d.ClientIPAddr, d.YourIPAddr, d.ServerIPAddr, d.GatewayIPAddr} {
		b = appendIPv4(b, ip)
	}
	b = appendPadded(b, d.ClientHWAddr, 16, 16)
	b = appendPadded(b, []byte(d.ServerHostName), 63, 64)
	b = appendPadded(b, []byte(d.BootFileName), 127, 128)
	b = append(b, magicCookie[:]...)

	var present [256]bool
	for code := range d.Options {
		present[code] = true
	}
	for code := 1; code < optEnd; code++ {
		if present[code] && code != optAgentInfo {
			b = appendOption(b, uint8(code), d.Options[uint8(code)])
		}
	}
	if present[optAgentInfo] {
		b = appendOption(b, optAgentInfo, d.Options[optAgentInfo])
	}
	b = append(b, optEnd)
	for len(b)-start < bootpMinLen {
		b = append(b, optPad)
	}
	return b
}

// appendIPv4 appends the 4 bytes of ip, zeros for nil or an address that is
// not IPv4.
func appendIPv4(b []byte, ip net.IP) []byte {
	if v4 := ip.To4(); v4 != nil {
		return append(b, v4...)
	}
	return append(b, 0, 0, 0, 0)
}

// appendPadded appends the first max bytes of v, then zeros up to size.
func appendPadded(b, v []byte, max, size int) []byte {
	n := min(len(v), max)
	b = append(b, v[:n]...)
	for range size - n {
		b = append(b, 0)
	}
	return b
}

// appendOption appends one option: code, length, data, repeated per 255
// bytes of data (RFC 3396); an empty option is still written.
func appendOption(b []byte, code uint8, data []byte) []byte {
	if len(data) == 0 {
		return append(b, code, 0)
	}
	for len(data) > 0 {
		n := min(len(data), 255)
		b = append(b, code, byte(n))
		b = append(b, data[:n]...)
		data = data[n:]
	}
	return b
}
