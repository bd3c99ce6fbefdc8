package dhcp6

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"pxed/internal/boot"
	"pxed/internal/lease"
)

// Option is one DHCPv6 option to send: its code and encoded value.
type Option struct {
	Code  uint16
	Value []byte
}

// Subnet is one network the Full policy leases IA_NA addresses on.
type Subnet struct {
	// Leases allocates the subnet's addresses; required. Its Subnet()
	// gives the prefix and the lease time (the valid lifetime).
	Leases *lease.Manager
	// Interface is where the subnet is attached; "" for a network behind
	// a relay (chosen by the relay's link address).
	Interface string
	// Preferred is the preferred lifetime; 0 (or more than the lease
	// time) means the lease time.
	Preferred    time.Duration
	DNS          []netip.Addr // option 23
	DomainSearch []string     // option 24
	// Options are extra options by number, sent after the ones above.
	Options []Option
}

// Full is the stateful DHCPv6 server policy (RFC 8415): it leases IA_NA
// addresses from its subnets, keyed by DUID and IAID (lease.DUIDKey), and
// gives network boot clients their boot file in the same replies, as
// Proxy builds it: EDK II's PXE and HTTP Boot clients then see a "DhcpBinl"
// offer (address and boot file from one server) and iPXE, which solicits
// an address on a network whose router sends the M flag, gets its script.
// Requests to the boot service port (4011) are answered as Proxy answers
// them. Respond is safe for concurrent use; it is pure but for the lease
// Managers it calls.
type Full struct {
	Subnets []*Subnet
	Boot    boot.Source // one snapshot per request
	// Preference is the preference option (7) of every Advertise, 0–255;
	// negative sends none. 255 makes a client take this Advertise at once
	// instead of collecting others for its first retransmission timeout
	// (RFC 8415 §18.2.1; EDK II's Dhcp6Dxe does the same).
	Preference int
	// RapidCommit answers a Solicit carrying Rapid Commit with a Reply
	// that commits the lease (RFC 8415 §18.3.1).
	RapidCommit bool
	// DeferredWrites says the Managers' store defers durable writes under
	// a lease.Deferred (see dhcp4.Full.DeferredWrites): every message is
	// then answered on the socket's reader and each reply that announces
	// a lease write is sent once that write is durable.
	DeferredWrites bool
	// Owns, when set, says whether this server answers the client with
	// this DUID: the servers of a cluster split their clients
	// (cluster.Member.OwnsClient, the RFC 3074 hash of the DUID), as they
	// split DHCPv4's. Only the messages every server receives and none
	// names (Solicit, Rebind, Confirm) are left to the client's owner; a
	// Request, Renew, Release or Decline names its server, and an
	// Information-request binds nothing. Set it before serving.
	Owns func(duid []byte) bool

	sidOpt atomic.Pointer[serverIDOpt] // serverIDOption's
}

// Quick reports whether messages may be answered on the socket's reader.
func (f *Full) Quick(*dhcpv6.Message) bool { return f.DeferredWrites }

