package tftp

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestParsePacket(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Packet
		err  bool
	}{
		{"RFC 1350 RRQ", "\x00\x01boot.efi\x00octet\x00",
			Packet{Op: OpRRQ, Filename: "boot.efi", Mode: "octet"}, false},
		{"RFC 1350 WRQ", "\x00\x02f\x00netascii\x00",
			Packet{Op: OpWRQ, Filename: "f", Mode: "netascii"}, false},
		{"RFC 2347 RRQ with options", "\x00\x01f\x00octet\x00blksize\x001468\x00TSize\x000\x00",
			Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"blksize", "1468"}, {"TSize", "0"}}}, false},
		{"RRQ with trailing NUL padding (firmware)", "\x00\x01f\x00octet\x00tsize\x000\x00\x00\x00\x00",
			Packet{Op: OpRRQ, Filename: "f", Mode: "octet", Options: []Option{{"tsize", "0"}}}, false},
		{"RRQ backslash name kept verbatim", "\x00\x01boot\\x64\\wdsmgfw.efi\x00octet\x00",
			Packet{Op: OpRRQ, Filename: `boot\x64\wdsmgfw.efi`, Mode: "octet"}, false},
		{"RRQ filename not terminated", "\x00\x01boot.efi", Packet{}, true},
		{"RRQ mode missing", "\x00\x01f\x00", Packet{}, true},
		{"RRQ mode not terminated", "\x00\x01f\x00oct", Packet{}, true},
		{"RFC 2347 option without value", "\x00\x01f\x00octet\x00blksize\x00", Packet{}, true},
		{"RFC 2347 option value not terminated", "\x00\x01f\x00octet\x00blksize\x001468", Packet{}, true},
		{"RFC 1350 DATA", "\x00\x03\x00\x07abc",
			Packet{Op: OpDATA, Block: 7, Data: []byte("abc")}, false},
		{"DATA empty (last block of a multiple of blksize)", "\x00\x03\xff\xff",
			Packet{Op: OpDATA, Block: 65535, Data: []byte{}}, false},
		{"DATA truncated", "\x00\x03\x00", Packet{}, true},
		{"RFC 1350 ACK", "\x00\x04\x01\x00", Packet{Op: OpACK, Block: 256}, false},
		{"ACK with padding", "\x00\x04\x00\x01\x00\x00", Packet{Op: OpACK, Block: 1}, false},
		{"ACK truncated", "\x00\x04\x00", Packet{}, true},
		{"RFC 1350 ERROR", "\x00\x05\x00\x01file not found\x00",
			Packet{Op: OpERROR, ErrCode: ErrCodeNotFound, ErrMsg: "file not found"}, false},
		{"RFC 2347 ERROR 8 (UEFI tsize probe)", "\x00\x05\x00\x08\x00",
			Packet{Op: OpERROR, ErrCode: ErrCodeOptionNegotiation}, false},
		{"ERROR message not terminated", "\x00\x05\x00\x00oops",
			Packet{Op: OpERROR, ErrMsg: "oops"}, false},
		{"ERROR truncated", "\x00\x05\x00", Packet{}, true},
		{"RFC 2347 OACK", "\x00\x06blksize\x00512\x00",
			Packet{Op: OpOACK, Options: []Option{{"blksize", "512"}}}, false},
		{"empty OACK", "\x00\x06", Packet{Op: OpOACK}, false},
		{"empty", "", Packet{}, true},
		{"one byte", "\x00", Packet{}, true},
		{"opcode 0", "\x00\x00", Packet{}, true},
		{"opcode 7", "\x00\x07xx", Packet{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePacket([]byte(tt.in))
			if tt.err {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("ParsePacket = %+v, %v; want ErrMalformed", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParsePacket =\n %+v\nwant\n %+v", got, tt.want)
			}
			// Encoding gives back the canonical bytes (padding dropped).
			again, err := ParsePacket(AppendPacket(nil, got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip = %+v, %v", again, err)
			}
		})
	}
}

