package dhcp4

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// udpPayload is one UDP datagram from a capture.
type udpPayload struct {
	src, dst netip.AddrPort
	data     []byte
}

// readPcap reads the IPv4/UDP datagrams of an Ethernet pcap file (the
// classic format tcpdump -w writes).
func readPcap(t *testing.T, file string) []udpPayload {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s: not a little-endian Ethernet pcap", file)
	}
	var out []udpPayload
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+n]
		off += 16 + n
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:]))
		out = append(out, udpPayload{src, dst, udp[8:binary.BigEndian.Uint16(udp[4:])]})
	}
	return out
}

// TestFirmwareGolden replays DHCP packets captured from real firmware in the
// lab (OVMF's EDK II PXE client, then snponly.efi's iPXE; SeaBIOS with the
// iPXE NIC ROM) through the ProxyDHCP policy and compares what pxed makes of
// each with a golden file. Regenerate with `go test ./internal/dhcp4 -run
// TestFirmwareGolden -update` after a deliberate change.
func TestFirmwareGolden(t *testing.T) {
	cfg := &boot.Config{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Profiles:  map[string]boot.Profile{"linux": {Name: "linux", Kernel: "/srv/vmlinuz", Initrds: []string{"/srv/initrd.img"}}},
		Default:   "linux",
	}
	px := &Proxy{Boot: cfg}
	server := boot.Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}
	pcaps, _ := filepath.Glob("testdata/firmware/*.pcap")
	if len(pcaps) == 0 {
		t.Fatal("no captures in testdata/firmware")
	}
	for _, pc := range pcaps {
		t.Run(filepath.Base(pc), func(t *testing.T) {
			var sb strings.Builder
			for _, u := range readPcap(t, pc) {
				if u.dst.Port() != 67 && u.dst.Port() != 4011 {
					continue // server replies
				}
				p, err := dhcpv4.FromBytes(u.data)
				if err != nil {
					t.Fatalf("captured request does not decode: %v", err)
				}
				if u.src.Addr() == server.IP {
					continue
				}
				m := Machine(p)
				fmt.Fprintf(&sb, "%s port=%d firmware=%s arch=%d class=%s uuid=%t vendor=%q\n",
					p.MessageType(), u.dst.Port(), m.Firmware, m.Arch, m.Class, m.UUID != "", p.ClassIdentifier())
				res := px.Respond(Request{Packet: p, Port: Port(u.dst.Port()), Server: server})
				if res.Reply == nil {
					fmt.Fprintf(&sb, "  -> ignored: %s\n", res.Reason)
					continue
				}
				r := res.Reply
				dst := Destination(p, r, Port(u.dst.Port()), u.src)
				fmt.Fprintf(&sb, "  -> %s to %s siaddr=%s yiaddr=%s file=%q opt60=%q opt43=%s uuid-echoed=%t\n",
					r.MessageType(), dst.Addr, r.ServerIPAddr, r.YourIPAddr, r.BootFileNameOption(), r.ClassIdentifier(),
					hex.EncodeToString(r.Options.Get(dhcpv4.GenericOptionCode(optPXEVendor))),
					r.Options.Has(dhcpv4.GenericOptionCode(optClientUUID)))
			}
			golden := strings.TrimSuffix(pc, ".pcap") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(sb.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if sb.String() != string(want) {
				t.Errorf("replay of %s differs from %s:\ngot:\n%s\nwant:\n%s", pc, golden, sb.String(), want)
			}
		})
	}
}
