package dhcp6

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"pxed/internal/boot"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// udpPayload is one UDP datagram from a capture.
type udpPayload struct {
	src, dst netip.AddrPort
	data     []byte
}

// readPcap6 reads the IPv6/UDP datagrams (no extension headers) of an
// Ethernet pcap file (the classic format tcpdump -w writes).
func readPcap6(t *testing.T, file string) []udpPayload {
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
		if len(frame) < 14+40+8 || binary.BigEndian.Uint16(frame[12:]) != 0x86dd {
			continue
		}
		ip := frame[14:]
		if ip[6] != 17 { // next header UDP
			continue
		}
		udp := ip[40:]
		src := netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[8:24])), binary.BigEndian.Uint16(udp))
		dst := netip.AddrPortFrom(netip.AddrFrom16([16]byte(ip[24:40])), binary.BigEndian.Uint16(udp[2:]))
		out = append(out, udpPayload{src, dst, udp[8:binary.BigEndian.Uint16(udp[4:])]})
	}
	return out
}

// goldenConfig is the boot configuration of the e2e tests the captures
// come from: snponly.efi for UEFI x64 PXE, a kernel profile by default
// and, for the HTTP Boot machine, an ISO.
func goldenConfig() *boot.Config {
	return &boot.Config{
		BootFiles: map[string]string{"bios": "undionly.kpxe", "efi-x64": "snponly.efi"},
		Profiles: map[string]boot.Profile{
			"linux": {Name: "linux", Kernel: "/srv/vmlinuz", Initrds: []string{"/srv/initrd.img"}},
			"live":  {Name: "live", Image: "/srv/live.iso"},
		},
		Default:  "linux",
		Machines: map[string]string{"52:54:00:00:09:12": "live"},
	}
}

// goldenServer is pxed's address in the captures' labs.
var goldenServer = boot.Server{IP: netip.MustParseAddr("2001:db8::1"), HTTPPort: 8080}

// pxedDUID is the server identifier of pxed's Advertise in a capture (the
// one carrying a boot file URL), which the firmware's Request to the boot
// service names; relayed replies are unwrapped.
func pxedDUID(t *testing.T, us []udpPayload) dhcpv6.DUID {
	t.Helper()
	for _, u := range us {
		if u.src.Port() != 547 || (u.dst.Port() != 546 && u.dst.Port() != 547) {
			continue
		}
		d, err := dhcpv6.FromBytes(u.data)
		if err != nil {
			continue
		}
		m, err := d.GetInnerMessage()
		if err == nil && m.MessageType == dhcpv6.MessageTypeAdvertise && m.Options.BootFileURL() != "" {
			return m.Options.ServerID()
		}
	}
	t.Fatal("no Advertise with a boot file URL (pxed's) in the capture")
	return nil
}

// replayed is what the policy made of one captured client message.
type replayed struct {
	msg     *dhcpv6.Message
	port    Port
	relayed bool
	res     Result
}

// replay feeds every client message of a capture (to port 547 or 4011)
// through Decode and Proxy.Respond as the server's handler does: a
// relayed message's client address is its relay's peer address, its MAC
// the one learned from an earlier message of the same DUID, else the
// relay's Client Link-Layer Address option.
func replay(t *testing.T, us []udpPayload) []replayed {
	t.Helper()
	px := &Proxy{Boot: goldenConfig()}
	sid := pxedDUID(t, us)
	macs := map[string]net.HardwareAddr{}
	var out []replayed
	for _, u := range us {
		port := Port(u.dst.Port())
		if port != PortDHCP && port != PortBootServer {
			continue
		}
		if a := u.dst.Addr(); !a.IsMulticast() && a != goldenServer.IP {
			continue // a relay's copy for another server (dhcrelay -u sends one to each)
		}
		if d, err := dhcpv6.FromBytes(u.data); err == nil {
			switch d.Type() {
			case dhcpv6.MessageTypeAdvertise, dhcpv6.MessageTypeReply, dhcpv6.MessageTypeRelayReply:
				continue // a server's message (to a relay, or the boot service's Reply)
			}
		}
		msg, outer, inner, err := Decode(u.data)
		if err != nil {
			t.Fatalf("captured message from %v does not decode: %v", u.src, err)
		}
		src := u.src
		var mac net.HardwareAddr
		if cid := msg.Options.ClientID(); cid != nil {
			mac = macs[string(cid.ToBytes())]
		}
		if inner != nil {
			if a, ok := netip.AddrFromSlice(inner.PeerAddr); ok {
				src = netip.AddrPortFrom(a.Unmap(), 546)
			}
			if _, m := inner.Options.ClientLinkLayerAddress(); mac == nil && len(m) == 6 {
				mac = m
			}
		}
		res := px.Respond(Request{Msg: msg, Port: port, Server: goldenServer, ServerID: sid, Src: src, MAC: mac})
		if cid := msg.Options.ClientID(); cid != nil && len(res.Machine.MAC) > 0 && mac == nil {
			macs[string(cid.ToBytes())] = res.Machine.MAC
		}
		out = append(out, replayed{msg: msg, port: port, relayed: outer != nil, res: res})
	}
	return out
}