// Respond answers one request; see Full.
func (f *Full) Respond(req Request) Result {
	if req.Port == PortBootServer {
		return (&Proxy{Boot: f.Boot}).Respond(req)
	}
	m := req.Msg
	mt := m.MessageType
	cidOpt := m.Options.GetOne(dhcpv6.OptionClientID) // reused in the reply
	cid, sid := m.Options.ClientID(), m.Options.ServerID()
	mine := sid != nil && sid.Equal(req.ServerID)
	switch mt { // RFC 8415 §16: what each message must and must not carry
	case dhcpv6.MessageTypeSolicit, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeConfirm:
		if cid == nil {
			return ignore(NoClientID, mt.String()+" without a client identifier")
		}
		if sid != nil {
			return ignore(OtherServer, mt.String()+" with a server identifier")
		}
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline:
		if cid == nil {
			return ignore(NoClientID, mt.String()+" without a client identifier")
		}
		if !mine {
			return ignore(OtherServer, mt.String()+" for another server")
		}
	case dhcpv6.MessageTypeInformationRequest:
		if sid != nil && !mine {
			return ignore(OtherServer, mt.String()+" for another server")
		}
	default:
		return ignore(Unsupported, mt.String()+" is not answered by a DHCPv6 server")
	}
	// The exchange and its Result stay on the stack: the lease calls
	// keep (leak) what x points to, so x holds no pointer to the stack.
	x := exchange{f: f, req: req, ctx: req.Ctx}
	if cid != nil { // an Information-request may come without one
		x.setDUID(cid)
	}
	if f.Owns != nil && sid == nil && mt != dhcpv6.MessageTypeInformationRequest && !f.Owns(bytes.Clone(x.duid())) {
		return ignore(PeerShare, mt.String()+": a client another server of the cluster answers")
	}
	mc := Machine(m, req.Src.Addr())
	if len(mc.MAC) == 0 {
		mc.MAC = req.MAC
	}
	x.res = Result{Machine: mc}
	res := &x.res
	sn := f.subnetFor(req)
	if sn == nil {
		return res.ignore(NoSubnet, fmt.Sprintf("%s: no dhcp6 subnet for the client's link", mt))
	}
	x.sn, x.host = sn, hostname(m)
	if x.ctx == nil {
		x.ctx = context.Background()
	}
	replyType := dhcpv6.MessageTypeReply
	// The request's IA_NAs (in) and the reply's (ias), two of each
	// without allocating; separate arrays, so that writing one never
	// overwrites the other.
	var inBuf, outBuf [2]*dhcpv6.OptIANA
	ias := outBuf[:0]
	var status *dhcpv6.OptStatusCode
	bootInfo := mc.Firmware != boot.FirmwareUnknown
	switch mt {
	case dhcpv6.MessageTypeSolicit: // RFC 8415 §18.3.1
		rapid := f.RapidCommit && m.GetOneOption(dhcpv6.OptionRapidCommit) != nil
		if !rapid {
			replyType = dhcpv6.MessageTypeAdvertise
		}
		for _, ia := range appendIANA(inBuf[:0], m) {
			ias = append(ias, x.assign(ia, rapid))
		}
	case dhcpv6.MessageTypeRequest: // §18.3.2
		for _, ia := range appendIANA(inBuf[:0], m) {
			ias = append(ias, x.assign(ia, true))
		}
	case dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind: // §18.3.4, §18.3.5
		for _, ia := range appendIANA(inBuf[:0], m) {
			if out := x.extend(ia, mt == dhcpv6.MessageTypeRebind); out != nil {
				ias = append(ias, out)
			}
		}
		if len(ias) == 0 && x.err == nil && !x.busy {
			return res.ignore(NoBinding, "rebind: no binding of this client here")
		}
	case dhcpv6.MessageTypeRelease, dhcpv6.MessageTypeDecline: // §18.3.7, §18.3.8
		for _, ia := range appendIANA(inBuf[:0], m) {
			if out := x.release(ia, mt == dhcpv6.MessageTypeDecline); out != nil {
				ias = append(ias, out)
			}
		}
		status = &dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess, StatusMessage: lowerName(mt) + " done"}
		bootInfo = false
	case dhcpv6.MessageTypeConfirm: // §18.3.3
		st, ok := x.confirm()
		if !ok {
			return res.ignore(NoBinding, "confirm: no addresses to confirm")
		}
		status, bootInfo = st, false
	case dhcpv6.MessageTypeInformationRequest: // §18.3.6
	}
	switch {
	case x.busy:
		return Result{Busy: true, Reason: "client busy: handed to a worker"}
	case x.err != nil:
		return res.ignore(StoreError, fmt.Sprintf("%s: %v", mt, x.err))
	}
	reply := &dhcpv6.Message{MessageType: replyType, TransactionID: m.TransactionID}
	reply.Options.Options = make(dhcpv6.Options, 0, 8) // grown once at most
	reply.AddOption(f.serverIDOption(req.ServerID))
	if cidOpt != nil {
		reply.AddOption(cidOpt)
	}
	if status != nil {
		reply.AddOption(status)
	}
	for _, ia := range ias {
		reply.AddOption(ia)
	}
	if mt == dhcpv6.MessageTypeSolicit && replyType == dhcpv6.MessageTypeReply {
		reply.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
	}
	if replyType == dhcpv6.MessageTypeAdvertise && f.Preference >= 0 && f.Preference <= 255 {
		reply.AddOption(dhcpv6.OptPreference(uint8(f.Preference)))
	}
	if status == nil {
		sn.addOptions(reply)
	}
	what := strings.Join(x.done, ", ")
	if bootInfo && res.decide(f.Boot.Snapshot(), req.Server) {
		res.addBoot(reply)
		what = strings.TrimPrefix(what+"; boot "+res.URL, "; ")
	}
	if what == "" {
		what = "options only"
	}
	res.Reply, res.Reason = reply, lowerName(mt)+": "+what
	return *res
}

