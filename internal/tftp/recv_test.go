package tftp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestRawToAddrPort(t *testing.T) {
	var v4 unix.RawSockaddrAny
	a4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&v4))
	a4.Family, a4.Addr = unix.AF_INET, [4]byte{192, 0, 2, 7}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a4.Port))[:], 40123)
	var v6 unix.RawSockaddrAny
	a6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&v6))
	a6.Family, a6.Addr = unix.AF_INET6, netip.MustParseAddr("2001:db8::9").As16()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&a6.Port))[:], 69)
	var mapped unix.RawSockaddrAny
	m6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&mapped))
	m6.Family, m6.Addr = unix.AF_INET6, netip.MustParseAddr("::ffff:192.0.2.8").As16()
	for _, tc := range []struct {
		name string
		rsa  *unix.RawSockaddrAny
		want string
	}{
		{"IPv4", &v4, "192.0.2.7:40123"},
		{"IPv6", &v6, "[2001:db8::9]:69"},
		{"IPv4-mapped IPv6 is IPv4", &mapped, "192.0.2.8:0"},
		{"other family", &unix.RawSockaddrAny{}, "invalid AddrPort"},
	} {
		if got := rawToAddrPort(tc.rsa).String(); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestServerIPv6 serves a transfer over IPv6 loopback: the ACKs' source
// (the client's TID) is read from an IPv6 socket address.
func TestServerIPv6(t *testing.T) {
	conn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	dir := t.TempDir()
	want := testFile(t, dir, "f", 100_000)
	srv := &Server{Handler: Dir(dir)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(conn) }()
	defer func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	}()
	addr := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, c := range []*Client{{Blksize: 1432}, {Blksize: 1432, Windowsize: 8}} {
		got, _, err := get(t, c, addr, "f")
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, got, want)
	}
}

// TestRawToAddrPortZone: a link-local IPv6 peer keeps its zone, named as
// the net package names it, so it equals the transfer's peer.
func TestRawToAddrPortZone(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no loopback interface")
	}
	var rsa unix.RawSockaddrAny
	a := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
	a.Family = unix.AF_INET6
	a.Addr = netip.MustParseAddr("fe80::1").As16()
	a.Port = 0x4500 // port 69 in network byte order, read as stored
	a.Scope_id = uint32(lo.Index)
	got := rawToAddrPort(&rsa)
	ua, err := net.ResolveUDPAddr("udp6", "[fe80::1%lo]:0")
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr() != ua.AddrPort().Addr() {
		t.Fatalf("rawToAddrPort = %v, want address %v", got, ua.AddrPort().Addr())
	}
}
