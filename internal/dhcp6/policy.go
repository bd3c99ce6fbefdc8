// Package dhcp6 answers network boot clients over DHCPv6 (RFC 8415, RFC
// 5970) as a ProxyDHCPv6: beside the network's own DHCPv6 server, never
// handing out an address. The policy (Proxy.Respond) is a pure function
// from request to reply or a typed reason for silence; the Server owns the
// sockets (UDP 547 with ff02::1:2 joined, and 4011 for the boot service),
// each served by a protocol-neutral udploop.Loop.
//
// What EDK II's PXE-over-IPv6 client (NetworkPkg/UefiPxeBcDxe) needs, and
// so what the policy sends:
//   - It classifies each Advertise: one with an IA_NA holding a
//     successful status is an address offer; one without is a proxy
//     offer; vendor class "PXEClient" under enterprise 343 makes it a PXE
//     (BINL) offer. Dhcp6Dxe drops an Advertise whose status (top level or
//     in the IA) is not Success, so a proxy Advertise carries no IA_NA and
//     no status code at all.
//   - It selects the address server's Advertise and then asks a ProxyBinl
//     offer's server for the boot file: a Request carrying the proxy's
//     server ID and its own Solicit's options (no IA), sent from and to UDP
//     port 4011 at the host of the offer's boot file URL. The Reply must
//     carry option 59, tftp://[addr]/file, which it then loads over TFTP.
//     After a DhcpBinl offer (address and boot file from one server: pxed's
//     server role) it asks the same boot service, with no server ID.
//   - Preference: Dhcp6Dxe stops collecting Advertises at once when one
//     carries preference 255, and PxeBcDxe then chooses among those it
//     has; a proxy offer alone is not selectable (no address), so a 255
//     from pxed that arrives before the address server's Advertise ends
//     the exchange with nothing to choose and the boot fails. pxed
//     therefore sends no preference option: the firmware collects for its
//     first retransmission timeout (IRT 4 s in PxeBcDxe, which Dhcp6Dxe
//     counts in whole 1 s ticks: ~4.8 s), about as it waits for offers
//     over IPv4 (3.8 s). No rule lets a proxy know that the address
//     server's Advertise (unicast to the client) has arrived, so none
//     makes a 255 safe.
//
// UEFI HTTP Boot over IPv6 (EDK II's HttpBootDxe: vendor class
// "HTTPClient" under enterprise 343, option 61 = 16 and the other HTTP
// architectures) classifies Advertises the same way: an IA_NA with a
// successful status (or none) makes an address offer; vendor class data
// starting "HTTPClient" (the enterprise number is not compared) and a boot
// file URL make an HTTP offer, and an HTTP offer without an address is a
// proxy offer, "ProxyIpUri" when the URL's host is an address literal. It
// takes a ProxyIpUri offer together with an address offer that carries no
// URL (with or without DNS servers), the proxy's URL then names what it
// downloads: no boot service exchange, no DNS needed. The Advertise to its
// Solicit is thus all it gets from pxed: vendor class HTTPClient and
// http://[addr]:port/… in option 59. Its other messages go to the
// network's server.
//
// iPXE's DHCPv6 (user class "iPXE") takes the first Advertise with an
// address in stateful mode (RA M flag) and then talks only to that server:
// a proxy cannot reach it there. In stateless mode (RA O flag without M)
// it sends an Information-request, answered here with its script URL.
package dhcp6

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"pxed/internal/boot"
	"pxed/internal/lease"
)

// Port is the UDP port a request arrived on.
type Port int

// The ports a ProxyDHCPv6 listens on.
const (
	PortDHCP       Port = 547  // RFC 8415 §7.2
	PortBootServer Port = 4011 // EDK II's boot service request (PXE 2.1 §2.2.5, over IPv6)
)

// Request is one incoming message with what the loop knows about it.
type Request struct {
	Msg  *dhcpv6.Message
	Port Port
	// Server is the address URLs name (a global or ULA address of the
	// receiving interface) and the HTTP port.
	Server boot.Server
	// ServerID is pxed's DUID on the receiving interface.
	ServerID dhcpv6.DUID
	// Src is the message's source; its address may show the MAC (an
	// EUI-64 link-local address) and is learned for TFTP and HTTP.
	Src netip.AddrPort
	// MAC is the client's MAC as the loop learned it from an earlier
	// message of the same DUID, for when this one shows none; nil if
	// unknown.
	MAC net.HardwareAddr
	// Interface is the receiving interface; Link is the link address of
	// the relay on the client's link when the message was relayed (zero
	// otherwise): the server role picks the subnet by them.
	Interface string
	Link      netip.Addr
	// Ctx and Deferred are for the server role's lease operations (see
	// lease.Deferred); a nil Ctx is context.Background.
	Ctx      context.Context
	Deferred *lease.Deferred
}

