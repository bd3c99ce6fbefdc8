package dhcp6

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"pxed/internal/boot"
	"pxed/internal/lease"
)

// newFull is a server on 2001:db8::/64 (srv's prefix, interface eth0),
// pool ::100-::101, a DUID reservation ::50, over a MemStore.
func newFull(t testing.TB, edit func(*Full)) (*Full, *lease.MemStore) {
	t.Helper()
	st := lease.NewMemStore()
	m, err := lease.New(st, lease.Config{Authoritative: true, Subnet: lease.Subnet{
		Prefix:       netip.MustParsePrefix("2001:db8::/64"),
		Ranges:       []lease.Range{{First: netip.MustParseAddr("2001:db8::100"), Last: netip.MustParseAddr("2001:db8::101")}},
		Reservations: []lease.Reservation{{DUID: reservedDUID.ToBytes(), Addr: netip.MustParseAddr("2001:db8::50"), Hostname: "fifty"}},
		LeaseTime:    time.Hour,
	}})
	if err != nil {
		t.Fatal(err)
	}
	f := &Full{Boot: testConfig(), Preference: -1, Subnets: []*Subnet{{Leases: m, Interface: "eth0", Preferred: 30 * time.Minute,
		DNS: []netip.Addr{netip.MustParseAddr("2001:db8::53")}, DomainSearch: []string{"lab.example"},
		Options: []Option{{Code: 65000, Value: []byte("hi")}}}}}
	if edit != nil {
		edit(f)
	}
	return f, st
}

var reservedDUID = &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x50}}

// plain is a message of a client that is no boot client (dhclient -6).
func plain(mt dhcpv6.MessageType, duid dhcpv6.DUID, sid dhcpv6.DUID, iaid byte, addrs ...string) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: mt, TransactionID: dhcpv6.TransactionID{7, 7, iaid}}
	m.AddOption(dhcpv6.OptClientID(duid))
	if sid != nil {
		m.AddOption(dhcpv6.OptServerID(sid))
	}
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList))
	ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, iaid}}
	for _, a := range addrs {
		ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(a), PreferredLifetime: time.Hour, ValidLifetime: time.Hour})
	}
	if mt != dhcpv6.MessageTypeInformationRequest {
		m.AddOption(ia)
	}
	return m
}

func respond(t *testing.T, f *Full, m *dhcpv6.Message) Result {
	t.Helper()
	res := f.Respond(Request{Msg: m, Port: PortDHCP, Server: srv, ServerID: serverDUID, Src: linkLocal, Interface: "eth0", Ctx: context.Background()})
	if res.Reply != nil {
		if _, err := dhcpv6.MessageFromBytes(res.Reply.ToBytes()); err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
	}
	return res
}

// iaOf returns the reply's IA_NA addresses (with valid lifetimes) and status.
func iaOf(t *testing.T, r *dhcpv6.Message) (map[string]time.Duration, iana.StatusCode) {
	t.Helper()
	ias := r.Options.IANA()
	if len(ias) != 1 {
		t.Fatalf("%d IA_NA in %s", len(ias), r.Summary())
	}
	out := map[string]time.Duration{}
	for _, a := range ias[0].Options.Addresses() {
		out[a.IPv6Addr.String()] = a.ValidLifetime
	}
	st := iana.StatusSuccess
	if s := ias[0].Options.Status(); s != nil {
		st = s.StatusCode
	}
	return out, st
}

