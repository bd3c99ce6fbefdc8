package dhcp4

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/lease"
)

// Option is one DHCP option to send: its code and encoded value.
type Option struct {
	Code  uint8
	Value []byte
}

// Subnet is one network the Full policy leases addresses on, with the
// options its clients get (RFC 2132).
type Subnet struct {
	// Leases allocates the subnet's addresses; required. Its Subnet()
	// gives the prefix, the server identifier and the lease time.
	Leases *lease.Manager
	Router []netip.Addr // option 3
	DNS    []netip.Addr // option 6
	Domain string       // option 15
	MTU    uint16       // option 26; 0 sends none
	NTP    []netip.Addr // option 42
	// Options are extra options by number, sent after (and replacing) the
	// ones above.
	Options []Option
	// HostOptions are per-reservation options, by reserved address,
	// sent after (and replacing) Options.
	HostOptions map[netip.Addr][]Option
	// BOOTPDynamic gives BOOTP clients without a reservation an address
	// from the ranges, for ever (as dnsmasq's bootp-dynamic); otherwise
	// only reserved BOOTP clients are answered.
	BOOTPDynamic bool
}

// prefix is the subnet's network.
func (s *Subnet) prefix() netip.Prefix { return s.Leases.Subnet().Prefix }

// Full is the full DHCP server policy (RFC 2131): it leases addresses from
// its subnets and gives PXE clients their boot information in the same
// replies, exactly as Proxy builds it. Port 4011 requests are answered as
// Proxy answers them. Respond is safe for concurrent use; it is pure but
// for the lease Managers it calls and the count of new clients it keeps
// for the starvation check; do not copy a Full once used.
type Full struct {
	Subnets []*Subnet
	Boot    boot.Source // one snapshot per request
	// Authoritative makes the server NAK a DHCPREQUEST that matches no
	// subnet (RFC 2131 §4.3.2); otherwise it stays silent. Requests inside
	// a subnet follow that subnet Manager's own setting.
	Authoritative bool
	// DeferredWrites says the Managers' store defers durable writes under
	// a lease.Deferred (lease.Cached over a lease.AsyncStore), so that no
	// lease operation given Request.Deferred waits for the disk. The socket loop then answers
	// REQUEST, DECLINE, RELEASE and INFORM on its reader, and DISCOVERs too
	// unless a Manager probes addresses; it sends a reply that announces a
	// lease write only once that write is durable, and hands a packet of a
	// client whose DISCOVER is being probed to a worker (Result.Busy).
	DeferredWrites bool
	// StarvationClients is how many new clients (client IDs their
	// subnet's Manager does not know: no reservation, offer or lease row)
	// may send a DHCPDISCOVER within one StarvationWindow before the next
	// ones are marked Result.Starvation, a sign of a starvation flood that
	// would drain the pools; 0 means DefaultStarvationClients, negative
	// turns the check off. It counts across subnets. Marked clients are
	// still answered while addresses last, and known clients are never
	// counted: their leases and renewals go on as usual.
	StarvationClients int
	// StarvationWindow is the window StarvationClients counts in; 0 means
	// DefaultStarvationWindow.
	StarvationWindow time.Duration
	// MTFTP, when set, offers boot files by PXE MTFTP to BIOS PXE ROMs
	// (mtftp.go).
	MTFTP MTFTPTable
	// Owns, when set, says whether this server answers a client in a
	// cluster of servers sharing one lease database (internal/cluster):
	// key is the client's RFC 3074 load-balancing key (client identifier,
	// else chaddr). DISCOVERs and the REQUESTs any server may get
	// (INIT-REBOOT, REBINDING: no server identifier, broadcast or relayed)
	// of clients it does not own are left to their owner. nil owns all.
	Owns func(key []byte) bool
	// PeerGone, when set, says whether a server identifier is a cluster
	// peer's that is no longer live: a client of this server's share that
	// still requests that peer's offer gets a DHCPNAK and starts over (RFC
	// 2131 §4.3.2 lets a server NAK a request it cannot satisfy; silence
	// would leave the client retransmitting for a minute).
	PeerGone func(serverID netip.Addr) bool
	// Now is the clock of the starvation window; nil means time.Now.
	Now func() time.Time

	newClients windowCount
}

