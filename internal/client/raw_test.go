package client

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

var (
	rawClientMAC = net.HardwareAddr{0x02, 0x70, 0x78, 0, 0, 1}
	rawServerMAC = net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}
)

// TestAppendUDPFrameLayout checks every header field of a DISCOVER frame
// from 0.0.0.0:68 to 255.255.255.255:67 and that both checksums verify.
func TestAppendUDPFrameLayout(t *testing.T) {
	payload := []byte{1, 2, 3, 4, 5}
	f := UDPFrame{DstMAC: BroadcastMAC, SrcMAC: rawClientMAC,
		Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.MustParseAddrPort("255.255.255.255:67"), Payload: payload}
	b, err := AppendUDPFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 14+20+8+len(payload) {
		t.Fatalf("frame length %d", len(b))
	}
	if !bytes.Equal(b[0:6], BroadcastMAC) || !bytes.Equal(b[6:12], rawClientMAC) || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
		t.Errorf("Ethernet header % x", b[:14])
	}
	ip := b[14:34]
	if ip[0] != 0x45 || binary.BigEndian.Uint16(ip[2:]) != 33 || ip[6] != 0x40 || ip[8] != 64 || ip[9] != 17 {
		t.Errorf("IPv4 header % x", ip)
	}
	// A correct header sums to 0xffff, so its checksum over itself is 0.
	if c := checksum(ip, 0); c != 0 {
		t.Errorf("IPv4 header checksum does not verify: %#x", c)
	}
	udp := b[34:]
	if binary.BigEndian.Uint16(udp[0:]) != 68 || binary.BigEndian.Uint16(udp[2:]) != 67 || binary.BigEndian.Uint16(udp[4:]) != 13 {
		t.Errorf("UDP header % x", udp[:8])
	}
	if c := checksum(udp, pseudoHeader([4]byte{}, [4]byte{255, 255, 255, 255}, len(udp))); c != 0 {
		t.Errorf("UDP checksum does not verify: %#x", c)
	}
	// Appending keeps what b held.
	b2, _ := AppendUDPFrame([]byte("head"), f)
	if string(b2[:4]) != "head" || !bytes.Equal(b2[4:], b) {
		t.Errorf("AppendUDPFrame does not append")
	}
}

