package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcode is the first field of every TFTP packet (RFC 1350 §5, RFC 2347).
type Opcode uint16

// Opcodes defined by RFC 1350 and RFC 2347 (OACK).
const (
	OpRRQ   Opcode = 1 // read request
	OpWRQ   Opcode = 2 // write request
	OpDATA  Opcode = 3 // data block
	OpACK   Opcode = 4 // acknowledgment
	OpERROR Opcode = 5 // error
	OpOACK  Opcode = 6 // option acknowledgment (RFC 2347)
)

// String returns the RFC name of the opcode.
func (o Opcode) String() string {
	switch o {
	case OpRRQ:
		return "RRQ"
	case OpWRQ:
		return "WRQ"
	case OpDATA:
		return "DATA"
	case OpACK:
		return "ACK"
	case OpERROR:
		return "ERROR"
	case OpOACK:
		return "OACK"
	}
	return fmt.Sprintf("opcode(%d)", uint16(o))
}

// ErrorCode is the code carried by an ERROR packet (RFC 1350 appendix, RFC 2347).
type ErrorCode uint16

// Error codes of RFC 1350 and RFC 2347.
const (
	ErrCodeUndefined         ErrorCode = 0 // not defined, see message
	ErrCodeNotFound          ErrorCode = 1 // file not found
	ErrCodeAccess            ErrorCode = 2 // access violation
	ErrCodeDiskFull          ErrorCode = 3 // disk full or allocation exceeded
	ErrCodeIllegalOperation  ErrorCode = 4 // illegal TFTP operation
	ErrCodeUnknownTID        ErrorCode = 5 // unknown transfer ID
	ErrCodeFileExists        ErrorCode = 6 // file already exists
	ErrCodeNoSuchUser        ErrorCode = 7 // no such user
	ErrCodeOptionNegotiation ErrorCode = 8 // option negotiation failed (RFC 2347)
)

// Option is one name/value pair of a request or an OACK, in wire order.
// Names are compared case-insensitively (RFC 2347).
type Option struct {
	Name, Value string
}

// Packet is one decoded TFTP packet. Which fields are meaningful depends on Op:
// RRQ/WRQ use Filename, Mode and Options; OACK uses Options; DATA uses Block and
// Data; ACK uses Block; ERROR uses ErrCode and ErrMsg.
type Packet struct {
	Op       Opcode
	Filename string
	Mode     string
	Options  []Option
	Block    uint16
	Data     []byte // aliases the parsed buffer
	ErrCode  ErrorCode
	ErrMsg   string
}

// ErrMalformed is wrapped by every ParsePacket error.
var ErrMalformed = errors.New("malformed packet")

func malformed(format string, a ...any) error {
	return fmt.Errorf("tftp: %w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// ParsePacket decodes one datagram. DATA payloads alias b. It never panics;
// any truncated or inconsistent input returns an error wrapping ErrMalformed.
//
// Leniency, for interop with firmware seen in the field: trailing NUL padding
// after a request's last string is ignored; an ERROR message without its
// terminating NUL is accepted; bytes after an ACK's block number are ignored.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 2 {
		return Packet{}, malformed("%d bytes, no opcode", len(b))
	}
	p := Packet{Op: Opcode(binary.BigEndian.Uint16(b))}
	body := b[2:]
	switch p.Op {
	case OpRRQ, OpWRQ:
		// RFC 1350 §5: filename NUL mode NUL, then RFC 2347 options.
		var ok bool
		if p.Filename, body, ok = cstring(body); !ok {
			return Packet{}, malformed("%v: filename not terminated", p.Op)
		}
		if p.Mode, body, ok = cstring(body); !ok {
			return Packet{}, malformed("%v: mode not terminated", p.Op)
		}
		opts, err := parseOptions(body)
		if err != nil {
			return Packet{}, fmt.Errorf("%v: %w", p.Op, err)
		}
		p.Options = opts
	case OpOACK:
		opts, err := parseOptions(body)
		if err != nil {
			return Packet{}, fmt.Errorf("OACK: %w", err)
		}
		p.Options = opts
	case OpDATA:
		if len(body) < 2 {
			return Packet{}, malformed("DATA: %d bytes, no block number", len(b))
		}
		p.Block = binary.BigEndian.Uint16(body)
		p.Data = body[2:]
	case OpACK:
		if len(body) < 2 {
			return Packet{}, malformed("ACK: %d bytes, no block number", len(b))
		}
		p.Block = binary.BigEndian.Uint16(body)
	case OpERROR:
		if len(body) < 2 {
			return Packet{}, malformed("ERROR: %d bytes, no error code", len(b))
		}
		p.ErrCode = ErrorCode(binary.BigEndian.Uint16(body))
		msg, _, ok := cstring(body[2:])
		if !ok {
			msg = string(body[2:])
		}
		p.ErrMsg = msg
	default:
		return Packet{}, malformed("unknown opcode %d", uint16(p.Op))
	}
	return p, nil
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (s string, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", b, false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// parseOptions decodes RFC 2347 name NUL value NUL pairs.
func parseOptions(b []byte) ([]Option, error) {
	var opts []Option
	for len(b) > 0 && !allZero(b) {
		var o Option
		var ok bool
		if o.Name, b, ok = cstring(b); !ok {
			return nil, malformed("option name not terminated")
		}
		if o.Value, b, ok = cstring(b); !ok {
			return nil, malformed("option %q: value missing or not terminated", o.Name)
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// AppendPacket encodes p onto dst and returns the extended slice. Strings
// containing NUL cannot be represented; they are cut at the first NUL.
func AppendPacket(dst []byte, p Packet) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.Op))
	switch p.Op {
	case OpRRQ, OpWRQ:
		dst = appendCString(dst, p.Filename)
		dst = appendCString(dst, p.Mode)
		dst = appendOptions(dst, p.Options)
	case OpOACK:
		dst = appendOptions(dst, p.Options)
	case OpDATA:
		dst = binary.BigEndian.AppendUint16(dst, p.Block)
		dst = append(dst, p.Data...)
	case OpACK:
		dst = binary.BigEndian.AppendUint16(dst, p.Block)
	case OpERROR:
		dst = binary.BigEndian.AppendUint16(dst, uint16(p.ErrCode))
		dst = appendCString(dst, p.ErrMsg)
	}
	return dst
}

func appendCString(dst []byte, s string) []byte {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	dst = append(dst, s...)
	return append(dst, 0)
}

func appendOptions(dst []byte, opts []Option) []byte {
	for _, o := range opts {
		dst = appendCString(dst, o.Name)
		dst = appendCString(dst, o.Value)
	}
	return dst
}

// putDataHeader writes a DATA header for block into b[:4].
func putDataHeader(b []byte, block uint16) {
	binary.BigEndian.PutUint16(b, uint16(OpDATA))
	binary.BigEndian.PutUint16(b[2:], block)
}

// appendAck encodes an ACK without going through Packet.
func appendAck(dst []byte, block uint16) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(OpACK))
	return binary.BigEndian.AppendUint16(dst, block)
}

// appendError encodes an ERROR packet.
func appendError(dst []byte, code ErrorCode, msg string) []byte {
	return AppendPacket(dst, Packet{Op: OpERROR, ErrCode: code, ErrMsg: msg})
}