// describe is the golden text of one replayed message.
func describe(r replayed) string {
	var sb strings.Builder
	mc := r.res.Machine
	if mc.MAC == nil && mc.Firmware == boot.FirmwareUnknown {
		mc = Machine(r.msg, netip.Addr{})
	}
	var vcs []string
	for _, v := range r.msg.Options.VendorClasses() {
		for _, d := range v.Data {
			vcs = append(vcs, fmt.Sprintf("%d:%s", v.EnterpriseNumber, d))
		}
	}
	fmt.Fprintf(&sb, "%s port=%d relayed=%t firmware=%s arch=%d class=%s mac=%s uuid=%s vendor=%q\n",
		r.msg.MessageType, r.port, r.relayed, mc.Firmware, mc.Arch, mc.Class, mc.MAC, mc.UUID, strings.Join(vcs, ","))
	if r.res.Reply == nil {
		fmt.Fprintf(&sb, "  -> ignored (%s): %s\n", r.res.Ignored, r.res.Reason)
		return sb.String()
	}
	rep := r.res.Reply
	var rvc []string
	for _, v := range rep.Options.VendorClasses() {
		for _, d := range v.Data {
			rvc = append(rvc, fmt.Sprintf("%d:%s", v.EnterpriseNumber, d))
		}
	}
	fmt.Fprintf(&sb, "  -> %s vendor=%q url=%s ia_na=%t preference=%t\n", rep.MessageType, strings.Join(rvc, ","),
		rep.Options.BootFileURL(), rep.Options.OneIANA() != nil, rep.Options.GetOne(dhcpv6.OptionPreference) != nil)
	return sb.String()
}