func TestUDPFrameRoundTrip(t *testing.T) {
	for _, tc := range []UDPFrame{
		{DstMAC: BroadcastMAC, SrcMAC: rawClientMAC, Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.MustParseAddrPort("255.255.255.255:67"), Payload: make([]byte, 300)},
		{DstMAC: rawServerMAC, SrcMAC: rawClientMAC, Src: netip.MustParseAddrPort("192.0.2.100:68"), Dst: netip.MustParseAddrPort("192.0.2.1:4011"), Payload: []byte("x")},
		{DstMAC: rawClientMAC, SrcMAC: rawServerMAC, Src: netip.MustParseAddrPort("198.18.0.1:67"), Dst: netip.MustParseAddrPort("198.18.1.2:68"), TTL: 1},
	} {
		b, err := AppendUDPFrame(nil, tc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeUDPFrame(b)
		if err != nil {
			t.Fatalf("%v → %v: %v", tc.Src, tc.Dst, err)
		}
		want := tc
		if want.TTL == 0 {
			want.TTL = 64
		}
		if !sameFrame(got, want) {
			t.Errorf("round trip: got %+v, want %+v", got, want)
		}
	}
}

func sameFrame(a, b UDPFrame) bool {
	return a.DstMAC.String() == b.DstMAC.String() && a.SrcMAC.String() == b.SrcMAC.String() &&
		a.Src == b.Src && a.Dst == b.Dst && a.TTL == b.TTL && bytes.Equal(a.Payload, b.Payload)
}

func TestAppendUDPFrameErrors(t *testing.T) {
	ok := UDPFrame{DstMAC: BroadcastMAC, SrcMAC: rawClientMAC, Src: netip.MustParseAddrPort("0.0.0.0:68"), Dst: netip.MustParseAddrPort("255.255.255.255:67")}
	for name, mod := range map[string]func(*UDPFrame){
		"short MAC":    func(f *UDPFrame) { f.SrcMAC = f.SrcMAC[:4] },
		"IPv6":         func(f *UDPFrame) { f.Dst = netip.MustParseAddrPort("[2001:db8::1]:67") },
		"too big":      func(f *UDPFrame) { f.Payload = make([]byte, 70000) },
		"zero address": func(f *UDPFrame) { f.Src = netip.AddrPort{} },
	} {
		f := ok
		mod(&f)
		if _, err := AppendUDPFrame(nil, f); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDecodeUDPFrame(t *testing.T) {
	good, _ := AppendUDPFrame(nil, UDPFrame{DstMAC: rawClientMAC, SrcMAC: rawServerMAC,
		Src: netip.MustParseAddrPort("192.0.2.1:67"), Dst: netip.MustParseAddrPort("192.0.2.100:68"), Payload: []byte("payload")})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name    string
		frame   []byte
		ok      bool
		payload string
	}{
		{"good", good, true, "payload"},
		{"ethernet padding dropped", append(append([]byte(nil), good...), 0, 0, 0, 0), true, "payload"},
		{"IP options skipped", withIPOptions(good), true, "payload"},
		{"empty", nil, false, ""},
		{"short ethernet", good[:10], false, ""},
		{"ARP ethertype", mod(func(b []byte) []byte { b[12], b[13] = 8, 6; return b }), false, ""},
		{"IPv6 version", mod(func(b []byte) []byte { b[14] = 0x65; return b }), false, ""},
		{"IHL below 5", mod(func(b []byte) []byte { b[14] = 0x44; return b }), false, ""},
		{"TCP", mod(func(b []byte) []byte { b[23] = 6; return b }), false, ""},
		{"more fragments", mod(func(b []byte) []byte { b[20] |= 0x20; return b }), false, ""},
		{"fragment offset", mod(func(b []byte) []byte { b[21] = 1; return b }), false, ""},
		{"total length past the frame", mod(func(b []byte) []byte { b[16], b[17] = 0x05, 0xdc; return b }), false, ""},
		{"truncated UDP", good[:14+20+4], false, ""},
		{"UDP length past the datagram", mod(func(b []byte) []byte { b[38], b[39] = 0, 200; return b }), false, ""},
		{"UDP length below 8", mod(func(b []byte) []byte { b[38], b[39] = 0, 7; return b }), false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := DecodeUDPFrame(tc.frame)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (string(f.Payload) != tc.payload || f.Src.Port() != 67 || f.Dst != netip.MustParseAddrPort("192.0.2.100:68")) {
				t.Errorf("decoded %+v", f)
			}
		})
	}
}

// withIPOptions inserts 4 bytes of IPv4 options (NOPs and an end) into an
// encoded frame and fixes the header fields.
func withIPOptions(frame []byte) []byte {
	b := append([]byte(nil), frame[:34]...)
	b = append(b, 1, 1, 1, 0)
	b = append(b, frame[34:]...)
	b[14] = 0x46
	binary.BigEndian.PutUint16(b[16:], binary.BigEndian.Uint16(b[16:])+4)
	return b
}

func TestARPRoundTrip(t *testing.T) {
	a := ARPPacket{Op: arpReply, SenderMAC: rawClientMAC, SenderIP: netip.MustParseAddr("192.0.2.100"),
		TargetMAC: rawServerMAC, TargetIP: netip.MustParseAddr("192.0.2.1")}
	b, err := AppendARPFrame(nil, rawServerMAC, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 42 || !bytes.Equal(b[0:6], rawServerMAC) || !bytes.Equal(b[6:12], rawClientMAC) {
		t.Fatalf("frame % x", b)
	}
	got, err := DecodeARP(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != a.Op || got.SenderMAC.String() != a.SenderMAC.String() || got.TargetMAC.String() != a.TargetMAC.String() ||
		got.SenderIP != a.SenderIP || got.TargetIP != a.TargetIP {
		t.Errorf("got %+v, want %+v", got, a)
	}
	b[15] = 6 // hardware type 6 (IEEE 802)
	if _, err := DecodeARP(b); err == nil {
		t.Errorf("non-Ethernet ARP decoded")
	}
	if _, err := DecodeARP(b[:30]); err == nil {
		t.Errorf("short ARP decoded")
	}
	if _, err := AppendARPFrame(nil, rawServerMAC, ARPPacket{SenderMAC: rawClientMAC}); err == nil {
		t.Errorf("ARP without addresses encoded")
	}
}

// TestRawFilter runs the socket's BPF program on frames: ARP and IPv4 UDP
// to port 68 pass (also with IP options), everything else stays out.
func TestRawFilter(t *testing.T) {
	raw, err := rawFilter()
	if err != nil {
		t.Fatal(err)
	}
	prog := make([]bpf.Instruction, len(raw))
	for i, r := range raw {
		prog[i] = r.Disassemble()
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	udp := func(dst string) []byte {
		b, _ := AppendUDPFrame(nil, UDPFrame{DstMAC: BroadcastMAC, SrcMAC: rawServerMAC,
			Src: netip.MustParseAddrPort("192.0.2.1:67"), Dst: netip.MustParseAddrPort(dst), Payload: make([]byte, 10)})
		return b
	}
	arp, _ := AppendARPFrame(nil, BroadcastMAC, ARPPacket{Op: arpRequest, SenderMAC: rawServerMAC, TargetMAC: make(net.HardwareAddr, 6),
		SenderIP: netip.MustParseAddr("192.0.2.1"), TargetIP: netip.MustParseAddr("192.0.2.100")})
	frag := udp("255.255.255.255:68")
	frag[20] |= 0x20
	tcp := udp("192.0.2.100:68")
	tcp[23] = 6
	ipv6 := udp("192.0.2.100:68")
	ipv6[12], ipv6[13] = 0x86, 0xdd
	for _, tc := range []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"reply broadcast to 68", udp("255.255.255.255:68"), true},
		{"reply unicast to 68", udp("192.0.2.100:68"), true},
		{"reply with IP options", withIPOptions(udp("192.0.2.100:68")), true},
		{"ARP", arp, true},
		{"request to 67", udp("255.255.255.255:67"), false},
		{"TFTP", udp("192.0.2.100:69"), false},
		{"fragment", frag, false},
		{"TCP", tcp, false},
		{"IPv6 ethertype", ipv6, false},
	} {
		n, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tc.name, n, tc.pass)
		}
	}
}

// FuzzDecodeUDPFrame: whatever decodes encodes again to a frame that
// decodes to the same fields (round trip), and nothing panics.
func FuzzDecodeUDPFrame(f *testing.F) {
	good, _ := AppendUDPFrame(nil, UDPFrame{DstMAC: rawClientMAC, SrcMAC: rawServerMAC,
		Src: netip.MustParseAddrPort("192.0.2.1:67"), Dst: netip.MustParseAddrPort("192.0.2.100:68"), Payload: []byte("payload")})
	f.Add(good)
	f.Add(withIPOptions(good))
	f.Add(good[:20])
	f.Fuzz(func(t *testing.T, frame []byte) {
		d, err := DecodeUDPFrame(frame)
		if err != nil {
			return
		}
		b, err := AppendUDPFrame(nil, d)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", d, err)
		}
		d2, err := DecodeUDPFrame(b)
		if err != nil {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if d.TTL == 0 {
			d.TTL = 64 // the encoder's default
		}
		if !sameFrame(d, d2) {
			t.Fatalf("round trip: %+v then %+v", d, d2)
		}
	})
}
