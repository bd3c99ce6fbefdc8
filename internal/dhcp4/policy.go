// Package dhcp4 answers network boot clients over DHCPv4: the ProxyDHCP
// policy (port 67) and the PXE boot server (port 4011) as pure functions from
// request to reply, the RFC 2131 §4.1 reply destination, and the Server that
// owns the sockets, one per interface and port, each served by a
// protocol-neutral udploop.Loop with the DHCPv4 decoding, destinations,
// counts and events plugged in.
package dhcp4

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/lease"
	"pxed/internal/pxe"
)

// Option codes the codec has no names for.
const (
	optClientUUID  = 97  // RFC 4578 §2.3
	optIPXEEncaps  = 175 // iPXE encapsulated options
	optUserClass   = 77  // RFC 3004
	optClientArch  = 93  // RFC 4578 §2.1
	optPXEVendor   = 43
	optVendorClass = 60
)

// Port is the UDP port a request arrived on.
type Port int

// The two ports a PXE server listens on.
const (
	PortDHCP       Port = 67   // DHCP and ProxyDHCP (RFC 2131, PXE 2.1 §2.2.3)
	PortBootServer Port = 4011 // PXE boot server discovery (PXE 2.1 §2.2.5)
)

// Request is one incoming packet with what the loop knows about it.
type Request struct {
	Packet *dhcpv4.DHCPv4
	Port   Port
	Server boot.Server // the address of the receiving interface and the HTTP port
	// Ctx bounds the work a stateful policy (Full) does for this request:
	// lease store writes and address probes. nil means context.Background.
	Ctx context.Context
	// Deferred, when set, says the policy must not wait (the socket's
	// reader asks): a stateful policy makes its lease writes under it
	// without waiting for them to be durable, and answers Result.Busy
	// rather than wait for another packet of the same client. The loop
	// then sends the reply only once Deferred is durable. nil: the policy
	// may wait (a worker, a test).
	Deferred *lease.Deferred
	// Src is the packet's source address and port, Dst its destination
	// address (IP_PKTINFO); zero when unknown (a test), which skips the
	// checks and the learning that need them.
	Src netip.AddrPort
	Dst netip.Addr
}

// context returns the request's context, never nil.
func (r Request) context() context.Context {
	if r.Ctx == nil {
		return context.Background()
	}
	return r.Ctx
}

// Result is the policy's answer: a reply to send or the reason for silence.
type Result struct {
	Reply   *dhcpv4.DHCPv4 // nil when ignored
	Reason  string         // why ignored, or what was answered
	Machine boot.Machine
	Plan    boot.Plan
	// Busy says the policy could not answer without waiting (given
	// Request.Deferred, another packet of the same client is being handled,
	// e.g. its DISCOVER's address probe): the loop hands the packet to a
	// worker, which may wait.
	Busy bool
	// Learn is the address the client is known to use, for the loop to
	// remember for TFTP and HTTP (events.Log.Learn): the yiaddr of a
	// DHCPACK the server sends (Full), or what a PXE client's own DHCP
	// exchange shows (Proxy, see learned). Zero when the packet teaches
	// nothing, as any packet of a client not recognised as PXE.
	Learn netip.Addr

	// Anomalies on the boot network (issue 13); the loop counts them,
	// records them and logs them at warn level at most once per interval.

	// PoolExhausted: a DHCPDISCOVER got no address, its pool is empty.
	PoolExhausted bool
	// PeerShare: the client belongs to another live server of the
	// cluster (Full.Owns, RFC 3074 load balancing); not answered, counted,
	// not an event (the peer answers it).
	PeerShare bool
	// Starvation: a DHCPDISCOVER of a new client past Full.StarvationClients
	// in one window (still answered while addresses last).
	Starvation bool
	// Foreign: a DHCPDECLINE or DHCPRELEASE naming an address another
	// client holds, or a DHCPRELEASE not sent from the address it
	// releases; it changed nothing.
	Foreign bool
}

// Machine extracts what a client says about itself from its packet.
func Machine(p *dhcpv4.DHCPv4) boot.Machine {
	m := boot.Machine{MAC: p.ClientHWAddr}
	vc, isBoot := pxe.ParseVendorClass(p.ClassIdentifier())
	if b := p.Options.Get(dhcpv4.GenericOptionCode(optClientArch)); len(b) >= 2 {
		m.Arch, m.HasArch = uint16(b[0])<<8|uint16(b[1]), true
	} else if vc.HasArch {
		m.Arch, m.HasArch = uint16(vc.Arch), true
	}
	if m.HasArch {
		m.Class = string(pxe.Arch(m.Arch).Class())
	}
	if b := p.Options.Get(dhcpv4.GenericOptionCode(optClientUUID)); len(b) == 17 && b[0] == 0 {
		m.UUID = hex.EncodeToString(b[1:])
	}
	switch {
	case isIPXE(p):
		m.Firmware = boot.FirmwareIPXE
	case isBoot && vc.Kind == pxe.HTTPClient:
		m.Firmware = boot.FirmwareHTTP
	case isBoot:
		m.Firmware = boot.FirmwarePXE
	}
	return m
}

