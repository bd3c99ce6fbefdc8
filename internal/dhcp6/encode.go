package dhcp6

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// appendMessage appends m's wire form (RFC 8415 §8: type, transaction ID,
// options) to buf: the bytes m.ToBytes returns, without the library's
// intermediate buffers (one or more per option, grown as they fill).
// Identity associations, their addresses and status codes, the options
// of every reply, are encoded here; any other option by its own ToBytes.
func appendMessage(buf []byte, m *dhcpv6.Message) []byte {
	buf = append(buf, byte(m.MessageType))
	buf = append(buf, m.TransactionID[:]...)
	return appendOptions(buf, m.Options.Options)
}

// appendOptions appends each option as code, length and value
// (RFC 8415 §21.1).
func appendOptions(buf []byte, opts dhcpv6.Options) []byte {
	for _, o := range opts {
		buf = binary.BigEndian.AppendUint16(buf, uint16(o.Code()))
		at := len(buf)
		buf = append(buf, 0, 0) // the length, once the value is written
		buf = appendValue(buf, o)
		binary.BigEndian.PutUint16(buf[at:], uint16(len(buf)-at-2))
	}
	return buf
}

// appendValue appends one option's value, as o.ToBytes would return it.
func appendValue(buf []byte, o dhcpv6.Option) []byte {
	switch v := o.(type) {
	case *dhcpv6.OptIANA: // RFC 8415 §21.4
		buf = append(buf, v.IaId[:]...)
		buf = appendSeconds(buf, v.T1)
		buf = appendSeconds(buf, v.T2)
		return appendOptions(buf, v.Options.Options)
	case *dhcpv6.OptIAAddress: // RFC 8415 §21.6
		buf = appendIP(buf, v.IPv6Addr)
		buf = appendSeconds(buf, v.PreferredLifetime)
		buf = appendSeconds(buf, v.ValidLifetime)
		return appendOptions(buf, v.Options.Options)
	case *dhcpv6.OptStatusCode: // RFC 8415 §21.13
		buf = binary.BigEndian.AppendUint16(buf, uint16(v.StatusCode))
		return append(buf, v.StatusMessage...)
	}
	// Client and Server Identifier (RFC 8415 §21.2, 21.3): in every
	// reply. The library's option types are unexported: their DUIDs are
	// read through a one-option list.
	switch o.Code() {
	case dhcpv6.OptionClientID:
		if d := (dhcpv6.MessageOptions{Options: dhcpv6.Options{o}}).ClientID(); d != nil {
			return appendDUID(buf, d)
		}
	case dhcpv6.OptionServerID:
		if d := (dhcpv6.MessageOptions{Options: dhcpv6.Options{o}}).ServerID(); d != nil {
			return appendDUID(buf, d)
		}
	}
	return append(buf, o.ToBytes()...)
}

// appendDUID appends d's wire form (RFC 8415 §11), as d.ToBytes would
// return it.
func appendDUID(buf []byte, d dhcpv6.DUID) []byte {
	switch v := d.(type) {
	case *dhcpv6.DUIDLLT:
		buf = binary.BigEndian.AppendUint16(buf, uint16(dhcpv6.DUID_LLT))
		buf = binary.BigEndian.AppendUint16(buf, uint16(v.HWType))
		buf = binary.BigEndian.AppendUint32(buf, v.Time)
		return append(buf, v.LinkLayerAddr...)
	case *dhcpv6.DUIDLL:
		buf = binary.BigEndian.AppendUint16(buf, uint16(dhcpv6.DUID_LL))
		buf = binary.BigEndian.AppendUint16(buf, uint16(v.HWType))
		return append(buf, v.LinkLayerAddr...)
	case *dhcpv6.DUIDEN:
		buf = binary.BigEndian.AppendUint16(buf, uint16(dhcpv6.DUID_EN))
		buf = binary.BigEndian.AppendUint32(buf, v.EnterpriseNumber)
		return append(buf, v.EnterpriseIdentifier...)
	case *dhcpv6.DUIDUUID:
		buf = binary.BigEndian.AppendUint16(buf, uint16(dhcpv6.DUID_UUID))
		return append(buf, v.UUID[:]...)
	case *dhcpv6.DUIDOpaque:
		buf = binary.BigEndian.AppendUint16(buf, uint16(v.Type))
		return append(buf, v.Data...)
	}
	return append(buf, d.ToBytes()...)
}

// appendSeconds appends d in whole seconds, rounded, as 32 bits (the
// library's Duration.Marshal).
func appendSeconds(buf []byte, d time.Duration) []byte {
	return binary.BigEndian.AppendUint32(buf, uint32(d.Round(time.Second)/time.Second))
}

// appendIP appends ip's 16 bytes, zeros when it is not an address (the
// library's encoding).
func appendIP(buf []byte, ip net.IP) []byte {
	if ip16 := ip.To16(); ip16 != nil {
		return append(buf, ip16...)
	}
	var zeros [net.IPv6len]byte
	return append(buf, zeros[:]...)
}
