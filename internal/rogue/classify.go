package rogue

import (
	"net"
	"net/netip"
)

// Role is what pxed is on a network for one address family: it decides
// which other servers' replies are expected.
type Role int

// The roles.
const (
	// RoleOff: pxed gives no DHCP answers of this family; nothing is
	// reported.
	RoleOff Role = iota
	// RoleProxy: pxed is ProxyDHCP beside the network's DHCP server, whose
	// address-only replies are expected; replies carrying boot information
	// (a competing PXE or ProxyDHCP server) are reported.
	RoleProxy
	// RoleServer: pxed is the DHCP server; any other server's offer or ack
	// is reported.
	RoleServer
)

// Own is what identifies pxed's host on the wire: its interfaces' MACs and
// addresses. A reply from one of them, or naming one of them as its server,
// is pxed's own.
type Own struct {
	MACs  map[string]bool // net.HardwareAddr.String() form
	Addrs map[netip.Addr]bool
}

// HasMAC reports whether m is one of the host's MACs.
func (o Own) HasMAC(m net.HardwareAddr) bool { return len(m) > 0 && o.MACs[m.String()] }

// HasAddr reports whether a is one of the host's addresses.
func (o Own) HasAddr(a netip.Addr) bool { return a.IsValid() && o.Addrs[a.Unmap()] }

// Kinds of rogue reply.
const (
	KindDHCP      = "dhcp"      // an address, no boot information
	KindDHCPBoot  = "dhcp+pxe"  // an address and boot information
	KindProxyDHCP = "proxydhcp" // boot information only (no address): ProxyDHCP or a PXE boot server
)

// Verdict is Classify's answer: Report, with Kind, or not, with Why.
type Verdict struct {
	Report bool
	Kind   string // KindDHCP, KindDHCPBoot or KindProxyDHCP when Report
	Why    string // why the reply is not reported
}

// Classify decides whether r, a reply seen on one of pxed's networks, comes
// from a rogue server. role is pxed's role for r's family. Pure: no socket,
// no clock.
func Classify(r Reply, own Own, role Role) Verdict {
	switch {
	case role == RoleOff:
		return Verdict{Why: "pxed serves no DHCP of this family here"}
	case own.HasMAC(r.SrcMAC):
		return Verdict{Why: "pxed's own reply (source MAC)"}
	case own.HasAddr(r.Src):
		return Verdict{Why: "pxed's own reply (source address)"}
	case r.Family == 4 && own.HasAddr(r.ServerID):
		// A relay agent on this segment forwarding pxed's reply
		// (RFC 2131 §4.1: option 54 names the server through relays).
		return Verdict{Why: "pxed's own reply, through a relay agent (option 54)"}
	case r.Family == 6 && own.HasMAC(r.ServerHW):
		return Verdict{Why: "pxed's own reply (server DUID)"}
	}
	switch r.Type {
	case "offer", "ack", "bootp", "advertise", "reply":
	default:
		return Verdict{Why: "a " + r.Type + ", not an offer or ack"}
	}
	address := r.YIAddr.IsValid() && !r.YIAddr.IsUnspecified()
	boot := r.PXE()
	var kind string
	switch {
	case address && boot:
		kind = KindDHCPBoot
	case address:
		kind = KindDHCP
	case boot:
		kind = KindProxyDHCP
	default:
		// RFC 2131 §3.4 DHCPINFORM's ack, RFC 8415 Information-request's
		// reply without boot information: no address, no boot.
		return Verdict{Why: "neither an address nor boot information"}
	}
	if role == RoleProxy && kind == KindDHCP {
		return Verdict{Why: "an address-only reply: the network's DHCP server, expected beside pxed's ProxyDHCP"}
	}
	return Verdict{Report: true, Kind: kind}
}