func TestAppendPacketBytes(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
		want string
	}{
		{"RRQ with options", Packet{Op: OpRRQ, Filename: "a", Mode: "octet", Options: []Option{{"blksize", "8"}}},
			"\x00\x01a\x00octet\x00blksize\x008\x00"},
		{"DATA", Packet{Op: OpDATA, Block: 1, Data: []byte("x")}, "\x00\x03\x00\x01x"},
		{"ACK", Packet{Op: OpACK, Block: 65535}, "\x00\x04\xff\xff"},
		{"ERROR", Packet{Op: OpERROR, ErrCode: 2, ErrMsg: "no"}, "\x00\x05\x00\x02no\x00"},
		{"OACK", Packet{Op: OpOACK, Options: []Option{{"tsize", "3"}}}, "\x00\x06tsize\x003\x00"},
		{"NUL in string is cut", Packet{Op: OpERROR, ErrMsg: "a\x00b"}, "\x00\x05\x00\x00a\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendPacket(nil, tt.p)); got != tt.want {
				t.Fatalf("AppendPacket = %q, want %q", got, tt.want)
			}
		})
	}
	if got := string(appendAck(nil, 0x1234)); got != "\x00\x04\x12\x34" {
		t.Fatalf("appendAck = %q", got)
	}
	b := make([]byte, 4)
	putDataHeader(b, 0xabcd)
	if string(b) != "\x00\x03\xab\xcd" {
		t.Fatalf("putDataHeader = %q", b)
	}
}

