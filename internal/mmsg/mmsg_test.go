package mmsg

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func listen(t *testing.T, network, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no %s loopback socket: %v", network, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSendRecv sends a batch to two receivers and reads it back in one
// batch each, over IPv4 and IPv6.
func TestSendRecv(t *testing.T) {
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := listen(t, tc.network, tc.addr)
			dst := []*net.UDPConn{listen(t, tc.network, tc.addr), listen(t, tc.network, tc.addr)}
			sc, err := New(src)
			if err != nil {
				t.Fatal(err)
			}
			dom := unix.AF_INET
			if tc.network == "udp6" {
				dom = unix.AF_INET6
			}
			var sas [2]unix.RawSockaddrAny
			var lens [2]uint32
			for i, d := range dst {
				if lens[i] = Sockaddr(dom, d.LocalAddr().(*net.UDPAddr).AddrPort(), &sas[i]); lens[i] == 0 {
					t.Fatalf("Sockaddr(%v) = 0", d.LocalAddr())
				}
			}
			var b Batch
			const each = 5
			for i := range 2 * each {
				b.Add(fmt.Appendf(nil, "datagram %d", i), &sas[i%2], lens[i%2], nil)
			}
			sent, errno, err := sc.Send(&b, 0)
			if sent != b.Len() || errno != 0 || err != nil {
				t.Fatalf("Send = %d, %v, %v; want %d, 0, nil", sent, errno, err, b.Len())
			}
			for d := range dst {
				rc, err := New(dst[d])
				if err != nil {
					t.Fatal(err)
				}
				dst[d].SetReadDeadline(time.Now().Add(5 * time.Second))
				var rb Batch
				bufs := make([][]byte, 2*each)
				for i := range bufs {
					bufs[i] = make([]byte, 64)
					rb.Add(bufs[i], nil, 0, nil)
				}
				got := 0
				for got < each {
					n, errno, err := rc.Recv(&rb, 0)
					if err != nil || errno != 0 {
						t.Fatalf("Recv: %v, %v", errno, err)
					}
					for i := range n {
						want := fmt.Appendf(nil, "datagram %d", 2*got+d)
						if g := bufs[i][:rb.N(i)]; !bytes.Equal(g, want) {
							t.Errorf("receiver %d datagram %d = %q, want %q", d, got, g, want)
						}
						from, _ := AddrPort(rb.From(i))
						if from.Port() != src.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
							t.Errorf("datagram from %v, want port of %v", from, src.LocalAddr())
						}
						got++
					}
				}
			}
		})
	}
}

// TestSendPartial: a datagram the kernel refuses stops Send there with its
// errno; SendFrom after it sends the rest.
func TestSendPartial(t *testing.T) {
	src := listen(t, "udp4", "127.0.0.1:0")
	dst := listen(t, "udp4", "127.0.0.1:0")
	sc, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	var good, bad unix.RawSockaddrAny
	gl := Sockaddr(unix.AF_INET, dst.LocalAddr().(*net.UDPAddr).AddrPort(), &good)
	bad.Addr.Family = unix.AF_INET6 // wrong family for an IPv4 socket
	var b Batch
	b.Add([]byte("one"), &good, gl, nil)
	b.Add([]byte("two"), &bad, unix.SizeofSockaddrInet6, nil)
	b.Add([]byte("three"), &good, gl, nil)
	sent, errno, err := sc.Send(&b, 0)
	if sent != 1 || errno == 0 || err != nil {
		t.Fatalf("Send = %d, %v, %v; want 1, an errno, nil", sent, errno, err)
	}
	sent, errno, err = sc.SendFrom(&b, 2, 0)
	if sent != 3 || errno != 0 || err != nil {
		t.Fatalf("SendFrom(2) = %d, %v, %v; want 3, 0, nil", sent, errno, err)
	}
	dst.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	for _, want := range []string{"one", "three"} {
		n, _, err := dst.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
		}
	}
}