func TestFullLifecycle(t *testing.T) {
	f, st := newFull(t, nil)
	duid := llt(clientMAC)
	// Solicit → Advertise with an address, T1/T2, the subnet's options.
	res := respond(t, f, plain(dhcpv6.MessageTypeSolicit, duid, nil, 1))
	if res.Reply == nil || res.Reply.MessageType != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("solicit: %v %s", res.Reply, res.Reason)
	}
	as, _ := iaOf(t, res.Reply)
	if as["2001:db8::100"] != time.Hour {
		t.Fatalf("advertised %v, want 2001:db8::100 for 1h", as)
	}
	ia := res.Reply.Options.OneIANA()
	if ia.T1 != 15*time.Minute || ia.T2 != 24*time.Minute || ia.Options.OneAddress().PreferredLifetime != 30*time.Minute {
		t.Errorf("T1 %v T2 %v preferred %v, want 15m, 24m, 30m", ia.T1, ia.T2, ia.Options.OneAddress().PreferredLifetime)
	}
	if len(res.Reply.Options.DNS()) != 1 || res.Reply.Options.DomainSearchList() == nil || res.Reply.GetOneOption(65000) == nil {
		t.Errorf("options missing: %s", res.Reply.Summary())
	}
	if res.Reply.GetOneOption(dhcpv6.OptionPreference) != nil || res.Reply.Options.BootFileURL() != "" {
		t.Errorf("preference or boot file sent unasked: %s", res.Reply.Summary())
	}
	if ls, _ := st.Find(context.Background(), lease.Filter{}); len(ls) != 0 {
		t.Fatalf("an Advertise wrote %d leases", len(ls))
	}
	// Request → Reply, bound and durable.
	res = respond(t, f, plain(dhcpv6.MessageTypeRequest, duid, serverDUID, 1, "2001:db8::100"))
	if res.Reply == nil || res.Reply.MessageType != dhcpv6.MessageTypeReply || res.Learn != netip.MustParseAddr("2001:db8::100") {
		t.Fatalf("request: %v %s", res.Reply, res.Reason)
	}
	l, err := st.Get(context.Background(), netip.MustParseAddr("2001:db8::100"))
	if err != nil || l.State != lease.Bound || l.Key != lease.DUIDKey(1, duid.ToBytes()) || l.MAC.String() != clientMAC.String() {
		t.Fatalf("stored %+v %v", l, err)
	}
	// A Request for another server is not ours to answer.
	if res := respond(t, f, plain(dhcpv6.MessageTypeRequest, duid, otherDUID, 1, "2001:db8::100")); res.Reply != nil || res.Ignored != OtherServer {
		t.Fatalf("request for another server: %v", res.Reason)
	}
	// Renew and Rebind extend it.
	for _, mt := range []dhcpv6.MessageType{dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind} {
		sid := dhcpv6.DUID(serverDUID)
		if mt == dhcpv6.MessageTypeRebind {
			sid = nil
		}
		res = respond(t, f, plain(mt, duid, sid, 1, "2001:db8::100"))
		if as, stc := iaOf(t, res.Reply); as["2001:db8::100"] != time.Hour || stc != iana.StatusSuccess {
			t.Fatalf("%s: %v %v", mt, as, stc)
		}
	}
	// Another DUID renewing it: NoBinding; rebinding it: silence.
	other := llt(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99})
	res = respond(t, f, plain(dhcpv6.MessageTypeRenew, other, serverDUID, 1, "2001:db8::100"))
	if _, stc := iaOf(t, res.Reply); stc != iana.StatusNoBinding {
		t.Fatalf("foreign renew: %v", stc)
	}
	if res := respond(t, f, plain(dhcpv6.MessageTypeRebind, other, nil, 1, "2001:db8::100")); res.Reply != nil {
		t.Fatalf("foreign rebind answered: %s", res.Reply.Summary())
	}
	// An address off the link comes back with lifetime 0.
	res = respond(t, f, plain(dhcpv6.MessageTypeRebind, duid, nil, 1, "2001:db8:9::1"))
	if as, _ := iaOf(t, res.Reply); len(as) != 1 || as["2001:db8:9::1"] != 0 {
		t.Fatalf("off-link rebind: %v", as)
	}
	// Confirm: on link, then not.
	res = respond(t, f, plain(dhcpv6.MessageTypeConfirm, duid, nil, 1, "2001:db8::100"))
	if s := res.Reply.Options.Status(); s == nil || s.StatusCode != iana.StatusSuccess {
		t.Fatalf("confirm on link: %v", res.Reply.Summary())
	}
	res = respond(t, f, plain(dhcpv6.MessageTypeConfirm, duid, nil, 1, "2001:db8:9::1"))
	if s := res.Reply.Options.Status(); s == nil || s.StatusCode != iana.StatusNotOnLink {
		t.Fatalf("confirm off link: %v", res.Reply.Summary())
	}
	// A foreign Release is refused (NoBinding) and the lease stays.
	res = respond(t, f, plain(dhcpv6.MessageTypeRelease, other, serverDUID, 1, "2001:db8::100"))
	if _, stc := iaOf(t, res.Reply); stc != iana.StatusNoBinding {
		t.Fatalf("foreign release: %v", stc)
	}
	if l, _ := st.Get(context.Background(), netip.MustParseAddr("2001:db8::100")); l.State != lease.Bound {
		t.Fatalf("foreign release changed the lease: %+v", l)
	}
	// The holder's Release: Success, released; the same address again after.
	res = respond(t, f, plain(dhcpv6.MessageTypeRelease, duid, serverDUID, 1, "2001:db8::100"))
	if s := res.Reply.Options.Status(); s == nil || s.StatusCode != iana.StatusSuccess || len(res.Reply.Options.IANA()) != 0 {
		t.Fatalf("release: %s", res.Reply.Summary())
	}
	if l, _ := st.Get(context.Background(), netip.MustParseAddr("2001:db8::100")); l.State != lease.Released {
		t.Fatalf("after release: %+v", l)
	}
	res = respond(t, f, plain(dhcpv6.MessageTypeSolicit, duid, nil, 1))
	if as, _ := iaOf(t, res.Reply); as["2001:db8::100"] == 0 {
		t.Fatalf("after release the client got %v, want its address back", as)
	}
}