// isIPXE reports whether p comes from iPXE: user class "iPXE" (RFC 3004
// encoding or the plain string older iPXE sends) or iPXE's option 175.
func isIPXE(p *dhcpv4.DHCPv4) bool {
	if p.Options.Has(dhcpv4.GenericOptionCode(optIPXEEncaps)) {
		return true
	}
	b := p.Options.Get(dhcpv4.GenericOptionCode(optUserClass))
	if len(b) == 0 {
		return false
	}
	if string(b) == "iPXE" {
		return true
	}
	for len(b) > 0 { // RFC 3004: len, data, len, data…
		n := int(b[0])
		if 1+n > len(b) {
			return false
		}
		if string(b[1:1+n]) == "iPXE" {
			return true
		}
		b = b[1+n:]
	}
	return false
}

// Validate checks the fixed header of a BOOTREQUEST: the things a reply
// depends on. It returns a reason for dropping the packet, or "".
func Validate(p *dhcpv4.DHCPv4) string {
	switch {
	case p.OpCode != dhcpv4.OpcodeBootRequest:
		return "not a BOOTREQUEST"
	case p.HWType != 1 || len(p.ClientHWAddr) != 6:
		return fmt.Sprintf("hardware type %d length %d (only Ethernet is booted)", p.HWType, len(p.ClientHWAddr))
	case isZeroOrBroadcast(p.ClientHWAddr):
		return "zero or broadcast chaddr"
	}
	return ""
}

func isZeroOrBroadcast(mac net.HardwareAddr) bool {
	zero, bcast := true, true
	for _, b := range mac {
		zero = zero && b == 0
		bcast = bcast && b == 0xff
	}
	return zero || bcast
}

// Proxy is the ProxyDHCP and PXE boot server policy (PXE 2.1 §2.2.3–2.2.5):
// it answers PXE clients only, never hands out addresses, and gives each the
// boot file its firmware needs.
type Proxy struct {
	Boot boot.Source // one snapshot per request
	// MTFTP, when set, offers boot files by PXE MTFTP to BIOS PXE ROMs
	// (mtftp.go); nil: no option 43 sub-options 1–5.
	MTFTP MTFTPTable
	// BootServerOnly answers boot server discovery only (PXE 2.1 §2.2.5:
	// requests on port 4011, unicast or multicast, and DHCPREQUESTs
	// with sub-option 71 broadcast to port 67) and sends no ProxyDHCP
	// offers or acks on port 67: another server on the segment offers
	// the menu that names this one as the boot server of some items
	// (dhcp.mode boot-server).
	BootServerOnly bool
}

// Quick implements Quicker: ProxyDHCP answers from memory only.
func (*Proxy) Quick(*dhcpv4.DHCPv4) bool { return true }