// subnetFor chooses the subnet of a request: the one holding the link
// address of the relay on the client's link when relayed (RFC 8415
// §13.1), else the one attached to the receiving interface, else the one
// holding the interface's address.
func (f *Full) subnetFor(req Request) *Subnet {
	if req.Link.IsValid() {
		if req.Link.IsUnspecified() {
			return nil
		}
		for _, s := range f.Subnets {
			if s.Leases.Subnet().Prefix.Contains(req.Link) {
				return s
			}
		}
		return nil
	}
	for _, s := range f.Subnets {
		if s.Interface != "" && s.Interface == req.Interface {
			return s
		}
	}
	for _, s := range f.Subnets {
		if req.Server.IP.IsValid() && s.Leases.Subnet().Prefix.Contains(req.Server.IP) {
			return s
		}
	}
	return nil
}

// addOptions adds the subnet's configuration options.
func (s *Subnet) addOptions(reply *dhcpv6.Message) {
	if len(s.DNS) > 0 {
		ips := make([]net.IP, len(s.DNS))
		for i, a := range s.DNS {
			ips[i] = a.AsSlice()
		}
		reply.AddOption(dhcpv6.OptDNS(ips...))
	}
	if len(s.DomainSearch) > 0 {
		reply.AddOption(dhcpv6.OptDomainSearchList(&rfc1035label.Labels{Labels: s.DomainSearch}))
	}
	for _, o := range s.Options {
		reply.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionCode(o.Code), OptionData: o.Value})
	}
}

// lifetimes are the preferred and valid lifetimes of the subnet's leases.
func (s *Subnet) lifetimes() (preferred, valid time.Duration) {
	valid = s.Leases.Subnet().LeaseTime
	preferred = s.Preferred
	if preferred <= 0 || preferred > valid {
		preferred = valid
	}
	return preferred, valid
}

// exchange is one message's work on its subnet: the IA options built, the
// addresses handled (for the reason), and whether a lease operation was
// busy or failed, which ends the message without a reply.
type exchange struct {
	f   *Full
	req Request
	sn  *Subnet
	res Result
	ctx context.Context
	// The client's DUID, encoded once for the IAs' keys: in duidArr
	// (duidLen bytes), or in duidLong when longer.
	duidArr  [32]byte
	duidLen  int
	duidLong []byte
	host     string // from its FQDN option, once
	done     []string
	busy     bool
	err      error
}

// setDUID encodes the client's DUID (see duid).
func (x *exchange) setDUID(d dhcpv6.DUID) {
	if b := appendDUID(x.duidArr[:0], d); len(b) <= len(x.duidArr) {
		x.duidLen = len(b)
	} else {
		x.duidLong = bytes.Clone(b) // not b: x must hold no pointer into itself
	}
}

// duid is the client's DUID in wire form.
func (x *exchange) duid() []byte {
	if x.duidLong != nil {
		return x.duidLong
	}
	return x.duidArr[:x.duidLen]
}

// key is the lease key of one IA_NA of the client.
func (x *exchange) key(ia *dhcpv6.OptIANA) lease.ClientKey {
	return lease.DUIDKey(binary.BigEndian.Uint32(ia.IaId[:]), x.duid())
}