// LoadBalanceKey is the key RFC 3074 hashes to pick the server of a
// client: its client identifier (option 61) when it sent one, else chaddr.
func LoadBalanceKey(p *dhcpv4.DHCPv4) []byte {
	if id := p.Options.Get(dhcpv4.OptionClientIdentifier); len(id) > 0 {
		return id
	}
	return p.ClientHWAddr
}

// shared reports whether req is a message every server of a cluster may
// receive, so that only the client's owner answers it: a DISCOVER, or a
// REQUEST without a server identifier that is not a unicast renewal
// (INIT-REBOOT has no ciaddr; REBINDING is broadcast; a relay forwards
// both to every server).
func (f *Full) shared(req Request) bool {
	p := req.Packet
	switch p.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		return true
	case dhcpv4.MessageTypeRequest:
		if p.ServerIdentifier() != nil {
			return false // SELECTING: it names its server
		}
		set := func(ip net.IP) bool { a := AddrFromIP(ip); return a.IsValid() && !a.IsUnspecified() }
		return !set(p.ClientIPAddr) || set(p.GatewayIPAddr) || req.Dst == Broadcast || !req.Dst.IsValid()
	}
	return false
}

// Quick implements Quicker: with DeferredWrites, every packet but the
// DISCOVERs of a server whose Managers probe (a probe waits).
func (f *Full) Quick(p *dhcpv4.DHCPv4) bool {
	if !f.DeferredWrites {
		return false
	}
	if mt := p.MessageType(); mt != dhcpv4.MessageTypeDiscover && mt != dhcpv4.MessageTypeNone {
		return true // a DISCOVER's or BOOTP request's Offer may probe
	}
	for _, sn := range f.Subnets {
		if sn.Leases.Probes() {
			return false
		}
	}
	return true
}

// Option codes of RFC 2132 the Full policy sets by number.
const (
	optSubnetMask  = 1
	optRouter      = 3
	optDNS         = 6
	optHostname    = 12
	optDomain      = 15
	optMTU         = 26
	optNTP         = 42
	optLeaseTime   = 51
	optMsgType     = 53
	optServerID    = 54
	optParamList   = 55
	optMessage     = 56
	optMaxSize     = 57
	optRenewal     = 58
	optRebinding   = 59
	optClientID    = 61
	optBootFile    = 67
	optRelayAgent  = 82
	minMessageSize = 576 // RFC 2131 §2: every client accepts this
	ipUDPHeaders   = 28  // option 57 counts the IP and UDP headers
)

