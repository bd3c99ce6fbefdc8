package dhcp4

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

var probeMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1}

// arpPacket builds an Ethernet/IPv4 ARP packet.
func arpPacket(op uint16, sha net.HardwareAddr, spa, tpa string) []byte {
	b := marshalARPProbe(sha, netip.MustParseAddr(tpa))
	binary.BigEndian.PutUint16(b[6:], op)
	s := netip.MustParseAddr(spa).As4()
	copy(b[14:18], s[:])
	return b
}

func TestMarshalARPProbe(t *testing.T) {
	b := marshalARPProbe(probeMAC, netip.MustParseAddr("192.0.2.7"))
	op, sha, spa, tpa, ok := parseARP(b)
	if !ok || op != arpRequest || sha.String() != probeMAC.String() || spa != netip.IPv4Unspecified() ||
		tpa != netip.MustParseAddr("192.0.2.7") {
		t.Fatalf("probe parses as op %d sha %v spa %v tpa %v ok %v", op, sha, spa, tpa, ok)
	}
	if len(b) != arpLen {
		t.Errorf("probe is %d bytes, want %d", len(b), arpLen)
	}
}

// TestARPConflict: which ARP packets show an address in use (RFC 5227
// §2.1.1), and that the prober's own probe is not one.
func TestARPConflict(t *testing.T) {
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 2}
	addr := netip.MustParseAddr("192.0.2.7")
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"reply from the address", arpPacket(2, other, "192.0.2.7", "0.0.0.0"), true},
		{"request from the address (announcement)", arpPacket(1, other, "192.0.2.7", "192.0.2.7"), true},
		{"another host probing for it", arpPacket(1, other, "0.0.0.0", "192.0.2.7"), true},
		{"our own probe", marshalARPProbe(probeMAC, addr), false},
		{"reply from another address", arpPacket(2, other, "192.0.2.8", "192.0.2.1"), false},
		{"request for it from a configured host", arpPacket(1, other, "192.0.2.9", "192.0.2.7"), false},
		{"truncated", arpPacket(2, other, "192.0.2.7", "0.0.0.0")[:20], false},
		{"not IPv4", func() []byte { b := arpPacket(2, other, "192.0.2.7", "0.0.0.0"); b[2] = 0x86; return b }(), false},
	} {
		if got := arpConflict(c.pkt, addr, probeMAC); got != c.want {
			t.Errorf("%s: conflict %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzParseARP: any bytes parse or are refused without a panic, and a
// parsed packet re-encodes to the same sender and target addresses.
func FuzzParseARP(f *testing.F) {
	f.Add(marshalARPProbe(probeMAC, netip.MustParseAddr("192.0.2.7")))
	f.Add(arpPacket(2, probeMAC, "192.0.2.7", "192.0.2.1"))
	f.Add([]byte{0, 1, 8, 0, 6, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		op, sha, spa, tpa, ok := parseARP(b)
		if !ok {
			return
		}
		again := arpPacket(op, sha, spa.String(), tpa.String())
		op2, sha2, spa2, tpa2, ok2 := parseARP(again)
		if !ok2 || op2 != op || sha2.String() != sha.String() || spa2 != spa || tpa2 != tpa {
			t.Fatalf("round trip: %d %v %v %v → %d %v %v %v", op, sha, spa, tpa, op2, sha2, spa2, tpa2)
		}
		_ = arpConflict(b, spa, probeMAC)
	})
}

// TestProberARP runs the prober in a private network namespace whose
// link probe0 (198.51.100.1/24) is a veth to a second namespace holding
// 198.51.100.2/24, a host that ignores pings. The ARP probe finds .2 in use
// (an ICMP probe would not), finds .3 free, and leaves no entry in the
// neighbour table.
func TestProberARP(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespace test")
	}
	err := inPrivateNetns(t, func() error {
		self, err := netns.Get()
		if err != nil {
			return err
		}
		defer self.Close()
		other, err := netns.New() // this thread is now in it
		if err != nil {
			return err
		}
		defer other.Close()
		if err := netns.Set(self); err != nil {
			return err
		}
		la := netlink.NewLinkAttrs()
		la.Name = "probe0"
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "host0"}); err != nil {
			return err
		}
		host, err := netlink.LinkByName("host0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetNsFd(host, int(other)); err != nil {
			return err
		}
		if err := setUp("probe0", "198.51.100.1/24"); err != nil {
			return err
		}
		if err := netns.Set(other); err != nil {
			return err
		}
		err = setUp("host0", "198.51.100.2/24")
		if err == nil {
			err = os.WriteFile("/proc/sys/net/ipv4/icmp_echo_ignore_all", []byte("1"), 0o644)
		}
		if serr := netns.Set(self); err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
		probe, err := netlink.LinkByName("probe0")
		if err != nil {
			return err
		}
		waitUp(probe.Attrs().Index)

		p := &Prober{Timeout: 300 * time.Millisecond}
		defer p.Close()
		ctx := context.Background()
		if !p.InUse(ctx, netip.MustParseAddr("198.51.100.2")) {
			t.Error("198.51.100.2 (answers ARP, ignores pings) probed free")
		}
		if p.InUse(ctx, netip.MustParseAddr("198.51.100.3")) {
			t.Error("198.51.100.3 (nobody) probed in use")
		}
		neigh, err := netlink.NeighList(probe.Attrs().Index, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, n := range neigh {
			t.Errorf("neighbour entry %v (state %#x) on the prober's link: probes must not resolve addresses", n.IP, n.State)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setUp gives link name the address and brings it up, in the calling
// thread's namespace.
func setUp(name, addr string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(addr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// waitUp waits (at most 2 s) for link index to report carrier.
func waitUp(index int) {
	for range 200 {
		l, err := netlink.LinkByIndex(index)
		if err == nil && l.Attrs().OperState == netlink.OperUp {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