// fail records a lease operation's error; true when there was one.
func (x *exchange) fail(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, lease.ErrBusy):
		x.busy = true
	case x.err == nil:
		x.err = err
	}
	return true
}

// hostname is the first label of the client's FQDN option (39), if any.
func hostname(m *dhcpv6.Message) string {
	fq := m.Options.FQDN()
	if fq == nil || fq.DomainName == nil || len(fq.DomainName.Labels) == 0 {
		return ""
	}
	h, _, _ := strings.Cut(fq.DomainName.Labels[0], ".")
	return h
}

// firstAddr is the first of iaAddrs(ia), without the list; zero if none.
func firstAddr(ia *dhcpv6.OptIANA) netip.Addr {
	for _, o := range ia.Options.Options {
		if ip, ok := validAddr(o); ok {
			return ip
		}
	}
	return netip.Addr{}
}

// validAddr is the address of o when o is an IA Address option naming a
// valid IPv6 address (not unspecified, not IPv4-mapped).
func validAddr(o dhcpv6.Option) (netip.Addr, bool) {
	a, ok := o.(*dhcpv6.OptIAAddress)
	if !ok {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IPv6Addr)
	return ip, ok && ip.Is6() && !ip.Is4In6() && !ip.IsUnspecified()
}

// appendIANA appends m's IA_NAs to buf, as m.Options.IANA() lists them.
func appendIANA(buf []*dhcpv6.OptIANA, m *dhcpv6.Message) []*dhcpv6.OptIANA {
	for _, o := range m.Options.Options {
		if ia, ok := o.(*dhcpv6.OptIANA); ok {
			buf = append(buf, ia)
		}
	}
	return buf
}

// lowerName is the message type's name in lower case, as
// strings.ToLower(mt.String()) but without the copy for the common ones.
func lowerName(mt dhcpv6.MessageType) string {
	switch mt {
	case dhcpv6.MessageTypeSolicit:
		return "solicit"
	case dhcpv6.MessageTypeRequest:
		return "request"
	case dhcpv6.MessageTypeRenew:
		return "renew"
	case dhcpv6.MessageTypeRebind:
		return "rebind"
	case dhcpv6.MessageTypeRelease:
		return "release"
	case dhcpv6.MessageTypeDecline:
		return "decline"
	case dhcpv6.MessageTypeConfirm:
		return "confirm"
	case dhcpv6.MessageTypeInformationRequest:
		return "information-request"
	}
	return strings.ToLower(mt.String())
}

// serverIDOption is the Server Identifier option of duid, made once per
// DUID (pxed's is the same on every socket but for DUID-LLs of different
// interfaces) and shared by the replies, which only read it.
func (f *Full) serverIDOption(duid dhcpv6.DUID) dhcpv6.Option {
	if c := f.sidOpt.Load(); c != nil && sameDUID(c.duid, duid) {
		return c.opt
	}
	c := &serverIDOpt{duid: duid, opt: dhcpv6.OptServerID(duid)}
	f.sidOpt.Store(c)
	return c.opt
}

// sameDUID reports whether a and b are the same DUID value (pointer):
// the library's DUIDs are pointers; any other kind is never the same (an
// interface comparison could panic on a type holding a slice).
func sameDUID(a, b dhcpv6.DUID) bool {
	switch p := a.(type) {
	case *dhcpv6.DUIDLLT:
		return samePtr(p, b)
	case *dhcpv6.DUIDLL:
		return samePtr(p, b)
	case *dhcpv6.DUIDEN:
		return samePtr(p, b)
	case *dhcpv6.DUIDUUID:
		return samePtr(p, b)
	case *dhcpv6.DUIDOpaque:
		return samePtr(p, b)
	}
	return false
}

// samePtr reports whether b holds the pointer p.
func samePtr[P comparable](p P, b dhcpv6.DUID) bool {
	q, ok := b.(P)
	return ok && p == q
}

type serverIDOpt struct {
	duid dhcpv6.DUID
	opt  dhcpv6.Option
}