// Respond answers one request; see Full.
func (f *Full) Respond(req Request) Result {
	p := req.Packet
	if why := Validate(p); why != "" {
		return Result{Reason: why}
	}
	if req.Port == PortBootServer || IsBootServerRequest(p, req.Port) {
		res := (&Proxy{Boot: f.Boot}).Respond(req)
		res.Learn = netip.Addr{} // a full server knows its clients by the leases it acknowledged
		return res
	}
	m := Machine(p)
	res := Result{Machine: m}
	sn := f.subnetFor(req)
	mt := p.MessageType()
	if sn == nil {
		if mt == dhcpv4.MessageTypeRequest && f.Authoritative {
			res.Reply, res.Reason = f.nak(req, netip.Addr{}, "no subnet for this client's network"), "nak: no subnet for this network (authoritative)"
			return res
		}
		res.Reason = fmt.Sprintf("%s: no subnet configured for this network", mt)
		return res
	}
	if f.Owns != nil && f.shared(req) && !f.Owns(LoadBalanceKey(p)) {
		res.PeerShare = true
		res.Reason = fmt.Sprintf("%s: a peer server's client (load balancing)", mt)
		return res
	}
	if sid := AddrFromIP(p.ServerIdentifier()); mt == dhcpv4.MessageTypeRequest && f.PeerGone != nil && sid.IsValid() &&
		sid != serverID(sn, req) && f.PeerGone(sid) && (f.Owns == nil || f.Owns(LoadBalanceKey(p))) {
		return f.adopt(req, sn, res, sid)
	}
	ctx := req.context()
	key := lease.NewClientKey(p.Options.Get(dhcpv4.OptionClientIdentifier), byte(p.HWType), p.ClientHWAddr)
	hostname := string(p.Options.Get(dhcpv4.OptionHostName))
	switch mt {
	case dhcpv4.MessageTypeDiscover: // RFC 2131 §4.3.1
		isNew := f.isNew(ctx, sn, key, p.ClientHWAddr)
		l, err := sn.Leases.Offer(ctx, req.Deferred, lease.OfferRequest{Key: key, MAC: p.ClientHWAddr, Hostname: hostname, Requested: reqAddr(p)})
		if errors.Is(err, lease.ErrBusy) {
			return busy(res) // counted when a worker asks again
		}
		if isNew {
			res.Starvation = f.countNew()
		}
		if err != nil {
			if errors.Is(err, lease.ErrExhausted) {
				res.PoolExhausted = true
				res.Reason = fmt.Sprintf("no address to offer: pool %v exhausted", sn.prefix())
			} else {
				res.Reason = fmt.Sprintf("offer failed: %v", err)
			}
			return res
		}
		return f.lease(req, sn, &res, dhcpv4.MessageTypeOffer, l)
	case dhcpv4.MessageTypeRequest: // RFC 2131 §4.3.2
		d, l, err := sn.Leases.Request(ctx, req.Deferred, lease.RequestRequest{
			Key: key, MAC: p.ClientHWAddr, Hostname: hostname,
			ServerID: AddrFromIP(p.ServerIdentifier()), Requested: reqAddr(p),
			CIAddr: AddrFromIP(p.ClientIPAddr), Broadcast: p.IsBroadcast(),
		})
		switch {
		case errors.Is(err, lease.ErrBusy):
			return busy(res)
		case err != nil:
			res.Reason = fmt.Sprintf("request failed: %v", err)
			return res
		case d.Action == lease.Ack:
			res.Reason = d.Reason
			return f.lease(req, sn, &res, dhcpv4.MessageTypeAck, l)
		case d.Action == lease.Nak:
			res.Reply, res.Reason = f.nak(req, serverID(sn, req), d.Reason), "nak: "+d.Reason
			return res
		default:
			res.Reason = d.Reason
			return res
		}
	case dhcpv4.MessageTypeDecline: // RFC 2131 §4.3.3
		// Only the holder of an address may decline it (lease.Manager
		// refuses others): a foreign DECLINE quarantines nobody's lease.
		addr := reqAddr(p)
		switch err := sn.Leases.Decline(ctx, req.Deferred, key, addr); {
		case errors.Is(err, lease.ErrBusy):
			return busy(res)
		case errors.Is(err, lease.ErrForeign):
			res.Foreign = true
			res.Reason = fmt.Sprintf("decline: foreign: %v is held by another client", addr)
		case err != nil:
			res.Reason = fmt.Sprintf("decline: %v", err)
		default:
			res.Reason = fmt.Sprintf("decline: %v quarantined", addr)
		}
		return res
	case dhcpv4.MessageTypeRelease: // RFC 2131 §4.3.4
		addr := AddrFromIP(p.ClientIPAddr)
		if from, ok := releasedFrom(req, addr); !ok {
			res.Foreign = true
			res.Reason = fmt.Sprintf("release: foreign: %v released from %v, not from that address", addr, from)
			return res
		}
		switch err := sn.Leases.Release(ctx, req.Deferred, key, addr); {
		case errors.Is(err, lease.ErrBusy):
			return busy(res)
		case errors.Is(err, lease.ErrForeign):
			res.Foreign = true
			res.Reason = fmt.Sprintf("release: foreign: %v is held by another client", addr)
		case err != nil:
			res.Reason = fmt.Sprintf("release: %v", err)
		default:
			res.Reason = fmt.Sprintf("release: %v released", addr)
		}
		return res
	case dhcpv4.MessageTypeInform: // RFC 2131 §4.3.5
		return f.inform(req, sn, &res)
	case dhcpv4.MessageTypeNone: // BOOTP: no option 53 (RFC 1534 §2)
		return f.bootp(req, sn, &res, key)
	default:
		res.Reason = fmt.Sprintf("%s is not answered by a DHCP server", mt)
		return res
	}
}