// Ignore says why a request was not answered.
type Ignore int

// Reasons for silence.
const (
	Answered      Ignore = iota // not ignored: Result.Reply is set
	NotBootClient               // no PXEClient vendor class (enterprise 343), no iPXE user class
	Unsupported                 // a message type a proxy does not answer
	OtherServer                 // names another server's DUID (or, for a Solicit, any server)
	NoClientID                  // a Solicit or Request without a client identifier
	NoMAC                       // neither the DUID nor the source address shows the client's MAC
	StatefulIPXE                // iPXE solicits an address: only the network's DHCPv6 server can answer it
	HTTPBoot                    // a UEFI HTTP Boot message other than a Solicit: its URL comes in the Advertise
	NoPlan                      // the boot decision has nothing for this machine (Plan.Reason)
	NoSubnet                    // server role: no dhcp6 subnet for the client's link
	NoBinding                   // server role: a Rebind or Confirm pxed has nothing to say to
	StoreError                  // server role: the lease store failed: no reply rather than a wrong one
	PeerShare                   // server role in a cluster: a client another live server answers (Full.Owns)
)

func (i Ignore) String() string {
	return [...]string{"answered", "not-boot-client", "unsupported", "other-server", "no-client-id", "no-mac",
		"stateful-ipxe", "http-boot", "no-plan", "no-subnet", "no-binding", "store-error", "peer-share"}[i]
}

// Result is the policy's answer: a reply to send, or why not.
type Result struct {
	Reply   *dhcpv6.Message // nil when ignored
	Ignored Ignore
	Reason  string // why ignored, or what was answered (always set)
	Machine boot.Machine
	Plan    boot.Plan
	URL     string // the boot file URL sent (option 59)
	// Learn is the address the client is known to use, for TFTP and HTTP
	// events (events.Log.Learn): the global source of its request to the
	// boot service, or the address the server role bound. Zero when the
	// message teaches nothing.
	Learn netip.Addr
	// Busy (server role): a lease operation found another of the same
	// client in progress and must not wait on the socket's reader: ask
	// again where waiting is allowed. Nothing else is set.
	Busy bool
	// PoolExhausted (server role): an IA got no address because its
	// subnet has none left.
	PoolExhausted bool
}

// Proxy is the ProxyDHCPv6 policy. It is pure and safe for concurrent use.
type Proxy struct {
	Boot boot.Source // one snapshot per request
}