// iaAddrs are the valid IPv6 addresses an IA_NA names.
func iaAddrs(ia *dhcpv6.OptIANA) []netip.Addr {
	var out []netip.Addr
	for _, o := range ia.Options.Options {
		if ip, ok := validAddr(o); ok {
			out = append(out, ip)
		}
	}
	return out
}

// ia builds an IA_NA answering in, with T1 and T2 from the preferred
// lifetime (RFC 8415 §21.4: 0.5 and 0.8 of it) and the given options.
func (x *exchange) ia(in *dhcpv6.OptIANA, opts ...dhcpv6.Option) *dhcpv6.OptIANA {
	pref, _ := x.sn.lifetimes()
	out := &dhcpv6.OptIANA{IaId: in.IaId}
	out.Options.Options = make(dhcpv6.Options, 0, len(opts))
	hasAddr := false
	for _, o := range opts {
		if _, ok := o.(*dhcpv6.OptIAAddress); ok {
			hasAddr = true
		}
		out.Options.Add(o)
	}
	if hasAddr {
		out.T1, out.T2 = pref/2, pref*4/5
	}
	return out
}

func (x *exchange) addr(a netip.Addr, live bool) *dhcpv6.OptIAAddress {
	// The option and its address bytes in one allocation.
	oa := &struct {
		o  dhcpv6.OptIAAddress
		ip [16]byte
	}{ip: a.As16()}
	o := &oa.o
	o.IPv6Addr = oa.ip[:]
	if live {
		o.PreferredLifetime, o.ValidLifetime = x.sn.lifetimes()
	}
	return o
}

func status(code iana.StatusCode, msg string) *dhcpv6.OptStatusCode {
	return &dhcpv6.OptStatusCode{StatusCode: code, StatusMessage: msg}
}

// assign gives one IA_NA an address: offered (Advertise) or, with commit,
// bound and durable (Request, rapid-commit Solicit). The address the
// client asked for is preferred; one it asked for but cannot have is
// returned with lifetimes 0 (RFC 8415 §18.3.2). No address left:
// NoAddrsAvail in the IA.
func (x *exchange) assign(in *dhcpv6.OptIANA, commit bool) *dhcpv6.OptIANA {
	key, mac := x.key(in), x.res.Machine.MAC
	hint := firstAddr(in)
	if commit && hint.IsValid() {
		// The common Request: the address of our Advertise, bound over
		// the offer it made (no second Offer).
		d, bound, err := x.sn.Leases.Request(x.ctx, x.req.Deferred, lease.RequestRequest{Key: key, MAC: mac, Hostname: x.host, Requested: hint, Selected: true})
		if x.fail(err) {
			return nil
		}
		if d.Action == lease.Ack {
			return x.bound(in, bound)
		}
	}
	l, err := x.sn.Leases.Offer(x.ctx, x.req.Deferred, lease.OfferRequest{Key: key, MAC: mac, Hostname: x.host, Requested: hint})
	if errors.Is(err, lease.ErrExhausted) {
		x.res.PoolExhausted = true
		x.done = append(x.done, "no address left")
		return x.ia(in, status(iana.StatusNoAddrsAvail, fmt.Sprintf("pool %v exhausted", x.sn.Leases.Subnet().Prefix)))
	}
	if x.fail(err) {
		return nil
	}
	if commit {
		d, bound, err := x.sn.Leases.Request(x.ctx, x.req.Deferred, lease.RequestRequest{Key: key, MAC: mac, Hostname: x.host, Requested: l.Addr, Selected: true})
		if x.fail(err) {
			return nil
		}
		if d.Action != lease.Ack {
			x.done = append(x.done, "not bound: "+d.Reason)
			return x.ia(in, status(iana.StatusNoAddrsAvail, d.Reason))
		}
		if hint.IsValid() && hint != bound.Addr {
			x.done = append(x.done, hint.String()+" refused")
			return x.bound(in, bound, x.addr(hint, false))
		}
		return x.bound(in, bound)
	}
	x.done = append(x.done, l.Addr.String())
	return x.ia(in, x.addr(l.Addr, true))
}