// releasedFrom checks where a DHCPRELEASE of addr (its ciaddr) came from.
// RFC 2131 §4.4.6: the client unicasts it to the server from the address
// it releases, so one from another source is not the holder's and must
// not end the lease; one a relay agent forwards comes from giaddr. With
// no source known (a test) or no ciaddr (nothing to release) it passes.
func releasedFrom(req Request, addr netip.Addr) (netip.Addr, bool) {
	if !req.Src.IsValid() || !addr.IsValid() || addr.IsUnspecified() {
		return netip.Addr{}, true
	}
	src := req.Src.Addr()
	if gi := AddrFromIP(req.Packet.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() {
		return src, src == gi
	}
	return src, src == addr
}

// busy marks res as one a worker must answer (see Result.Busy).
func busy(res Result) Result {
	res.Busy, res.Reason = true, "client busy: handed to a worker"
	return res
}

// subnetFor chooses the subnet of a request (RFC 2131 §4.3.1): the one
// holding giaddr when relayed, else the one holding the receiving
// interface's address. An INFORM from a client with an address picks the
// subnet holding ciaddr when there is one.
func (f *Full) subnetFor(req Request) *Subnet {
	p := req.Packet
	find := func(a netip.Addr) *Subnet {
		if !a.IsValid() || a.IsUnspecified() {
			return nil
		}
		for _, s := range f.Subnets {
			if s != nil && s.Leases != nil && s.prefix().Contains(a) {
				return s
			}
		}
		return nil
	}
	if gi := AddrFromIP(p.GatewayIPAddr); gi.IsValid() && !gi.IsUnspecified() {
		return find(gi)
	}
	if p.MessageType() == dhcpv4.MessageTypeInform {
		if s := find(AddrFromIP(p.ClientIPAddr)); s != nil {
			return s
		}
	}
	return find(req.Server.IP)
}

// reqAddr is option 50, the zero Addr when absent.
func reqAddr(p *dhcpv4.DHCPv4) netip.Addr {
	return AddrFromIP(p.RequestedIPAddress())
}

// serverID is what the server calls itself on sn: the Manager's ServerID,
// else the receiving interface's address.
func serverID(sn *Subnet, req Request) netip.Addr {
	if sn != nil {
		if id := sn.Leases.Subnet().ServerID; id.IsValid() && !id.IsUnspecified() {
			return id
		}
	}
	return req.Server.IP
}

// lease builds a DHCPOFFER or DHCPACK giving l to the client (RFC 2131
// §4.3.1 table 3), with the subnet's options and, for PXE clients, the
// boot information.
func (f *Full) lease(req Request, sn *Subnet, res *Result, mt dhcpv4.MessageType, l lease.Lease) Result {
	p := req.Packet
	reply := newReply(p)
	reply.UpdateOption(dhcpv4.OptMessageType(mt))
	reply.YourIPAddr = net.IP(l.Addr.AsSlice())
	if mt == dhcpv4.MessageTypeAck {
		reply.ClientIPAddr = p.ClientIPAddr
	}
	t := sn.Leases.Subnet().LeaseTime
	reply.UpdateOption(dhcpv4.OptIPAddressLeaseTime(t))
	reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optRenewal), u32(uint32(t/2/time.Second))))     // T1: RFC 2131 §4.4.5
	reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optRebinding), u32(uint32(t*7/8/time.Second)))) // T2
	if p.Options.Get(dhcpv4.OptionHostName) == nil && l.Hostname != "" {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optHostname), []byte(l.Hostname)))
	}
	f.subnetOptions(reply, sn, req, l.Addr)
	f.pxe(reply, req, res)
	res.Reason = fmt.Sprintf("%s %v: %s", mt, l.Addr, res.Reason)
	if mt == dhcpv4.MessageTypeAck {
		res.Learn = l.Addr
	}
	fit(reply, p)
	res.Reply = reply
	return *res
}