// TestFirmwareGolden replays DHCPv6 messages captured from real firmware in
// the e2e labs (testdata/firmware/*.pcap; see the README there) through
// Decode and the ProxyDHCPv6 policy and compares what pxed makes of each
// with a golden file. Regenerate with `go test ./internal/dhcp6 -run
// TestFirmwareGolden -update` after a deliberate change.
func TestFirmwareGolden(t *testing.T) {
	pcaps, _ := filepath.Glob("testdata/firmware/*.pcap")
	if len(pcaps) == 0 {
		t.Fatal("no captures in testdata/firmware")
	}
	for _, pc := range pcaps {
		t.Run(filepath.Base(pc), func(t *testing.T) {
			var sb strings.Builder
			for _, r := range replay(t, readPcap6(t, pc)) {
				sb.WriteString(describe(r))
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

// TestFirmwareGoldenAnswers states, for each capture, what a user relies on
// in pxed's answers to the firmware's own messages: EDK II's PXEv6 Solicit
// (direct and relayed by ISC dhcrelay) gets a ProxyBinl Advertise
// (PXEClient, no IA_NA, no preference, tftp:// URL) and its Request to
// 4011 a Reply with the same URL; iPXE's Information-request its script
// URL; HttpBootDxe's Solicit an Advertise with HTTPClient and the
// machine's http:// URL; and each machine is classified from its own
// packets (firmware, architecture, MAC).
func TestFirmwareGoldenAnswers(t *testing.T) {
	type want struct {
		mt       dhcpv6.MessageType
		port     Port
		firmware boot.Firmware
		reply    dhcpv6.MessageType
		vendor   string
		url      string
	}
	const (
		pxeMAC  = "52:54:00:00:06:21"
		httpMAC = "52:54:00:00:09:12"
		tftp    = "tftp://[2001:db8::1]/snponly.efi"
		script  = "http://[2001:db8::1]:8080/boot/52-54-00-00-06-21/script.ipxe"
	)
	pxev6 := []want{
		{dhcpv6.MessageTypeSolicit, PortDHCP, boot.FirmwarePXE, dhcpv6.MessageTypeAdvertise, "PXEClient", tftp},
		{dhcpv6.MessageTypeRequest, PortBootServer, boot.FirmwarePXE, dhcpv6.MessageTypeReply, "PXEClient", tftp},
		{dhcpv6.MessageTypeInformationRequest, PortDHCP, boot.FirmwareIPXE, dhcpv6.MessageTypeReply, "", script},
	}
	for _, tc := range []struct {
		file    string
		mac     string
		relayed bool
		want    []want
	}{
		{"ovmf-pxev6.pcap", pxeMAC, false, pxev6},
		{"ovmf-pxev6-dhcrelay.pcap", pxeMAC, true, pxev6},
		{"ovmf-httpv6.pcap", httpMAC, false, []want{
			{dhcpv6.MessageTypeSolicit, PortDHCP, boot.FirmwareHTTP, dhcpv6.MessageTypeAdvertise, "HTTPClient",
				"http://[2001:db8::1]:8080/boot/52-54-00-00-09-12/live.iso"},
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			got := replay(t, readPcap6(t, filepath.Join("testdata/firmware", tc.file)))
			for _, w := range tc.want {
				var r *replayed
				for i := range got {
					if got[i].msg.MessageType == w.mt && got[i].port == w.port && got[i].res.Reply != nil {
						r = &got[i]
						break
					}
				}
				if r == nil {
					t.Errorf("%s on port %d: no answered message of that kind in the capture", w.mt, w.port)
					continue
				}
				mc, rep := r.res.Machine, r.res.Reply
				if mc.Firmware != w.firmware || mc.Arch != 7 && mc.Arch != 16 || mc.MAC.String() != tc.mac {
					t.Errorf("%s: machine %s arch %d MAC %s, want %s, arch 7 (PXE) or 16 (HTTP), %s", w.mt, mc.Firmware, mc.Arch, mc.MAC, w.firmware, tc.mac)
				}
				if w.firmware == boot.FirmwarePXE && (mc.Arch != 7 || mc.Class != "efi-x64") ||
					w.firmware == boot.FirmwareHTTP && (mc.Arch != 16 || mc.Class != "efi-x64") {
					t.Errorf("%s: arch %d class %q", w.mt, mc.Arch, mc.Class)
				}
				if r.relayed != (tc.relayed && w.port == PortDHCP) {
					t.Errorf("%s on port %d: relayed %t", w.mt, w.port, r.relayed)
				}
				if rep.MessageType != w.reply {
					t.Errorf("%s: answered %s, want %s", w.mt, rep.MessageType, w.reply)
				}
				var vendor string
				for _, v := range rep.Options.VendorClasses() {
					if v.EnterpriseNumber == EnterprisePXE && len(v.Data) == 1 {
						vendor = string(v.Data[0])
					}
				}
				if vendor != w.vendor {
					t.Errorf("%s: vendor class %q under 343, want %q", w.mt, vendor, w.vendor)
				}
				if u := rep.Options.BootFileURL(); u != w.url {
					t.Errorf("%s: boot file URL %q, want %q", w.mt, u, w.url)
				}
				// A proxy offers no address and no preference (see the
				// package documentation).
				if rep.Options.OneIANA() != nil || rep.Options.GetOne(dhcpv6.OptionPreference) != nil || rep.Options.Status() != nil {
					t.Errorf("%s: the reply carries an IA_NA, a preference or a status code", w.mt)
				}
				if !rep.Options.ServerID().Equal(pxedDUID(t, readPcap6(t, filepath.Join("testdata/firmware", tc.file)))) {
					t.Errorf("%s: reply's server ID is not pxed's", w.mt)
				}
			}
		})
	}
}