// bound answers an IA with the lease just bound (and more, e.g. a
// refused address with lifetimes 0), and learns its address.
func (x *exchange) bound(in *dhcpv6.OptIANA, l lease.Lease, more ...dhcpv6.Option) *dhcpv6.OptIANA {
	if !x.res.Learn.IsValid() {
		x.res.Learn = l.Addr
	}
	x.done = append(x.done, l.Addr.String())
	if len(more) == 0 {
		return x.ia(in, x.addr(l.Addr, true))
	}
	return x.ia(in, append([]dhcpv6.Option{x.addr(l.Addr, true)}, more...)...)
}

// extend renews (or, rebind, rebinds) the addresses of one IA_NA. An
// address not on the client's link is returned with lifetimes 0; when
// none is this client's, a Renew gets NoBinding in the IA and a Rebind
// nothing (nil: another server may hold the binding). An IA without
// addresses is assigned one, as in a Request.
func (x *exchange) extend(in *dhcpv6.OptIANA, rebind bool) *dhcpv6.OptIANA {
	as := iaAddrs(in)
	if len(as) == 0 {
		return x.assign(in, true)
	}
	key, mac := x.key(in), x.res.Machine.MAC
	pfx := x.sn.Leases.Subnet().Prefix
	var opts []dhcpv6.Option
	for _, a := range as {
		if !pfx.Contains(a) {
			opts = append(opts, x.addr(a, false))
			continue
		}
		d, l, err := x.sn.Leases.Request(x.ctx, x.req.Deferred, lease.RequestRequest{Key: key, MAC: mac, Hostname: x.host, CIAddr: a, Broadcast: rebind})
		if x.fail(err) {
			return nil
		}
		if d.Action == lease.Ack {
			opts = append(opts, x.addr(l.Addr, true))
			x.done = append(x.done, l.Addr.String())
			if !x.res.Learn.IsValid() {
				x.res.Learn = l.Addr
			}
		}
	}
	switch {
	case len(opts) > 0:
		return x.ia(in, opts...)
	case rebind:
		return nil
	}
	x.done = append(x.done, "no binding")
	return x.ia(in, status(iana.StatusNoBinding, "no binding for this IA"))
}

// release ends (or, decline, quarantines) the client's leases on the
// addresses of one IA_NA; an IA none of whose addresses the client holds
// comes back with NoBinding (RFC 8415 §18.3.7, §18.3.8).
func (x *exchange) release(in *dhcpv6.OptIANA, decline bool) *dhcpv6.OptIANA {
	key := x.key(in)
	held := false
	for _, a := range iaAddrs(in) {
		var err error
		if decline {
			err = x.sn.Leases.Decline(x.ctx, x.req.Deferred, key, a)
		} else {
			err = x.sn.Leases.Release(x.ctx, x.req.Deferred, key, a)
		}
		switch {
		case err == nil:
			held = true
			x.done = append(x.done, a.String())
		case errors.Is(err, lease.ErrNotHeld):
			// ErrForeign wraps it: another client's address stays its own.
		default:
			if x.fail(err) {
				return nil
			}
		}
	}
	if held {
		return nil
	}
	return x.ia(in, status(iana.StatusNoBinding, "no binding for this IA"))
}

// confirm tells whether every address the client names is on its link
// (RFC 8415 §18.3.3); false when it names none (no reply then).
func (x *exchange) confirm() (*dhcpv6.OptStatusCode, bool) {
	pfx := x.sn.Leases.Subnet().Prefix
	n := 0
	for _, ia := range x.req.Msg.Options.IANA() {
		for _, a := range iaAddrs(ia) {
			n++
			if !pfx.Contains(a) {
				x.done = append(x.done, a.String()+" not on link")
				return status(iana.StatusNotOnLink, fmt.Sprintf("%v is not on link %v", a, pfx)), true
			}
		}
	}
	if n == 0 {
		return nil, false
	}
	x.done = append(x.done, "on link")
	return status(iana.StatusSuccess, "all addresses on link"), true
}
