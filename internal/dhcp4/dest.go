package dhcp4

import (
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Dest is where a reply goes.
type Dest struct {
	Addr netip.AddrPort
	// Link is true when Addr is not yet reachable by ARP (the client has no
	// address): the frame must go to the client's hardware address directly.
	Link bool
	Why  string
}

// Broadcast is the limited broadcast address.
var Broadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// Destination returns where reply to req goes, as RFC 2131 §4.1 says:
//
//   - giaddr set: to the relay agent's server port 67 (and a DHCPNAK sets the
//     broadcast bit so the relay broadcasts it);
//   - a DHCPNAK with no relay: broadcast;
//   - ciaddr set (not in a DHCPDISCOVER, where it must be 0): unicast to ciaddr;
//   - broadcast bit set, or no yiaddr to send to: broadcast;
//   - otherwise unicast to yiaddr at chaddr (the client cannot answer ARP yet).
//
// Replies from the boot server port (PXE 2.1 §2.2.5) go back to the address
// and port the request came from.
func Destination(req, reply *dhcpv4.DHCPv4, port Port, src netip.AddrPort) Dest {
	if port == PortBootServer {
		if src.Addr().IsValid() && !src.Addr().IsUnspecified() {
			return Dest{Addr: src, Why: "boot server reply to the request's source"}
		}
		return Dest{Addr: netip.AddrPortFrom(Broadcast, srcPortOr(src, 68)), Why: "boot server reply, client has no address"}
	}
	nak := reply != nil && reply.MessageType() == dhcpv4.MessageTypeNak
	if gi := AddrFromIP(req.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() {
		if nak && reply != nil {
			reply.SetBroadcast()
		}
		return Dest{Addr: netip.AddrPortFrom(gi, 67), Why: "relayed: to giaddr"}
	}
	if nak {
		return Dest{Addr: netip.AddrPortFrom(Broadcast, 68), Why: "DHCPNAK: broadcast"}
	}
	// RFC 2131 §4.4.1 (Table 5): a DHCPDISCOVER's ciaddr is 0 — a client
	// with an address does not DISCOVER. One that names an address is a
	// claim nobody may answer ARP for: never unicast to it.
	if ci := AddrFromIP(req.ClientIPAddr); ci.IsValid() && !ci.IsUnspecified() && req.MessageType() != dhcpv4.MessageTypeDiscover {
		return Dest{Addr: netip.AddrPortFrom(ci, 68), Why: "client has an address: unicast to ciaddr"}
	}
	yi := netip.Addr{}
	if reply != nil {
		yi = AddrFromIP(reply.YourIPAddr)
	}
	if req.IsBroadcast() || !yi.IsValid() || yi.IsUnspecified() {
		return Dest{Addr: netip.AddrPortFrom(Broadcast, 68), Why: "broadcast bit set or no yiaddr: broadcast"}
	}
	return Dest{Addr: netip.AddrPortFrom(yi, 68), Link: true, Why: "unicast to yiaddr at chaddr"}
}

func srcPortOr(src netip.AddrPort, def uint16) uint16 {
	if src.Port() != 0 {
		return src.Port()
	}
	return def
}