func TestFullExhaustionDeclineReservation(t *testing.T) {
	f, st := newFull(t, nil)
	for i := byte(1); i <= 2; i++ {
		res := respond(t, f, plain(dhcpv6.MessageTypeRequest, llt(net.HardwareAddr{2, 0, 0, 0, 0, i}), serverDUID, 1))
		if as, _ := iaOf(t, res.Reply); len(as) != 1 {
			t.Fatalf("client %d: %v", i, as)
		}
	}
	res := respond(t, f, plain(dhcpv6.MessageTypeSolicit, llt(net.HardwareAddr{2, 0, 0, 0, 0, 3}), nil, 1))
	if as, stc := iaOf(t, res.Reply); len(as) != 0 || stc != iana.StatusNoAddrsAvail || !res.PoolExhausted {
		t.Fatalf("exhausted pool: %v %v", as, stc)
	}
	// The reserved DUID gets its address whatever its IAID.
	res = respond(t, f, plain(dhcpv6.MessageTypeRequest, reservedDUID, serverDUID, 42))
	if as, _ := iaOf(t, res.Reply); as["2001:db8::50"] == 0 {
		t.Fatalf("reservation: %v", as)
	}
	// Decline quarantines the address.
	c1 := llt(net.HardwareAddr{2, 0, 0, 0, 0, 1})
	held, _ := st.ByKey(context.Background(), lease.DUIDKey(1, c1.ToBytes()))
	if len(held) != 1 {
		t.Fatalf("client 1 holds %v", held)
	}
	res = respond(t, f, plain(dhcpv6.MessageTypeDecline, c1, serverDUID, 1, held[0].Addr.String()))
	if s := res.Reply.Options.Status(); s == nil || s.StatusCode != iana.StatusSuccess {
		t.Fatalf("decline: %s", res.Reply.Summary())
	}
	if l, _ := st.Get(context.Background(), held[0].Addr); l.State != lease.Declined {
		t.Fatalf("declined lease: %+v", l)
	}
}

// A Request for an address the client cannot have gets another one, and
// the one asked for back with lifetime 0 (RFC 8415 §18.3.2).
func TestFullRequestOtherAddress(t *testing.T) {
	f, _ := newFull(t, nil)
	res := respond(t, f, plain(dhcpv6.MessageTypeRequest, llt(clientMAC), serverDUID, 1, "2001:db8::77"))
	as, _ := iaOf(t, res.Reply)
	if as["2001:db8::100"] != time.Hour || len(as) != 2 {
		t.Fatalf("got %v, want ::100 for 1h and ::77 for 0", as)
	}
	if v, ok := as["2001:db8::77"]; !ok || v != 0 {
		t.Fatalf("asked-for address: %v", as)
	}
}