// adopt answers a client that requests the offer of cluster peer sid, now
// dead (Full.PeerGone), in its place: the requested address is bound if
// the lease store shows it free, and the ACK (or NAK) carries sid as its
// server identifier, which is the only one the client accepts (EDK II's
// Dhcp4Dxe and iPXE drop replies from another server while requesting).
func (f *Full) adopt(req Request, sn *Subnet, res Result, sid netip.Addr) Result {
	p := req.Packet
	d, l, err := sn.Leases.Request(req.context(), req.Deferred, lease.RequestRequest{
		Key: lease.NewClientKey(p.Options.Get(dhcpv4.OptionClientIdentifier), byte(p.HWType), p.ClientHWAddr),
		MAC: p.ClientHWAddr, Hostname: string(p.Options.Get(dhcpv4.OptionHostName)),
		Requested: reqAddr(p), Selected: true, Adopt: true,
	})
	switch {
	case errors.Is(err, lease.ErrBusy):
		return busy(res)
	case err != nil:
		res.Reason = fmt.Sprintf("request for dead peer %v's offer failed: %v", sid, err)
		return res
	case d.Action == lease.Ack:
		res.Reason = fmt.Sprintf("adopted from dead peer %v: %s", sid, d.Reason)
		out := f.lease(req, sn, &res, dhcpv4.MessageTypeAck, l)
		if out.Reply != nil {
			out.Reply.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(sid.AsSlice())))
		}
		return out
	default:
		res.Reply = f.nak(req, sid, "the server you chose is gone: "+d.Reason)
		res.Reason = fmt.Sprintf("nak for dead peer %v: %s", sid, d.Reason)
		return res
	}
}

// inform answers DHCPINFORM with a DHCPACK carrying the options only: no
// yiaddr, no lease time (RFC 2131 §4.3.5).
func (f *Full) inform(req Request, sn *Subnet, res *Result) Result {
	p := req.Packet
	reply := newReply(p)
	reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeAck))
	reply.YourIPAddr = net.IPv4zero
	reply.ClientIPAddr = p.ClientIPAddr
	f.subnetOptions(reply, sn, req, AddrFromIP(p.ClientIPAddr))
	f.pxe(reply, req, res)
	res.Reason = "inform: options only; " + res.Reason
	fit(reply, p)
	res.Reply = reply
	return *res
}

// nak builds a DHCPNAK (RFC 2131 §4.3.2 table 3): options 53, 54, 56, and
// 61 and 82 copied; no addresses, no file.
func (f *Full) nak(req Request, id netip.Addr, why string) *dhcpv4.DHCPv4 {
	reply := newReply(req.Packet)
	if !id.IsValid() {
		id = req.Server.IP
	}
	reply.UpdateOption(dhcpv4.OptMessageType(dhcpv4.MessageTypeNak))
	reply.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(id.AsSlice())))
	if len(why) > 250 {
		why = why[:250]
	}
	reply.UpdateOption(dhcpv4.OptMessage(why))
	return reply
}

// subnetOptions sets options 1, 3, 6, 15, 26, 42, 54 and the configured
// extra and per-host options.
func (f *Full) subnetOptions(reply *dhcpv4.DHCPv4, sn *Subnet, req Request, addr netip.Addr) {
	pfx := sn.prefix()
	reply.UpdateOption(dhcpv4.OptServerIdentifier(net.IP(serverID(sn, req).AsSlice())))
	reply.UpdateOption(dhcpv4.OptSubnetMask(net.CIDRMask(pfx.Bits(), 32)))
	if len(sn.Router) > 0 {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optRouter), ips(sn.Router)))
	}
	if len(sn.DNS) > 0 {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optDNS), ips(sn.DNS)))
	}
	if sn.Domain != "" {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optDomain), []byte(sn.Domain)))
	}
	if sn.MTU != 0 {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optMTU), []byte{byte(sn.MTU >> 8), byte(sn.MTU)}))
	}
	if len(sn.NTP) > 0 {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optNTP), ips(sn.NTP)))
	}
	for _, o := range sn.Options {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(o.Code), o.Value))
	}
	for _, o := range sn.HostOptions[addr] {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(o.Code), o.Value))
	}
}