// Respond answers one request; see the package documentation.
func (p *Proxy) Respond(req Request) Result {
	m := req.Msg
	mt := m.MessageType
	var replyType dhcpv6.MessageType
	switch {
	case req.Port == PortDHCP && mt == dhcpv6.MessageTypeSolicit: // RFC 8415 §18.3.1
		replyType = dhcpv6.MessageTypeAdvertise
	case req.Port == PortDHCP && mt == dhcpv6.MessageTypeInformationRequest: // RFC 8415 §18.3.6
		replyType = dhcpv6.MessageTypeReply
	case req.Port == PortBootServer && mt == dhcpv6.MessageTypeRequest:
		replyType = dhcpv6.MessageTypeReply
	default:
		res := ignore(Unsupported, fmt.Sprintf("%s on port %d: a proxy leaves address exchanges to the network's DHCPv6 server", mt, req.Port))
		if req.Port == PortDHCP {
			res.Machine, res.Learn = learned(req)
		}
		return res
	}
	cid := m.Options.ClientID()
	sid := m.Options.ServerID()
	switch {
	case cid == nil && mt != dhcpv6.MessageTypeInformationRequest:
		return ignore(NoClientID, mt.String()+" without a client identifier") // RFC 8415 §16.2, §16.4
	case mt == dhcpv6.MessageTypeSolicit && sid != nil:
		return ignore(OtherServer, "SOLICIT with a server identifier") // RFC 8415 §16.2
	case mt == dhcpv6.MessageTypeRequest && sid != nil && !sid.Equal(req.ServerID):
		// EDK II names the proxy's DUID when it asks a ProxyBinl
		// offer's server, and no server at all when it asks the server
		// of a DhcpBinl offer (address and boot file from one server,
		// PxeBcRequestBootService): both are this boot service's.
		return ignore(OtherServer, "REQUEST for another server")
	case sid != nil && !sid.Equal(req.ServerID):
		return ignore(OtherServer, mt.String()+" for another server") // RFC 8415 §16.12
	}
	mc := Machine(m, req.Src.Addr())
	if len(mc.MAC) == 0 {
		mc.MAC = req.MAC
	}
	res := Result{Machine: mc}
	switch {
	case mc.Firmware == boot.FirmwareUnknown:
		return res.ignore(NotBootClient, "not a network boot client (no PXEClient vendor class under enterprise 343, no iPXE user class)")
	case mc.Firmware == boot.FirmwareHTTP && mt != dhcpv6.MessageTypeSolicit:
		return res.ignore(HTTPBoot, "UEFI HTTP Boot takes its URL from the Advertise to its Solicit: it asks no boot service")
	case mc.Firmware == boot.FirmwareIPXE && mt == dhcpv6.MessageTypeSolicit:
		// iPXE takes the first Advertise with an address and then hears
		// only that server; an Advertise without one is discarded.
		return res.ignore(StatefulIPXE, "iPXE solicits an address (router advertisement with the M flag): only the network's DHCPv6 server can answer it; pxed answers its Information-request when the router sends the O flag without M")
	case len(mc.MAC) == 0:
		return res.ignore(NoMAC, "no MAC in the client's DUID or source address")
	}
	if !res.decide(p.Boot.Snapshot(), req.Server) {
		return res.ignore(NoPlan, res.Plan.Reason)
	}
	reply := &dhcpv6.Message{MessageType: replyType, TransactionID: m.TransactionID}
	reply.AddOption(dhcpv6.OptServerID(req.ServerID))
	if cid != nil {
		reply.AddOption(dhcpv6.OptClientID(cid))
	}
	res.addBoot(reply)
	res.Reply = reply
	res.Reason = res.Plan.Reason
	if a := req.Src.Addr(); req.Port == PortBootServer && a.IsGlobalUnicast() {
		res.Learn = a.WithZone("")
	}
	return res
}

// learned is the address a boot client's own exchange with the network's
// DHCPv6 server shows it will use: the IA_NA address of its Request,
// Renew, Rebind or Confirm (multicast to every server, RFC 8415 §18.2).
// EDK II sends its Request to the boot service before that address is
// configured (from its link-local address), then loads the NBP from it:
// TFTP events find their machine by this address.
func learned(req Request) (boot.Machine, netip.Addr) {
	m := req.Msg
	switch m.MessageType {
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
	default:
		return boot.Machine{}, netip.Addr{}
	}
	mc := Machine(m, req.Src.Addr())
	if len(mc.MAC) == 0 {
		mc.MAC = req.MAC
	}
	if mc.Firmware == boot.FirmwareUnknown || len(mc.MAC) == 0 {
		return boot.Machine{}, netip.Addr{}
	}
	for _, ia := range m.Options.IANA() {
		for _, a := range ia.Options.Addresses() {
			if ip, ok := netip.AddrFromSlice(a.IPv6Addr); ok && ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() {
				return mc, ip
			}
		}
	}
	return mc, netip.Addr{}
}

// decide asks the boot decision about res.Machine and sets res.Plan and
// res.URL; false when the plan serves nothing over DHCPv6.
func (r *Result) decide(bc *boot.Config, srv boot.Server) bool {
	r.Plan = bc.Decide(r.Machine, srv)
	switch r.Plan.Action {
	case boot.ServeNBP:
		r.URL = boot.TFTPURL(srv, r.Plan.BootFile)
	case boot.ServeScript, boot.ServeURL:
		r.URL = r.Plan.BootFile
	default:
		return false
	}
	return true
}

// addBoot adds the boot options of res.Plan to reply: the vendor class
// PXE and HTTP Boot firmware require and the boot file URL.
func (r *Result) addBoot(reply *dhcpv6.Message) {
	if r.Machine.Firmware == boot.FirmwarePXE || r.Machine.Firmware == boot.FirmwareHTTP {
		// UEFI 2.10 §24.3.1 (PXEClient; EDK II compares the first nine
		// bytes) and §24.7.3 (HTTPClient; the first ten).
		reply.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: EnterprisePXE, Data: [][]byte{[]byte(r.Plan.VendorClass)}})
	}
	reply.AddOption(dhcpv6.OptBootFileURL(r.URL)) // RFC 5970 §3.1
}

func ignore(why Ignore, reason string) Result { return Result{Ignored: why, Reason: reason} }

func (r Result) ignore(why Ignore, reason string) Result {
	r.Ignored, r.Reason = why, reason
	return r
}