// Boot clients get an address and their boot file in one Advertise (EDK
// II's DhcpBinl offer); iPXE soliciting an address gets its script;
// rapid commit and preference as configured.
func TestFullBootClients(t *testing.T) {
	f, st := newFull(t, func(f *Full) { f.RapidCommit, f.Preference = true, 255 })
	res := respond(t, f, edk2Solicit(t, dhcpv6.MessageTypeSolicit, llt(clientMAC), iana.EFI_X86_64))
	r := res.Reply
	if r == nil || r.MessageType != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("EDK II solicit: %s", res.Reason)
	}
	if as, _ := iaOf(t, r); len(as) != 1 {
		t.Fatalf("no address: %s", r.Summary())
	}
	if r.Options.BootFileURL() != "tftp://[2001:db8::1]/snponly.efi" || len(r.Options.VendorClasses()) != 1 || r.Options.Preference() != 255 {
		t.Fatalf("EDK II advertise: %s", r.Summary())
	}
	ipxe := ipxeMessage(t, dhcpv6.MessageTypeSolicit)
	ipxe.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
	res = respond(t, f, ipxe)
	r = res.Reply
	if r == nil || r.MessageType != dhcpv6.MessageTypeReply || r.GetOneOption(dhcpv6.OptionRapidCommit) == nil {
		t.Fatalf("iPXE rapid commit: %v", res.Reason)
	}
	if !strings.HasPrefix(r.Options.BootFileURL(), "http://[2001:db8::1]:8080/") || len(r.Options.VendorClasses()) != 0 {
		t.Fatalf("iPXE reply: %s", r.Summary())
	}
	if ls, _ := st.Find(context.Background(), lease.Filter{States: []lease.State{lease.Bound}}); len(ls) != 1 {
		t.Fatalf("rapid commit bound %d leases", len(ls))
	}
	// Port 4011 is the boot service, as in the proxy.
	req := edk2Solicit(t, dhcpv6.MessageTypeRequest, llt(clientMAC), iana.EFI_X86_64)
	req.AddOption(dhcpv6.OptServerID(serverDUID))
	res = f.Respond(Request{Msg: req, Port: PortBootServer, Server: srv, ServerID: serverDUID, Src: leased})
	if res.Reply == nil || res.Reply.Options.BootFileURL() == "" {
		t.Fatalf("boot service: %s", res.Reason)
	}
}

// Relayed messages pick the subnet by the relay's link address; a link
// no subnet covers is not answered.
func TestFullSubnetByLink(t *testing.T) {
	f, _ := newFull(t, nil)
	m := plain(dhcpv6.MessageTypeSolicit, llt(clientMAC), nil, 1)
	for _, c := range []struct {
		link string
		ok   bool
	}{{"2001:db8::", true}, {"2001:db8:5::", false}, {"::", false}} {
		res := f.Respond(Request{Msg: m, Port: PortDHCP, Server: srv, ServerID: serverDUID, Src: linkLocal, Interface: "eth0",
			Link: netip.MustParseAddr(c.link)})
		if (res.Reply != nil) != c.ok {
			t.Errorf("link %s: reply %v (%s)", c.link, res.Reply != nil, res.Reason)
		}
	}
	// Not relayed, on an interface no subnet names: by the server's address.
	res := f.Respond(Request{Msg: m, Port: PortDHCP, Server: boot.Server{IP: netip.MustParseAddr("2001:db8:7::1")}, ServerID: serverDUID, Src: linkLocal, Interface: "eth1"})
	if res.Reply != nil || res.Ignored != NoSubnet {
		t.Errorf("other link: %v %s", res.Reply != nil, res.Reason)
	}
}

// An Information-request without a client identifier (RFC 8415 §18.2.6
// allows it) gets the options, and nothing breaks for the lack of a DUID.
func TestFullInformationRequestWithoutClientID(t *testing.T) {
	f, _ := newFull(t, nil)
	m := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeInformationRequest, TransactionID: dhcpv6.TransactionID{9, 9, 9}}
	m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionDNSRecursiveNameServer))
	res := respond(t, f, m)
	if res.Reply == nil || res.Reply.MessageType != dhcpv6.MessageTypeReply || len(res.Reply.Options.DNS()) != 1 {
		t.Fatalf("information-request: %v %s", res.Reply, res.Reason)
	}
}