// Respond answers one request. It is pure: the same request and config give
// the same result.
func (px *Proxy) Respond(req Request) Result {
	p := req.Packet
	if why := Validate(p); why != "" {
		return Result{Reason: why}
	}
	m := Machine(p)
	res := Result{Machine: m, Learn: learned(req, m)}
	mt := p.MessageType()
	bsReq, bsErr := bootRequest(req)
	switch {
	case bsErr != nil:
		res.Reason = bsErr.Error()
		return res
	case px.BootServerOnly && req.Port == PortDHCP && bsReq == nil:
		res.Reason = fmt.Sprintf("%s on port 67: a boot server only (dhcp mode boot-server) sends no ProxyDHCP answers", mt)
		return res
	case req.Port == PortDHCP && mt == dhcpv4.MessageTypeDiscover:
	case req.Port == PortDHCP && bsReq != nil:
		// Boot server discovery by broadcast (PXE 2.1 §2.2.5).
	case req.Port == PortDHCP && mt == dhcpv4.MessageTypeRequest:
		// A client in SELECTING sends its REQUEST to the DHCP server that
		// gave the address; ProxyDHCP stays silent (PXE 2.1 §2.2.3 step 3).
		res.Reason = "DHCPREQUEST on port 67 is for the address server"
		return res
	case req.Port == PortBootServer && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
	default:
		res.Reason = fmt.Sprintf("%s on port %d is not answered by ProxyDHCP", mt, req.Port)
		return res
	}
	if m.Firmware == boot.FirmwareUnknown {
		res.Reason = "not a PXE client (no option 60 PXEClient/HTTPClient)"
		return res
	}
	plan := px.Boot.Snapshot().DecideMenu(m, req.Server, bsReq)
	res.Plan = plan
	if plan.Action == boot.Ignore {
		res.Reason = plan.Reason
		return res
	}
	reply, err := dhcpv4.NewReplyFromRequest(p)
	if err != nil {
		res.Reason = fmt.Sprintf("building reply: %v", err)
		return res
	}
	reply.YourIPAddr = net.IPv4zero // ProxyDHCP never assigns an address
	reply.ClientIPAddr = p.ClientIPAddr
	reply.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(req.Server.IP.AsSlice())))
	if mt == dhcpv4.MessageTypeDiscover {
		reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeOffer))
	} else {
		reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck))
	}
	if err := setBootInfo(reply, p, m, plan, req); err != nil {
		res.Reason = err.Error()
		return res
	}
	if err := addMTFTP(reply, p, m, plan, px.MTFTP); err != nil {
		res.Reason = err.Error()
		return res
	}
	res.Reply = reply
	res.Reason = plan.Reason
	return res
}

// learned is the address a ProxyDHCP server may take a packet's sender to
// use: nothing for a client not recognised as PXE, iPXE or HTTP boot;
// for one that is, the address its DHCPREQUEST to the address server asks
// for (option 50, else ciaddr when renewing), or the source address of a
// request it unicast to the boot server port (it has its address by then,
// PXE 2.1 §2.2.5). A DISCOVER teaches nothing.
func learned(req Request, m boot.Machine) netip.Addr {
	if m.Firmware == boot.FirmwareUnknown {
		return netip.Addr{}
	}
	p := req.Packet
	var a netip.Addr
	switch {
	case req.Port == PortDHCP && p.MessageType() == dhcpv4.MessageTypeRequest:
		if a = reqAddr(p); !a.IsValid() || a.IsUnspecified() {
			a = AddrFromIP(p.ClientIPAddr)
		}
	case req.Port == PortBootServer && req.Dst.IsValid() && req.Dst == req.Server.IP:
		a = req.Src.Addr()
	}
	if !hostAddr(a) {
		return netip.Addr{}
	}
	return a
}

// hostAddr reports whether a can be one host's IPv4 address: not zero,
// broadcast, multicast or loopback.
func hostAddr(a netip.Addr) bool {
	return a.Is4() && !a.IsUnspecified() && a != Broadcast && !a.IsMulticast() && !a.IsLoopback()
}

// setBootInfo puts the boot information of plan into reply, as both the
// Proxy and the Full policy send it: siaddr and sname (the TFTP server,
// this interface), option 60 (PXEClient or HTTPClient), the client's UUID
// (option 97) echoed, the boot file (file field and option 67) and option
// 43 as vendorOptions decides.
func setBootInfo(reply, p *dhcpv4.DHCPv4, m boot.Machine, plan boot.Plan, req Request) error {
	reply.ServerIPAddr = net.IP(req.Server.IP.AsSlice()) // siaddr: next server (TFTP)
	reply.ServerHostName = req.Server.IP.String()
	reply.UpdateOption(dhcpv4.OptClassIdentifier(plan.VendorClass))
	if uuid := p.Options.Get(dhcpv4.GenericOptionCode(optClientUUID)); uuid != nil {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optClientUUID), uuid))
	}
	setBootFile(reply, plan.BootFile)
	if vo, ok := vendorOptions(m, req, plan); ok {
		b, err := vo.Marshal()
		if err != nil {
			return fmt.Errorf("encoding option 43: %w", err)
		}
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optPXEVendor), b))
	}
	return nil
}