// pxe adds the boot information to reply when the client is a PXE, HTTP
// boot or iPXE client and the boot decision does not ignore it; other
// clients get a plain lease.
func (f *Full) pxe(reply *dhcpv4.DHCPv4, req Request, res *Result) {
	m := res.Machine
	bc := snapshot(f.Boot)
	if m.Firmware == boot.FirmwareUnknown || bc == nil {
		res.Reason = "plain lease (not a PXE client)"
		return
	}
	plan := bc.DecideMenu(m, req.Server, nil)
	res.Plan = plan
	if plan.Action == boot.Ignore {
		res.Reason = "plain lease (" + plan.Reason + ")"
		return
	}
	if err := setBootInfo(reply, req.Packet, m, plan, req); err != nil {
		res.Reason = "plain lease (" + err.Error() + ")"
		return
	}
	if err := addMTFTP(reply, req.Packet, m, plan, f.MTFTP); err != nil {
		res.Reason = "plain lease (" + err.Error() + ")"
		return
	}
	res.Reason = plan.Reason
}

// essential options are never dropped to make a reply fit.
var essential = map[uint8]bool{
	optSubnetMask: true, optRouter: true, optHostname: true, optLeaseTime: true, optMsgType: true,
	optServerID: true, optRenewal: true, optRebinding: true, optClientID: true, optRelayAgent: true,
	optVendorClass: true, optPXEVendor: true, optBootFile: true, optClientUUID: true,
}

// fit drops options until reply fits in the size the client accepts:
// option 57 (RFC 2132 §9.10) or 576 bytes, less the IP and UDP headers.
// Options the client did not ask for in option 55 go first, then those it
// asked for last; the essential ones stay.
func fit(reply, req *dhcpv4.DHCPv4) {
	max := minMessageSize
	if b := req.Options.Get(dhcpv4.GenericOptionCode(optMaxSize)); len(b) == 2 {
		if n := int(b[0])<<8 | int(b[1]); n > max {
			max = n
		}
	}
	max -= ipUDPHeaders
	if encodedLen(reply) <= max {
		return
	}
	asked := req.Options.Get(dhcpv4.GenericOptionCode(optParamList))
	dropUntil(reply, max, func(code uint8) int {
		if essential[code] {
			return -1 // never dropped
		}
		if i := slices.Index(asked, code); i >= 0 {
			return i + 1
		}
		return 1000 + int(code)
	})
}

// dropUntil deletes options of reply, the highest rank first, until it
// encodes in max bytes; an option ranked below 0 is never deleted.
func dropUntil(reply *dhcpv4.DHCPv4, max int, rank func(code uint8) int) {
	var codes []uint8
	for c := range reply.Options {
		if rank(c) >= 0 {
			codes = append(codes, c)
		}
	}
	slices.SortFunc(codes, func(a, b uint8) int { return rank(b) - rank(a) })
	for _, c := range codes {
		if encodedLen(reply) <= max {
			return
		}
		delete(reply.Options, c)
	}
}

// newReply is dhcpv4.NewReplyFromRequest without its cost per reply: that
// draws a random transaction ID from crypto/rand only to overwrite it with
// the request's. Same fields: opcode, htype, xid, chaddr, flags and giaddr
// from the request, options 82 and 61 copied (RFC 3046, RFC 6842).
func newReply(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	op := dhcpv4.OpcodeBootReply
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		op = dhcpv4.OpcodeBootRequest
	}
	d := &dhcpv4.DHCPv4{
		OpCode:        op,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       make(dhcpv4.Options, 16),
	}
	for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRelayAgentInformation, dhcpv4.OptionClientIdentifier} {
		if v := req.Options.Get(code); v != nil {
			d.UpdateOption(dhcpv4.OptGeneric(code, v))
		}
	}
	return d
}

// encodedLen is len(d.ToBytes()) without encoding: the fixed header and
// magic cookie, each option (split in chunks of 255 bytes, RFC 3396, an
// empty one still written), the end option, padded to BOOTP's 300 bytes.
func encodedLen(d *dhcpv4.DHCPv4) int {
	n := 236 + 4 + 1
	for code, v := range d.Options {
		switch {
		case code == 0 || code == 255:
		case len(v) == 0:
			n += 2
		default:
			n += len(v) + 2*((len(v)+254)/255)
		}
	}
	return max(n, 300)
}

func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func ips(as []netip.Addr) []byte {
	var b []byte
	for _, a := range as {
		if a.Is4() {
			b = append(b, a.AsSlice()...)
		}
	}
	return b
}

// snapshot is src's configuration now; nil when there is none.
func snapshot(src boot.Source) *boot.Config {
	if src == nil {
		return nil
	}
	return src.Snapshot()
}