// TestFullOwns: in a cluster, the Solicits, Rebinds and Confirms of a
// client another server owns are left to it (counted as peer-share, no
// address offered); what names this server, and Information-requests,
// are answered whoever owns the client.
func TestFullOwns(t *testing.T) {
	mine, theirs := llt(clientMAC), llt(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x77})
	f, st := newFull(t, func(f *Full) {
		f.Owns = func(duid []byte) bool { return string(duid) == string(mine.ToBytes()) }
	})
	if res := respond(t, f, plain(dhcpv6.MessageTypeSolicit, mine, nil, 1)); res.Reply == nil || res.Reply.MessageType != dhcpv6.MessageTypeAdvertise {
		t.Fatalf("own client's solicit: %s", res.Reason)
	}
	for _, m := range []*dhcpv6.Message{
		plain(dhcpv6.MessageTypeSolicit, theirs, nil, 1),
		plain(dhcpv6.MessageTypeRebind, theirs, nil, 1, "2001:db8::101"),
		plain(dhcpv6.MessageTypeConfirm, theirs, nil, 1, "2001:db8::101"),
	} {
		if res := respond(t, f, m); res.Reply != nil || res.Ignored != PeerShare {
			t.Fatalf("%s of a peer's client: %v %s", m.MessageType, res.Ignored, res.Reason)
		}
	}
	if ls, _ := st.Find(context.Background(), lease.Filter{}); len(ls) != 0 {
		t.Fatalf("%d leases written", len(ls))
	}
	// A Request naming this server (its Advertise reached the client
	// before the share moved) is answered and binds.
	res := respond(t, f, plain(dhcpv6.MessageTypeRequest, theirs, serverDUID, 1, "2001:db8::101"))
	if res.Reply == nil || res.Reply.MessageType != dhcpv6.MessageTypeReply {
		t.Fatalf("request naming this server: %s", res.Reason)
	}
	if res := respond(t, f, plain(dhcpv6.MessageTypeInformationRequest, theirs, nil, 1)); res.Reply == nil {
		t.Fatalf("information-request: %s", res.Reason)
	}
}

// TestFullSeveralIAs: a Solicit with three IA_NAs (more than Respond
// lists without allocating) gets three back, in order, each its own
// address while the pool (two) lasts; a Request for two binds both.
func TestFullSeveralIAs(t *testing.T) {
	f, _ := newFull(t, nil)
	duid := llt(clientMAC)
	m := plain(dhcpv6.MessageTypeSolicit, duid, nil, 1)
	for _, id := range []byte{2, 3} {
		m.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, id}})
	}
	res := respond(t, f, m)
	if res.Reply == nil {
		t.Fatalf("solicit: %s", res.Reason)
	}
	ias := res.Reply.Options.IANA()
	if len(ias) != 3 {
		t.Fatalf("advertise has %d IA_NAs, want 3", len(ias))
	}
	addrs := map[string]bool{}
	for i, ia := range ias {
		if ia.IaId != [4]byte{0, 0, 0, byte(i + 1)} {
			t.Fatalf("IA %d has IAID %x, want %d", i, ia.IaId, i+1)
		}
		if a := ia.Options.OneAddress(); a != nil {
			addrs[a.IPv6Addr.String()] = true
		} else if i < 2 {
			t.Fatalf("IA %d has no address", i)
		}
	}
	if len(addrs) != 2 {
		t.Fatalf("addresses %v, want two distinct", addrs)
	}
	if st := ias[2].Options.Status(); st == nil || st.StatusCode != iana.StatusNoAddrsAvail {
		t.Fatalf("third IA: status %v, want NoAddrsAvail", st)
	}
	req := plain(dhcpv6.MessageTypeRequest, duid, serverDUID, 1, ias[0].Options.OneAddress().IPv6Addr.String())
	req.AddOption(&dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, 2}, Options: dhcpv6.IdentityOptions{Options: dhcpv6.Options{
		&dhcpv6.OptIAAddress{IPv6Addr: ias[1].Options.OneAddress().IPv6Addr}}}})
	res = respond(t, f, req)
	if res.Reply == nil {
		t.Fatalf("request: %s", res.Reason)
	}
	got := res.Reply.Options.IANA()
	if len(got) != 2 {
		t.Fatalf("reply has %d IA_NAs, want 2", len(got))
	}
	for i, ia := range got {
		a := ia.Options.OneAddress()
		if ia.IaId != ias[i].IaId || a == nil || !a.IPv6Addr.Equal(ias[i].Options.OneAddress().IPv6Addr) || a.ValidLifetime == 0 {
			t.Fatalf("reply IA %d: %v, want IAID %x bound to its advertised address", i, ia, ias[i].IaId)
		}
	}
}