// vendorOptions encodes option 43 of a reply from plan.
//
// A plan with a boot menu gets the menu, its prompt, discovery control and
// boot servers (offers and ProxyDHCP requests); the answer to a boot
// server request echoes the item and layer asked for (sub-option 71). The
// rest is as before menus: legacy BIOS PXE ROMs and iPXE get discovery
// control "use the boot file" (PXE 2.1 §2.4 bit 3): they load the file
// from this offer with no menu, no prompt and no discovery. UEFI PXE (EDK
// II) gets no option 43 at all: the offer is then a ProxyBinl offer (see
// pxe.Classify) and the firmware asks this server on port 4011 for its
// boot file, which every UEFI firmware supports, where some ignore proxy
// offers that bypass discovery.
func vendorOptions(m boot.Machine, req Request, plan boot.Plan) (pxe.VendorOptions, bool) {
	if mp := plan.Menu; mp != nil {
		if mp.Chosen != nil {
			return pxe.VendorOptions{BootItem: &pxe.BootItem{Type: mp.Chosen.Type, Layer: mp.Chosen.Layer}}, true
		}
		return menuOptions(mp), true
	}
	if req.Port == PortBootServer {
		return pxe.VendorOptions{}, false
	}
	if m.Firmware == boot.FirmwareHTTP || (m.Firmware == boot.FirmwarePXE && m.Class != string(pxe.ClassBIOS)) {
		return pxe.VendorOptions{}, false
	}
	return pxe.VendorOptions{DiscoveryControl: pxe.DiscoveryUseBootFile, HasDiscovery: true}, true
}

// menuOptions is option 43 of an offer with a boot menu (PXE 2.1 table
// 2-1: sub-options 6–10); for iPXE's own discovery of one item's boot
// servers (a plan without items), sub-options 6 and 8 only.
func menuOptions(mp *boot.MenuPlan) pxe.VendorOptions {
	v := pxe.VendorOptions{
		DiscoveryControl: pxe.Discovery(mp.NoBroadcast, mp.NoMulticast, mp.ListOnly, false), HasDiscovery: true,
		McastAddr: mp.MulticastAddr,
		Prompt:    mp.Prompt, PromptTimeout: mp.Timeout, HasPrompt: len(mp.Items) > 0,
	}
	for _, it := range mp.Items {
		v.Menu = append(v.Menu, pxe.MenuItem{Type: it.Type, Desc: it.Desc})
	}
	for _, bs := range mp.Servers {
		v.BootServers = append(v.BootServers, pxe.BootServer{Type: bs.Type, Addrs: bs.Addrs})
	}
	return v
}

// bootRequest is the boot item a boot server discovery request asks for
// (option 43 sub-option 71, PXE 2.1 §2.2.5): a DHCPREQUEST or DHCPINFORM
// on port 4011 (unicast or multicast discovery), or a DHCPREQUEST from a
// client with an address (ciaddr) on port 67 (broadcast discovery). nil
// for any other request; an error for a malformed sub-option 71, which is
// not answered.
func bootRequest(req Request) (*boot.BootRequest, error) {
	p := req.Packet
	mt := p.MessageType()
	switch {
	case req.Port == PortBootServer && (mt == dhcpv4.MessageTypeRequest || mt == dhcpv4.MessageTypeInform):
	case req.Port == PortDHCP && mt == dhcpv4.MessageTypeRequest && hostAddr(AddrFromIP(p.ClientIPAddr)):
	default:
		return nil, nil
	}
	bi, err := pxe.ParseBootItem(p.Options.Get(dhcpv4.GenericOptionCode(optPXEVendor)))
	if errors.Is(err, pxe.ErrNoBootItem) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("boot server request with a malformed boot item: %w", err)
	}
	return &boot.BootRequest{Type: bi.Type, Layer: bi.Layer}, nil
}

// IsBootServerRequest reports whether p, received on port, is a boot
// server discovery request (well-formed or not), which the boot server
// answers rather than the address server.
func IsBootServerRequest(p *dhcpv4.DHCPv4, port Port) bool {
	r, err := bootRequest(Request{Packet: p, Port: port})
	return r != nil || err != nil
}

// setBootFile puts name in the file field when it fits (128 bytes with a NUL)
// and always in option 67, which clients prefer when present.
func setBootFile(reply *dhcpv4.DHCPv4, name string) {
	if len(name) < 128 {
		reply.BootFileName = name
	}
	reply.UpdateOption(dhcpv4.OptBootFileName(name))
}

// Describe summarises a request for logs: message type, MAC, firmware, arch.
func Describe(p *dhcpv4.DHCPv4) string {
	m := Machine(p)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s from %s firmware=%s", p.MessageType(), p.ClientHWAddr, m.Firmware)
	if m.HasArch {
		fmt.Fprintf(&sb, " arch=%s", pxe.Arch(m.Arch))
	}
	return sb.String()
}

// AddrFromIP converts a 4-byte or 16-byte net.IP to netip.Addr (unmapped);
// the zero Addr for nil or invalid input.
func AddrFromIP(ip net.IP) netip.Addr {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}
	}
	return a.Unmap()
}