// TestRecvClosed: Recv on a closed socket returns the socket's error.
func TestRecvClosed(t *testing.T) {
	c := listen(t, "udp4", "127.0.0.1:0")
	mc, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	var b Batch
	b.Add(make([]byte, 8), nil, 0, nil)
	if _, _, err := mc.Recv(&b, 0); err == nil {
		t.Fatal("Recv on a closed socket: no error")
	}
}

// FuzzSockaddr: an address written by Sockaddr reads back unchanged.
func FuzzSockaddr(f *testing.F) {
	f.Add([]byte{192, 0, 2, 1}, uint16(69), true)
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), uint16(1), false)
	f.Add(netip.MustParseAddr("::ffff:192.0.2.7").AsSlice(), uint16(65535), false)
	f.Add([]byte{1, 2, 3}, uint16(0), true)
	f.Fuzz(func(t *testing.T, ip []byte, port uint16, v4 bool) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		dom := unix.AF_INET6
		if v4 {
			dom = unix.AF_INET
		}
		var sa unix.RawSockaddrAny
		n := Sockaddr(dom, netip.AddrPortFrom(a, port), &sa)
		if n == 0 {
			if v4 && a.Unmap().Is4() {
				t.Fatalf("Sockaddr(AF_INET, %v) = 0", a)
			}
			return
		}
		got, scope := AddrPort(&sa)
		want := a
		if v4 {
			want = a.Unmap()
		} else if a.Is4() {
			want = netip.AddrFrom16(a.As16())
		}
		if got != netip.AddrPortFrom(want, port) || scope != 0 {
			t.Fatalf("AddrPort(Sockaddr(%v, %d)) = %v scope %d", a, port, got, scope)
		}
	})
}

// TestRecvReuse: a batch read twice reports each read's own lengths and
// sources (the headers are reused, what the kernel wrote is reset).
func TestRecvReuse(t *testing.T) {
	dst := listen(t, "udp4", "127.0.0.1:0")
	mc, err := New(dst)
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	buf := make([]byte, 32)
	b.Add(buf, nil, 0, nil)
	dst.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, msg := range []string{"a longer first datagram", "short"} {
		src := listen(t, "udp4", "127.0.0.1:0")
		if _, err := src.WriteToUDPAddrPort([]byte(msg), dst.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
			t.Fatal(err)
		}
		n, errno, err := mc.Recv(&b, 0)
		if n != 1 || errno != 0 || err != nil {
			t.Fatalf("Recv = %d, %v, %v", n, errno, err)
		}
		from, _ := AddrPort(b.From(0))
		if got := string(buf[:b.N(0)]); got != msg || from != src.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Fatalf("read %q from %v, want %q from %v", got, from, msg, src.LocalAddr())
		}
	}
}

// TestNoAllocs: a Send and a Recv of a reused batch allocate nothing (a
// lockstep transfer makes one of each per DATA block).
func TestNoAllocs(t *testing.T) {
	src, dst := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	sc, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := New(dst)
	if err != nil {
		t.Fatal(err)
	}
	var sa unix.RawSockaddrAny
	salen := Sockaddr(unix.AF_INET, dst.LocalAddr().(*net.UDPAddr).AddrPort(), &sa)
	var sb, rb Batch
	sb.Add([]byte("block"), &sa, salen, nil)
	rb.Add(make([]byte, 16), nil, 0, nil)
	dst.SetReadDeadline(time.Now().Add(5 * time.Second))
	allocs := testing.AllocsPerRun(100, func() {
		if sent, errno, err := sc.Send(&sb, 0); sent != 1 || errno != 0 || err != nil {
			t.Fatalf("Send = %d, %v, %v", sent, errno, err)
		}
		if n, errno, err := rc.Recv(&rb, 0); n != 1 || errno != 0 || err != nil {
			t.Fatalf("Recv = %d, %v, %v", n, errno, err)
		}
	})
	if allocs != 0 {
		t.Errorf("a Send and a Recv allocate %v times, want 0", allocs)
	}
}
