package rogue

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"pxed/internal/events"
)

var (
	pxedMAC    = mustMAC("02:00:00:00:00:01")
	rogueMAC   = mustMAC("02:00:00:00:00:02")
	clientMAC  = mustMAC("52:54:00:12:34:56")
	pxedAddr   = netip.MustParseAddr("192.0.2.1")
	rogueAddr  = netip.MustParseAddr("192.0.2.2")
	relayAddr  = netip.MustParseAddr("198.51.100.1")
	broadcast  = mustMAC("ff:ff:ff:ff:ff:ff")
	pxedOwn    = Own{MACs: map[string]bool{pxedMAC.String(): true}, Addrs: map[netip.Addr]bool{pxedAddr: true, netip.MustParseAddr("fe80::1"): true}}
	zero4      = netip.IPv4Unspecified()
	rogue6Addr = netip.MustParseAddr("fe80::2")
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// offer4 is a rogue's PXE offer: an address and a boot file.
func offer4() Reply {
	return Reply{Family: 4, SrcMAC: rogueMAC, DstMAC: broadcast, Src: rogueAddr, Dst: netip.MustParseAddr("255.255.255.255"),
		SrcPort: 67, DstPort: 68, Type: "offer", XID: 0x01020304, Client: clientMAC,
		YIAddr: netip.MustParseAddr("192.0.2.150"), SIAddr: rogueAddr, GIAddr: zero4, ServerID: rogueAddr,
		File: "pxelinux.0", VendorClass: "PXEClient"}
}

func advertise6() Reply {
	return Reply{Family: 6, SrcMAC: rogueMAC, DstMAC: clientMAC, Src: rogue6Addr, Dst: netip.MustParseAddr("fe80::5054:ff:fe12:3456"),
		SrcPort: 547, DstPort: 546, Type: "advertise", XID: 0xabcdef, Client: clientMAC, ServerHW: rogueMAC,
		YIAddr: netip.MustParseAddr("2001:db8::99"), File: "tftp://[2001:db8::2]/bootx64.efi", VendorClass: "PXEClient"}
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, want := range []Reply{offer4(), advertise6()} {
		got, err := Decode(frame(want))
		if err != nil {
			t.Fatalf("Decode(%s): %v", want.Type, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(frame(r)) =\n%+v\nwant\n%+v", got, want)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	request := offer4()
	request.SrcPort, request.DstPort = 68, 67 // client → server
	relayHop := offer4()
	relayHop.DstPort = 67 // server → relay agent
	for name, f := range map[string][]byte{
		"empty":          nil,
		"short ethernet": {1, 2, 3},
		"arp":            append(make([]byte, 12), 0x08, 0x06, 0, 0),
		"client→server":  frame(request),
		"server→relay":   frame(relayHop),
		"truncated":      frame(offer4())[:60],
	} {
		if _, err := Decode(f); err == nil {
			t.Errorf("%s: Decode accepted it", name)
		}
	}
}

// TestClassify is the policy: who is a rogue, and why a reply is not.
func TestClassify(t *testing.T) {
	with := func(f func(*Reply)) Reply { r := offer4(); f(&r); return r }
	cases := []struct {
		name   string
		r      Reply
		role   Role
		report bool
		kind   string
		why    string
	}{
		{"PXE offer from another server, pxed is the DHCP server", offer4(), RoleServer, true, KindDHCPBoot, ""},
		{"PXE offer from another server, pxed is ProxyDHCP", offer4(), RoleProxy, true, KindDHCPBoot, ""},
		{"address-only offer, pxed is the DHCP server", with(func(r *Reply) { r.File, r.VendorClass, r.SIAddr = "", "", zero4 }), RoleServer, true, KindDHCP, ""},
		{"address-only offer, pxed is ProxyDHCP: the network's DHCP server",
			with(func(r *Reply) { r.File, r.VendorClass = "", "" }), RoleProxy, false, "", "expected beside"},
		{"ProxyDHCP offer (yiaddr 0, PXEClient)", with(func(r *Reply) { r.YIAddr, r.File = zero4, "" }), RoleProxy, true, KindProxyDHCP, ""},
		{"PXE boot server ack from 4011", with(func(r *Reply) { r.Type, r.SrcPort, r.YIAddr = "ack", 4011, zero4 }), RoleProxy, true, KindProxyDHCP, ""},
		{"option 43 alone is boot information", with(func(r *Reply) { r.YIAddr, r.File, r.VendorClass, r.VendorOpts = zero4, "", "", true }), RoleProxy, true, KindProxyDHCP, ""},
		{"BOOTP reply", with(func(r *Reply) { r.Type = "bootp" }), RoleServer, true, KindDHCPBoot, ""},
		{"pxed's own reply by MAC", with(func(r *Reply) { r.SrcMAC = pxedMAC }), RoleServer, false, "", "source MAC"},
		{"pxed's own reply by address", with(func(r *Reply) { r.Src = pxedAddr }), RoleServer, false, "", "source address"},
		{"pxed's reply through a relay agent", with(func(r *Reply) { r.Src, r.GIAddr, r.ServerID = relayAddr, relayAddr, pxedAddr }), RoleServer, false, "", "relay"},
		{"another server's reply through a relay agent", with(func(r *Reply) { r.Src, r.GIAddr = relayAddr, relayAddr }), RoleServer, true, KindDHCPBoot, ""},
		{"NAK", with(func(r *Reply) { r.Type = "nak" }), RoleServer, false, "", "not an offer"},
		{"INFORM's ack: no address, no boot", with(func(r *Reply) { r.Type, r.YIAddr, r.File, r.VendorClass = "ack", zero4, "", "" }), RoleServer, false, "", "neither"},
		{"pxed serves no DHCPv4", offer4(), RoleOff, false, "", "serves no DHCP"},
		{"DHCPv6 Advertise from another server", advertise6(), RoleServer, true, KindDHCPBoot, ""},
		{"pxed's own DHCPv6 reply by DUID", func() Reply { r := advertise6(); r.SrcMAC = rogueMAC; r.ServerHW = pxedMAC; return r }(), RoleServer, false, "", "DUID"},
		{"DHCPv6 address-only Reply, pxed is ProxyDHCPv6", func() Reply { r := advertise6(); r.Type, r.File, r.VendorClass = "reply", "", ""; return r }(), RoleProxy, false, "", "expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Classify(c.r, pxedOwn, c.role)
			if v.Report != c.report || v.Kind != c.kind || !strings.Contains(v.Why, c.why) {
				t.Errorf("Classify = %+v, want report=%v kind=%q why containing %q", v, c.report, c.kind, c.why)
			}
		})
	}
}

// TestFilters runs the BPF programs on frames: only server → client DHCP
// passes.
func TestFilters(t *testing.T) {
	f4, err := Filter4()
	if err != nil {
		t.Fatal(err)
	}
	f6, err := Filter6()
	if err != nil {
		t.Fatal(err)
	}
	vm := func(raw []bpf.RawInstruction) *bpf.VM {
		prog, ok := bpf.Disassemble(raw)
		if !ok {
			t.Fatal("disassemble")
		}
		v, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v4, v6 := vm(f4), vm(f6)
	with4 := func(f func(*Reply)) []byte { r := offer4(); f(&r); return frame(r) }
	with6 := func(f func(*Reply)) []byte { r := advertise6(); f(&r); return frame(r) }
	frag := frame(offer4())
	frag = append([]byte(nil), frag...)
	frag[etherHeaderLen+6] = 0x20 // more fragments
	for _, c := range []struct {
		name string
		vm   *bpf.VM
		f    []byte
		pass bool
	}{
		{"offer 67→68", v4, frame(offer4()), true},
		{"boot server ack 4011→68", v4, with4(func(r *Reply) { r.SrcPort = 4011 }), true},
		{"discover 68→67", v4, with4(func(r *Reply) { r.SrcPort, r.DstPort = 68, 67 }), false},
		{"reply to a relay 67→67", v4, with4(func(r *Reply) { r.DstPort = 67 }), false},
		{"tftp 69→2000", v4, with4(func(r *Reply) { r.SrcPort, r.DstPort = 69, 2000 }), false},
		{"fragment", v4, frag, false},
		{"ipv6 frame on the ipv4 filter", v4, frame(advertise6()), false},
		{"advertise 547→546", v6, frame(advertise6()), true},
		{"solicit 546→547", v6, with6(func(r *Reply) { r.SrcPort, r.DstPort = 546, 547 }), false},
		{"relay-reply 547→547", v6, with6(func(r *Reply) { r.DstPort = 547 }), false},
		{"ipv4 frame on the ipv6 filter", v6, frame(offer4()), false},
	} {
		n, err := c.vm.Run(c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (n > 0) != c.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", c.name, n, c.pass)
		}
	}
}

type recorder struct {
	mu  sync.Mutex
	evs []events.Event
}

func (r *recorder) Record(e events.Event) { r.mu.Lock(); r.evs = append(r.evs, e); r.mu.Unlock() }

func TestDetector(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rec := &recorder{}
	d := &Detector{Role4: RoleServer, Role6: RoleProxy, Events: rec, MaxServers: 2,
		Seen:    func(mac string) bool { return mac == clientMAC.String() },
		OwnFunc: func() (Own, error) { return pxedOwn, nil },
		Now:     func() time.Time { return now }}
	d.Log.Now = d.Now

	own := offer4()
	own.SrcMAC, own.Src, own.ServerID = pxedMAC, pxedAddr, pxedAddr
	if v := d.Observe("br0", own); v.Report {
		t.Fatalf("pxed's own offer reported")
	}
	for range 3 {
		d.Observe("br0", offer4())
	}
	rs := d.Rogues()
	if len(rs) != 1 || rs[0].Server != rogueAddr || rs[0].Count != 3 || rs[0].File != "pxelinux.0" || rs[0].Interface != "br0" {
		t.Fatalf("Rogues = %+v, want one row for %s with 3 replies", rs, rogueAddr)
	}
	// Events: one per reply on the known client's timeline, one per log
	// interval on the server's address.
	var onClient, onServer int
	for _, e := range rec.evs {
		if e.Stage != StageRogueServer {
			t.Errorf("event stage %q", e.Stage)
		}
		switch {
		case e.MAC == clientMAC.String():
			onClient++
		case e.IP == rogueAddr:
			onServer++
			if !strings.Contains(e.Detail, "yiaddr=192.0.2.150") || !strings.Contains(e.Detail, `file="pxelinux.0"`) {
				t.Errorf("server event detail %q does not say what was offered", e.Detail)
			}
		}
	}
	if onClient != 3 || onServer != 1 {
		t.Errorf("events: %d on the client, %d on the server; want 3 and 1", onClient, onServer)
	}
	// An unknown client: no event on its timeline.
	unknown := offer4()
	unknown.Client = mustMAC("52:54:00:00:00:99")
	d.Observe("br0", unknown)
	if len(rec.evs) != 4 {
		t.Errorf("a reply to an unseen client added %d events, want none", len(rec.evs)-4)
	}
	// The table is bounded: the third server is counted, not kept.
	for i, a := range []string{"192.0.2.3", "192.0.2.4"} {
		r := offer4()
		r.Src, r.ServerID = netip.MustParseAddr(a), netip.MustParseAddr(a)
		d.Observe("br0", r)
		if st := d.Stats(); st.Servers != 2 || st.Overflow != uint64(i) {
			t.Errorf("after %s: stats %+v", a, st)
		}
	}
	if st := d.Stats(); st.Ignored != 1 {
		t.Errorf("ignored = %d, want 1 (pxed's own)", st.Ignored)
	}
}

// FuzzDecode checks Decode never panics and that what it decodes encodes
// back to a frame that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add(frame(offer4()))
	f.Add(frame(advertise6()))
	r := offer4()
	r.Type, r.YIAddr, r.File, r.VendorOpts = "ack", zero4, "", true
	f.Add(frame(r))
	f.Add([]byte{})
	captured, _ := filepath.Glob(filepath.Join("testdata", "*.frame"))
	for _, file := range captured {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		r2, err := Decode(frame(r))
		if err != nil {
			t.Fatalf("re-encoded reply does not decode: %v\n%+v", err, r)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip:\n%+v\n%+v", r, r2)
		}
	})
}

// TestDecodeCaptured decodes replies captured from dnsmasq and pxed and
// classifies them as pxed at 192.0.2.1 would.
func TestDecodeCaptured(t *testing.T) {
	own := Own{MACs: map[string]bool{}, Addrs: map[netip.Addr]bool{pxedAddr: true}}
	for _, c := range []struct {
		file           string
		role           Role
		report         bool
		kind           string
		server, yiaddr string
		file67, vendor string
	}{
		{"dnsmasq-dhcp-boot-offer", RoleServer, true, KindDHCPBoot, "192.0.2.2", "192.0.2.1", "rogue.efi", ""},
		{"dnsmasq-address-offer", RoleProxy, false, "", "192.0.2.2", "192.0.2.1", "", ""},
		{"dnsmasq-address-offer", RoleServer, true, KindDHCP, "192.0.2.2", "192.0.2.1", "", ""},
		{"dnsmasq-proxydhcp-offer", RoleProxy, true, KindProxyDHCP, "192.0.2.3", "0.0.0.0", "", "PXEClient"},
		{"pxed-server-offer", RoleServer, false, "", "192.0.2.1", "192.0.2.5", "", "PXEClient"},
		{"pxed-proxydhcp-offer", RoleProxy, false, "", "192.0.2.1", "0.0.0.0", "", "PXEClient"},
	} {
		t.Run(c.file+"/"+fmt.Sprint(c.role), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.file+".frame"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if r.Server().String() != c.server || !strings.HasPrefix(r.YIAddr.String(), c.yiaddr) ||
				(c.file67 != "" && r.File != c.file67) || !strings.HasPrefix(r.VendorClass, c.vendor) {
				t.Errorf("decoded %+v: want server %s, yiaddr %s…, file %q, vendor class %q…", r, c.server, c.yiaddr, c.file67, c.vendor)
			}
			if v := Classify(r, own, c.role); v.Report != c.report || v.Kind != c.kind {
				t.Errorf("Classify = %+v, want report=%v kind=%q", v, c.report, c.kind)
			}
		})
	}
}
