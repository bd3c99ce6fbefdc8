package dhcp4

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/lease"
)

// bootpRequest is a BOOTREQUEST as a BOOTP client sends it: no option 53,
// a 64-byte vendor area with the RFC 1497 cookie and nothing else.
func bootpRequest(t *testing.T, mac net.HardwareAddr) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.New(dhcpv4.WithHwAddr(mac))
	if err != nil {
		t.Fatal(err)
	}
	p.Options = dhcpv4.Options{}
	b := p.ToBytes()
	if len(b) != 300 {
		t.Fatalf("BOOTREQUEST of %d bytes", len(b))
	}
	q, err := dhcpv4.FromBytes(b)
	if err != nil || q.MessageType() != dhcpv4.MessageTypeNone {
		t.Fatalf("not a BOOTP request: %v %v", q, err)
	}
	return q
}

func TestBOOTP(t *testing.T) {
	fx := newFullFixture(t, true)
	// A reserved client: its address for ever, siaddr and the BIOS boot
	// file, in a reply no longer than a BOOTP message.
	res := fx.respond(t, bootpRequest(t, macRes))
	r := res.Reply
	if r == nil {
		t.Fatalf("no BOOTREPLY: %s", res.Reason)
	}
	if r.OpCode != dhcpv4.OpcodeBootReply || r.MessageType() != dhcpv4.MessageTypeNone || r.YourIPAddr.String() != "192.0.2.50" {
		t.Fatalf("reply %v type %v yiaddr %v", r.OpCode, r.MessageType(), r.YourIPAddr)
	}
	if r.ServerIPAddr.String() != "192.0.2.1" || r.BootFileName != "undionly.kpxe" {
		t.Errorf("siaddr %v file %q, want 192.0.2.1 and undionly.kpxe", r.ServerIPAddr, r.BootFileName)
	}
	if n := len(r.ToBytes()); n > bootpSize {
		t.Errorf("reply of %d bytes, more than a BOOTP message", n)
	}
	if r.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || r.Options.Has(dhcpv4.OptionServerIdentifier) {
		t.Errorf("DHCP options in a BOOTREPLY: %v", r.Options)
	}
	if m := r.SubnetMask(); m == nil || net.IP(m).String() != "255.255.255.0" {
		t.Errorf("subnet mask %v", m)
	}
	l := fx.lease(t, "192.0.2.50")
	if l.State != lease.Bound || l.Expires.Before(fx.now.Add(50*365*24*time.Hour)) {
		t.Errorf("stored lease %+v, want bound for ever", l)
	}
	// Asked again, the same address (a BOOTP client asks at every boot).
	if res := fx.respond(t, bootpRequest(t, macRes)); res.Reply == nil || res.Reply.YourIPAddr.String() != "192.0.2.50" {
		t.Fatalf("second BOOTREQUEST: %v", res.Reason)
	}
	// Unreserved clients: silence unless the subnet is bootp_dynamic.
	if res := fx.respond(t, bootpRequest(t, macA)); res.Reply != nil || !strings.Contains(res.Reason, "bootp_dynamic") {
		t.Fatalf("unreserved client answered: %v", res.Reason)
	}
	fx.full.Subnets[0].BOOTPDynamic = true
	res = fx.respond(t, bootpRequest(t, macA))
	if res.Reply == nil || res.Reply.YourIPAddr.String() != "192.0.2.100" {
		t.Fatalf("bootp_dynamic: %v", res.Reason)
	}
	if l := fx.lease(t, "192.0.2.100"); l.State != lease.Bound || l.Key != lease.MACKey(macA) {
		t.Errorf("dynamic BOOTP lease %+v", l)
	}
	// A DHCP client cannot take an address a BOOTP client holds.
	off := fx.respond(t, msg(t, dhcpv4.MessageTypeDiscover, macB))
	if off.Reply == nil || off.Reply.YourIPAddr.String() == "192.0.2.100" || off.Reply.YourIPAddr.String() == "192.0.2.50" {
		t.Fatalf("DHCP client offered a BOOTP client's address: %v", off.Reason)
	}
}

// A BOOTREPLY that does not fit drops the least needed options first:
// extra options, then the domain, DNS, hostname, router; the subnet mask
// goes last.
func TestFitBOOTP(t *testing.T) {
	r := newReply(bootpRequest(t, macA))
	r.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(24, 32)))
	r.UpdateOption(dhcpv4.OptRouter(ip4("192.0.2.1")))
	r.UpdateOption(dhcpv4.OptDNS(ip4("192.0.2.53")))
	r.UpdateOption(dhcpv4.OptDomainName(strings.Repeat("d", 40)))
	r.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(252), []byte(strings.Repeat("x", 30))))
	fitBOOTP(r)
	if n := len(r.ToBytes()); n > bootpSize {
		t.Fatalf("%d bytes after fitBOOTP", n)
	}
	for _, c := range []dhcpv4.OptionCode{dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer} {
		if !r.Options.Has(c) {
			t.Errorf("option %v dropped, want it kept (%v)", c, r.Options)
		}
	}
	if r.Options.Has(dhcpv4.GenericOptionCode(252)) {
		t.Errorf("extra option 252 kept while the reply did not fit")
	}
}