func TestNegotiate(t *testing.T) {
	lim := Limits{MaxBlksize: 1468, MaxWindowsize: 64, Size: 1000}
	tests := []struct {
		name string
		opts []Option
		lim  Limits
		want Negotiated
		err  bool
	}{
		{"RFC 1350 no options: lockstep 512, no OACK", nil, lim,
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"RFC 2348 blksize granted", []Option{{"blksize", "1024"}}, lim,
			Negotiated{Blksize: 1024, Windowsize: 1, Ack: []Option{{"blksize", "1024"}}}, false},
		{"RFC 2348 blksize clamped to limit", []Option{{"blksize", "65464"}}, lim,
			Negotiated{Blksize: 1468, Windowsize: 1, Ack: []Option{{"blksize", "1468"}}}, false},
		{"RFC 2348 blksize above 65464 clamped", []Option{{"blksize", "70000"}}, Limits{Size: 1},
			Negotiated{Blksize: 65464, Windowsize: 1, Ack: []Option{{"blksize", "65464"}}}, false},
		{"RFC 2348 blksize 8 minimum", []Option{{"blksize", "8"}}, lim,
			Negotiated{Blksize: 8, Windowsize: 1, Ack: []Option{{"blksize", "8"}}}, false},
		{"RFC 2348 blksize below 8 fails (ERROR 8)", []Option{{"blksize", "7"}}, lim, Negotiated{}, true},
		{"RFC 2347 names are case-insensitive, reply keeps client case", []Option{{"BlkSize", "600"}, {"TSIZE", "0"}}, lim,
			Negotiated{Blksize: 600, Windowsize: 1, Ack: []Option{{"BlkSize", "600"}, {"TSIZE", "1000"}}}, false},
		{"RFC 2349 tsize answered with size", []Option{{"tsize", "0"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 1, Ack: []Option{{"tsize", "1000"}}}, false},
		{"RFC 2349 tsize unknown size not acknowledged", []Option{{"tsize", "0"}}, Limits{Size: -1},
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"RFC 2349 timeout 1..255", []Option{{"timeout", "3"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 1, Timeout: 3 * time.Second, Ack: []Option{{"timeout", "3"}}}, false},
		{"RFC 2349 timeout 0 ignored", []Option{{"timeout", "0"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"RFC 2349 timeout 256 ignored", []Option{{"timeout", "256"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"RFC 2349 timeout above MaxTimeout not acknowledged", []Option{{"timeout", "255"}, {"blksize", "1024"}},
			Limits{MaxBlksize: 1468, Size: 1, MaxTimeout: 10 * time.Second},
			Negotiated{Blksize: 1024, Windowsize: 1, TimeoutOverMax: true, Ack: []Option{{"blksize", "1024"}}}, false},
		{"RFC 2349 timeout equal to MaxTimeout acknowledged", []Option{{"timeout", "10"}},
			Limits{Size: 1, MaxTimeout: 10 * time.Second},
			Negotiated{Blksize: 512, Windowsize: 1, Timeout: 10 * time.Second, Ack: []Option{{"timeout", "10"}}}, false},
		{"RFC 2349 timeout above MaxTimeout, alone: no OACK", []Option{{"timeout", "11"}},
			Limits{Size: 1, MaxTimeout: 10 * time.Second},
			Negotiated{Blksize: 512, Windowsize: 1, TimeoutOverMax: true}, false},
		{"RFC 7440 windowsize granted", []Option{{"windowsize", "16"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 16, Ack: []Option{{"windowsize", "16"}}}, false},
		{"RFC 7440 windowsize clamped", []Option{{"windowsize", "65535"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 64, Ack: []Option{{"windowsize", "64"}}}, false},
		{"RFC 7440 windowsize capped to fit the receive buffer", []Option{{"blksize", "8192"}, {"windowsize", "64"}},
			Limits{MaxWindowsize: 64, Size: 1, WindowBytes: DefaultWindowBytes},
			Negotiated{Blksize: 8192, Windowsize: 11, Ack: []Option{{"blksize", "8192"}, {"windowsize", "11"}}}, false},
		{"windowsize cap applies whatever the option order", []Option{{"windowsize", "64"}, {"blksize", "65464"}},
			Limits{MaxWindowsize: 64, Size: 1, WindowBytes: DefaultWindowBytes},
			Negotiated{Blksize: 65464, Windowsize: 2, Ack: []Option{{"windowsize", "2"}, {"blksize", "65464"}}}, false},
		{"windowsize 64 at blksize 1468 fits", []Option{{"blksize", "1468"}, {"windowsize", "64"}},
			Limits{MaxWindowsize: 64, Size: 1, WindowBytes: DefaultWindowBytes},
			Negotiated{Blksize: 1468, Windowsize: 64, Ack: []Option{{"blksize", "1468"}, {"windowsize", "64"}}}, false},
		{"RFC 2349 tsize of an empty file not acknowledged (curl refuses tsize 0)", []Option{{"tsize", "0"}}, Limits{Size: 0},
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"RFC 7440 windowsize 0 fails", []Option{{"windowsize", "0"}}, lim, Negotiated{}, true},
		{"RFC 2347 unknown option not acknowledged", []Option{{"multicast", ""}, {"utimeout", "5000"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"non-numeric value ignored", []Option{{"blksize", "big"}}, lim,
			Negotiated{Blksize: 512, Windowsize: 1}, false},
		{"duplicate option: first wins", []Option{{"blksize", "600"}, {"blksize", "700"}}, lim,
			Negotiated{Blksize: 600, Windowsize: 1, Ack: []Option{{"blksize", "600"}}}, false},
		{"all four, in request order", []Option{{"windowsize", "4"}, {"tsize", "0"}, {"blksize", "1468"}, {"timeout", "1"}}, lim,
			Negotiated{Blksize: 1468, Windowsize: 4, Timeout: time.Second,
				Ack: []Option{{"windowsize", "4"}, {"tsize", "1000"}, {"blksize", "1468"}, {"timeout", "1"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Negotiate(tt.opts, tt.lim)
			if tt.err {
				var ne *NegotiationError
				if !errors.As(err, &ne) {
					t.Fatalf("Negotiate = %+v, %v; want NegotiationError", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Negotiate: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Negotiate =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestAcceptOACK(t *testing.T) {
	asked := []Option{{"blksize", "1468"}, {"windowsize", "16"}, {"tsize", "0"}}
	tests := []struct {
		name      string
		oack      []Option
		blk, win  int
		tsize     int64
		expectErr bool
	}{
		{"all granted", []Option{{"blksize", "1468"}, {"windowsize", "16"}, {"tsize", "99"}}, 1468, 16, 99, false},
		{"server lowered blksize and windowsize", []Option{{"BLKSIZE", "1024"}, {"windowsize", "4"}}, 1024, 4, -1, false},
		{"RFC 2347 option not asked", []Option{{"timeout", "5"}}, 0, 0, 0, true},
		{"RFC 2348 blksize raised", []Option{{"blksize", "2000"}}, 0, 0, 0, true},
		{"RFC 7440 windowsize raised", []Option{{"windowsize", "17"}}, 0, 0, 0, true},
		{"garbage value", []Option{{"tsize", "x"}}, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, tsize, err := AcceptOACK(asked, tt.oack)
			if tt.expectErr {
				if err == nil {
					t.Fatalf("AcceptOACK = %+v; want error", n)
				}
				return
			}
			if err != nil || n.Blksize != tt.blk || n.Windowsize != tt.win || tsize != tt.tsize {
				t.Fatalf("AcceptOACK = %+v, %d, %v", n, tsize, err)
			}
		})
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"/pxelinux.0":             "pxelinux.0",
		`boot\x64\wdsmgfw.efi`:    "boot/x64/wdsmgfw.efi",
		`\boot\bcd`:               "boot/bcd",
		"//a//b":                  "a//b",
		"../etc/passwd":           "../etc/passwd", // refused by os.Root, not here
		"":                        "",
		"ipxe/snponly.efi":        "ipxe/snponly.efi",
		`C:\windows\system32\cmd`: "C:/windows/system32/cmd",
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParsePacket checks that whatever parses re-encodes to bytes that parse
// to the same packet, and that encoding is stable.
func FuzzParsePacket(f *testing.F) {
	for _, s := range []string{
		"\x00\x01boot.efi\x00octet\x00",
		"\x00\x01f\x00octet\x00blksize\x001468\x00tsize\x000\x00windowsize\x0016\x00\x00",
		"\x00\x02f\x00netascii\x00",
		"\x00\x03\x00\x07abc",
		"\x00\x04\xff\xff",
		"\x00\x05\x00\x08\x00",
		"\x00\x05\x00\x01not found",
		"\x00\x06blksize\x00512\x00",
		"\x00\x01f",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc := AppendPacket(nil, p)
		q, err := ParsePacket(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		if !packetEqual(p, q) {
			t.Fatalf("round trip:\n %+v\n %+v", p, q)
		}
		if enc2 := AppendPacket(nil, q); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %q vs %q", enc, enc2)
		}
	})
}

// FuzzNegotiate checks the negotiation invariants on arbitrary option lists
// decoded from a request: granted values are within the RFC ranges and the
// limits, the OACK only holds options the client sent, and the OACK survives
// the client's own check (AcceptOACK) with the same result.
func FuzzNegotiate(f *testing.F) {
	f.Add([]byte("\x00\x01f\x00octet\x00blksize\x001468\x00tsize\x000\x00"), 1468, 64, int64(100))
	f.Add([]byte("\x00\x01f\x00octet\x00BLKSIZE\x0065464\x00windowsize\x0064\x00timeout\x003\x00"), 0, 0, int64(-1))
	f.Add([]byte("\x00\x01f\x00octet\x00blksize\x007\x00"), 512, 1, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, maxBlk, maxWin int, size int64) {
		p, err := ParsePacket(b)
		if err != nil || p.Op != OpRRQ {
			return
		}
		maxTimeout := time.Duration(maxWin%300) * time.Second
		n, err := Negotiate(p.Options, Limits{MaxBlksize: maxBlk, MaxWindowsize: maxWin, Size: size, WindowBytes: maxWin * 1000, MaxTimeout: maxTimeout})
		if err != nil {
			return
		}
		if maxTimeout > 0 && n.Timeout > maxTimeout {
			t.Fatalf("timeout %v above MaxTimeout %v", n.Timeout, maxTimeout)
		}
		if n.Blksize < MinBlksize || n.Blksize > MaxBlksize || (maxBlk >= MinBlksize && n.Blksize > maxBlk && n.Blksize != DefaultBlksize) {
			t.Fatalf("blksize %d out of range (max %d)", n.Blksize, maxBlk)
		}
		if n.Windowsize < 1 || n.Windowsize > MaxWindowsize || (maxWin > 0 && n.Windowsize > maxWin) {
			t.Fatalf("windowsize %d out of range (max %d)", n.Windowsize, maxWin)
		}
		got, tsize, err := AcceptOACK(p.Options, n.Ack)
		if err != nil {
			t.Fatalf("client rejects our OACK %v for %v: %v", n.Ack, p.Options, err)
		}
		if got.Blksize != n.Blksize || got.Windowsize != n.Windowsize || got.Timeout != n.Timeout {
			t.Fatalf("client reads %+v, server meant %+v", got, n)
		}
		if tsize >= 0 && tsize != size {
			t.Fatalf("tsize %d, size %d", tsize, size)
		}
		// The OACK itself round-trips through the codec.
		q, err := ParsePacket(AppendPacket(nil, Packet{Op: OpOACK, Options: n.Ack}))
		if err != nil || !reflect.DeepEqual(q.Options, n.Ack) && len(n.Ack) > 0 {
			t.Fatalf("OACK round trip: %+v, %v", q, err)
		}
	})
}

func packetEqual(a, b Packet) bool {
	if len(a.Data) == 0 && len(b.Data) == 0 {
		a.Data, b.Data = nil, nil
	}
	if len(a.Options) == 0 && len(b.Options) == 0 {
		a.Options, b.Options = nil, nil
	}
	return reflect.DeepEqual(a, b)
}
