package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/pxe"
)

// Windows are the firmware's DHCP timeouts: the DISCOVER is sent again
// after each, with the same transaction ID (PXE 2.1 §2.2.1: 4, 8, 16 and
// 32 seconds).
var Windows = []time.Duration{4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second}

// IPXEWindows are iPXE's DISCOVER timeouts (config/dhcp.h: from
// DHCP_DISC_START_TIMEOUT_SEC 1 doubling to DHCP_DISC_END_TIMEOUT_SEC 10).
var IPXEWindows = []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// IPXEProxyWait is how long iPXE waits for a ProxyDHCP offer after a
// DHCPOFFER that carries no PXE information (DHCP_DISC_PROXY_TIMEOUT_SEC).
const IPXEProxyWait = 2 * time.Second

// windows returns the firmware's DISCOVER timeouts.
func (e *Exchange) windows() []time.Duration {
	if e.Profile.IPXE {
		return IPXEWindows
	}
	return Windows
}

// ipxeDone reports whether iPXE leaves discovery with these offers after
// elapsed (iPXE dhcp_discovery_rx): it needs an address offer and then
// either PXE information — an offer with vendor class PXEClient, which
// iPXE takes as its ProxyDHCP offer, be it the address offer itself — or
// an offer telling it not to wait (option 175.176 no-pxedhcp), or its
// ProxyDHCP wait has passed. EDK II and PXE ROMs collect for the whole
// window instead.
func ipxeDone(offers []Offer, elapsed, proxyWait time.Duration) bool {
	addr, pxeInfo := false, false
	for _, o := range offers {
		if o.Kind == "dhcp" || o.Kind == "bootp" {
			addr = true
			if noPXEDHCP(o.Packet) {
				pxeInfo = true
			}
		}
		if strings.HasPrefix(o.VendorClass, "PXEClient") {
			pxeInfo = true
		}
	}
	return addr && (pxeInfo || elapsed >= proxyWait)
}

// noPXEDHCP reports iPXE's encapsulated option 175.176 set to non-zero.
func noPXEDHCP(p *dhcpv4.DHCPv4) bool {
	b := p.Options.Get(dhcpv4.GenericOptionCode(175))
	for len(b) >= 2 {
		code, n := b[0], int(b[1])
		if len(b) < 2+n {
			return false
		}
		if code == 176 && n > 0 && b[2] != 0 {
			return true
		}
		b = b[2+n:]
	}
	return false
}

// Exchange is the DHCP part of one boot: DISCOVER, offers, selection,
// REQUEST/ACK and boot server discovery. It only talks to its Transport.
type Exchange struct {
	Transport Transport // required
	Profile   Profile
	ID        Identity
	// Scale multiplies every timeout (Windows and the ones of REQUEST and
	// boot server discovery); 0 means 1. Tests use 0.05–0.25.
	Scale float64
	// XID is the transaction ID of the DISCOVER; 0 picks a random one.
	XID dhcpv4.TransactionID
	// LocalAddr, when valid, is the address the Transport's unicasts come
	// from and the only one it receives unicasts on (a kernel UDP socket on
	// an interface that does not hold the leased address). Boot server
	// discovery then puts it in ciaddr instead of the leased address, since
	// servers such as dnsmasq answer to ciaddr. Zero: the leased address,
	// as firmware does.
	LocalAddr netip.Addr
	// NAKRestarts is how often Run starts over with a new DISCOVER after a
	// DHCPNAK to its REQUEST (RFC 2131 §3.1 step 5: the client returns to
	// INIT); 0 gives up at the first NAK.
	NAKRestarts int
	// OnLease, when set, is called with the acknowledged lease before boot
	// server discovery, where firmware has configured its address; an
	// error ends the exchange.
	OnLease func(*Lease) error
	Logger  *slog.Logger // nil discards
}

// Lease is the address the client got.
type Lease struct {
	Addr     netip.Addr    `json:"addr"`
	Server   netip.Addr    `json:"server"` // option 54 of the ACK
	Mask     string        `json:"mask,omitempty"`
	Router   netip.Addr    `json:"router,omitzero"`
	Duration time.Duration `json:"lease_ns,omitempty"`
}

// DHCPResult is what the exchange found out.
type DHCPResult struct {
	Offers    []Offer   `json:"offers"`
	Selection Selection `json:"selection"`
	Discovers int       `json:"discovers"` // DISCOVERs sent
	Lease     *Lease    `json:"lease,omitempty"`
	// BootReply is the answer of boot server discovery (port 4011), when the
	// selected offer needed it.
	BootReply *Offer `json:"boot_reply,omitempty"`
	// BootFile is what the firmware loads next and BootServer the TFTP
	// server it asks (unused for an HTTP URL).
	BootFile   string     `json:"boot_file,omitempty"`
	BootServer netip.Addr `json:"boot_server,omitzero"`
	// LocalBoot is true when the selected menu item is "boot from local disk".
	LocalBoot bool `json:"local_boot,omitempty"`
	// NAKs counts the DHCPNAKs after which the exchange started over.
	NAKs     int       `json:"naks,omitempty"`
	Warnings []Warning `json:"warnings,omitempty"`
}

func (e *Exchange) scale(d time.Duration) time.Duration {
	if e.Scale <= 0 {
		return d
	}
	return time.Duration(float64(d) * e.Scale)
}

func (e *Exchange) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// ErrNoOffer reports that no usable offer came within all windows.
var ErrNoOffer = errors.New("no usable offer")

// ErrNAK reports that the address server refused the REQUEST.
var ErrNAK = errors.New("DHCPNAK")

// Run performs the whole exchange. The result is filled as far as the
// exchange got, also when err is not nil. After a DHCPNAK it starts over
// (at most NAKRestarts times) with a new transaction ID; the result is the
// last attempt's, with a warning for each NAK and the DISCOVERs of all.
func (e *Exchange) Run(ctx context.Context) (*DHCPResult, error) {
	var warns []Warning
	discovers := 0
	for naks := 0; ; naks++ {
		res, err := e.run(ctx)
		res.NAKs, res.Discovers = naks, res.Discovers+discovers
		res.Warnings = append(warns, res.Warnings...)
		if !errors.Is(err, ErrNAK) || naks >= e.NAKRestarts || ctx.Err() != nil {
			return res, err
		}
		warns = append(warns, Warning{WarnNAK, err.Error() + "; the firmware starts over with a new DISCOVER"})
		discovers = res.Discovers
		e.XID = dhcpv4.TransactionID{}
	}
}

func (e *Exchange) run(ctx context.Context) (*DHCPResult, error) {
	res := &DHCPResult{Selection: Selection{Address: -1, Boot: -1}}
	if err := e.discover(ctx, res); err != nil {
		return res, err
	}
	sel := res.Selection
	if sel.Address < 0 {
		return res, fmt.Errorf("client: %w: %s", ErrNoOffer, sel.Reason)
	}
	addrOffer, bootOffer := res.Offers[sel.Address], res.Offers[sel.Boot]
	ack, err := e.request(ctx, res, addrOffer)
	if err != nil {
		return res, err
	}
	if e.OnLease != nil && res.Lease != nil {
		if err := e.OnLease(res.Lease); err != nil {
			return res, err
		}
	}
	// Boot information: the boot offer; when it is also the address offer,
	// the ACK (servers may put the file in the ACK only).
	src := bootOffer
	if sel.Boot == sel.Address && ack != nil && BootFile(ack.Packet) != "" {
		src = *ack
	}
	res.BootFile, res.BootServer = src.BootFile, nextServer(src)
	if e.Profile.HTTPBoot() {
		return res, nil
	}
	need, item, dst, why := needsDiscovery(bootOffer)
	if need && bootOffer.PXE != nil && len(bootOffer.PXE.Menu) > 0 && bootOffer.PXE.Menu[0].Type == 0 {
		res.LocalBoot = true
		return res, fmt.Errorf("client: the boot menu's first item is local boot (type 0): the firmware would boot from disk")
	}
	if !need {
		return res, nil
	}
	e.log().Debug("boot server discovery", "why", why, "server", dst)
	reply, err := e.bootServer(ctx, res, dst, item)
	if err != nil {
		res.Warnings = append(res.Warnings, Warning{WarnNoBootServer,
			fmt.Sprintf("boot server discovery to %s (%s) got no answer: %v", dst, why, err)})
		return res, err
	}
	res.BootReply = reply
	res.BootFile, res.BootServer = reply.BootFile, nextServer(*reply)
	if res.BootFile == "" {
		return res, fmt.Errorf("client: boot server %s answered without a boot file (PXE-E53)", dst)
	}
	return res, nil
}

// nextServer is where the boot file is fetched over TFTP: siaddr, else
// option 66 when it is an address, else the server identifier.
func nextServer(o Offer) netip.Addr {
	if o.NextServer.IsValid() {
		return o.NextServer
	}
	if a, err := netip.ParseAddr(o.Packet.TFTPServerName()); err == nil {
		return a
	}
	return o.Server()
}

// needsDiscovery decides whether the firmware asks a boot server on port
// 4011 after it has its address, which item it asks for and where.
//
// EDK II (PxeBcDhcp4BootInfo, PxeBcRetryBinlOffer): BINL offers carry no
// PXE vendor options; the client asks their server on port 4011 for the
// boot file (type 0, layer 0) unless the offer already names one. PXE 1.0
// offers (discovery control present): with bit 3 (use boot file) and a
// file, the file is loaded directly; otherwise the client picks the first
// menu item (after the prompt times out) and unicasts to the first boot
// server of that type (sub-option 8), else to the offering server
// (PXE 2.1 §2.2.5).
func needsDiscovery(o Offer) (need bool, item *pxe.BootItem, dst netip.AddrPort, why string) {
	srv := netip.AddrPortFrom(o.Server(), BootServerPort)
	switch o.OfferType {
	case pxe.OfferProxyBinl, pxe.OfferDhcpBinl:
		if o.BootFile != "" && o.OfferType == pxe.OfferDhcpBinl {
			return false, nil, dst, ""
		}
		// No boot item (sub-option 71): a BINL request asks for "the" boot
		// file; dnsmasq answers UEFI clients only then.
		return true, nil, srv, "BINL offer: ask its server for the boot file"
	case pxe.OfferProxyPxe10, pxe.OfferDhcpPxe10:
		vo := o.PXE
		if vo == nil {
			return false, nil, dst, ""
		}
		if vo.DiscoveryControl&pxe.DiscoveryUseBootFile != 0 && o.BootFile != "" {
			return false, nil, dst, ""
		}
		it := pxe.BootItem{}
		switch {
		case len(vo.Menu) > 0:
			it.Type = vo.Menu[0].Type
		case len(vo.BootServers) > 0:
			it.Type = vo.BootServers[0].Type
		default:
			if o.BootFile != "" {
				return false, nil, dst, ""
			}
		}
		for _, bs := range vo.BootServers {
			if bs.Type == it.Type && len(bs.Addrs) > 0 {
				srv = netip.AddrPortFrom(bs.Addrs[0], BootServerPort)
				break
			}
		}
		return true, &it, srv, fmt.Sprintf("PXE menu item type %d", it.Type)
	}
	return false, nil, dst, ""
}

// discover broadcasts DISCOVERs and collects offers window by window until
// one window ends with a selection that gives an address.
func (e *Exchange) discover(ctx context.Context, res *DHCPResult) error {
	xid := e.XID
	if xid == (dhcpv4.TransactionID{}) {
		xid = randomXID()
		e.XID = xid
	}
	disc, err := NewDiscover(e.Profile, e.ID, xid)
	if err != nil {
		return err
	}
	start := time.Now()
	seen := map[string]bool{}
	proxyWait := e.scale(IPXEProxyWait)
	for _, w := range e.windows() {
		if err := e.Transport.Send(ctx, disc, BroadcastDHCP); err != nil {
			return err
		}
		res.Discovers++
		wctx, cancel := context.WithTimeout(ctx, e.scale(w))
		for {
			rctx := wctx
			var rcancel context.CancelFunc = func() {}
			if e.Profile.IPXE {
				if ipxeDone(res.Offers, time.Since(start), proxyWait) {
					break
				}
				if ipxeDone(res.Offers, proxyWait, proxyWait) {
					// An address offer without PXE information: wait for
					// a ProxyDHCP offer until the proxy wait is over.
					rctx, rcancel = context.WithDeadline(wctx, start.Add(proxyWait))
				}
			}
			p, from, err := e.Transport.Receive(rctx)
			rcancel()
			if err != nil {
				if rctx.Err() != nil && wctx.Err() == nil {
					continue // the proxy wait ended: the check above decides
				}
				break
			}
			if !e.mine(p, xid) {
				continue
			}
			if mt := p.MessageType(); p.Options.Has(dhcpv4.OptionDHCPMessageType) && mt != dhcpv4.MessageTypeOffer {
				continue
			}
			o := NewOffer(p, from, time.Since(start))
			if e.Profile.HTTPBoot() {
				// HttpBootDxe's offer types, not PXE's.
				t, err := ClassifyHTTP(httpOffer4(p))
				o.Type = t
				if err != nil {
					o.Type = "Dropped: " + err.Error()
				}
			}
			// A server answers every retransmission: keep its first offer.
			key := o.Server().String() + "/" + o.Kind
			if seen[key] {
				continue
			}
			seen[key] = true
			e.log().Debug("offer", "from", from, "type", o.Type, "file", o.BootFile)
			res.Offers = append(res.Offers, o)
		}
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("client: discover: %w", ctx.Err())
		}
		if e.Profile.IPXE && !ipxeDone(res.Offers, time.Since(start), proxyWait) {
			continue // iPXE still waits for PXE information
		}
		res.Selection = Select(e.Profile, res.Offers)
		if res.Selection.Address >= 0 {
			return nil
		}
	}
	res.Selection = Select(e.Profile, res.Offers)
	return nil
}

func (e *Exchange) mine(p *dhcpv4.DHCPv4, xid dhcpv4.TransactionID) bool {
	return p.TransactionID == xid && net.HardwareAddr(p.ClientHWAddr).String() == e.ID.MAC.String()
}

// request asks the address server for its offer (RFC 2131 §4.3.2) and waits
// for the ACK; BOOTP replies need no request.
func (e *Exchange) request(ctx context.Context, res *DHCPResult, o Offer) (*Offer, error) {
	if o.Kind == "bootp" {
		res.Lease = &Lease{Addr: o.YourIP, Server: o.Server()}
		return nil, nil
	}
	req, err := NewRequest(e.Profile, e.ID, o.Packet)
	if err != nil {
		return nil, err
	}
	var ack *Offer
	answered, err := e.await(ctx, req, BroadcastDHCP, func(p *dhcpv4.DHCPv4, from netip.AddrPort, elapsed time.Duration) (bool, error) {
		if addr(p.ServerIdentifier()) != o.ServerID && o.ServerID.IsValid() {
			return false, nil
		}
		switch p.MessageType() {
		case dhcpv4.MessageTypeAck:
			a := NewOffer(p, from, elapsed)
			l := &Lease{Addr: addr(p.YourIPAddr), Server: addr(p.ServerIdentifier()), Duration: p.IPAddressLeaseTime(0)}
			if m := p.SubnetMask(); m != nil {
				l.Mask = net.IP(m).String()
			}
			if r := p.Router(); len(r) > 0 {
				l.Router = addr(r[0])
			}
			res.Lease, ack = l, &a
			return true, nil
		case dhcpv4.MessageTypeNak:
			return true, fmt.Errorf("client: %s refused the address %s (%w: %q)", o.Server(), o.YourIP, ErrNAK, p.Message())
		}
		return false, nil
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("client: request %s: %w", o.YourIP, err)
	case err != nil:
		return nil, err
	case answered:
		return ack, nil
	}
	return nil, fmt.Errorf("client: no DHCPACK from %s for %s after %d requests", o.Server(), o.YourIP, len(Windows))
}

// bootServer performs boot server discovery: a DHCPREQUEST with ciaddr set
// to the leased address, unicast to dst (PXE 2.1 §2.2.5), retried on the
// same schedule as DISCOVER.
func (e *Exchange) bootServer(ctx context.Context, res *DHCPResult, dst netip.AddrPort, item *pxe.BootItem) (*Offer, error) {
	var ci net.IP = net.IPv4zero
	switch {
	case e.LocalAddr.Is4():
		ci = net.IP(e.LocalAddr.AsSlice())
	case res.Lease != nil && res.Lease.Addr.IsValid():
		ci = net.IP(res.Lease.Addr.AsSlice())
	}
	xid := randomXID()
	req, err := NewBootRequest(e.Profile, e.ID, xid, ci, item)
	if err != nil {
		return nil, err
	}
	var ack *Offer
	answered, err := e.await(ctx, req, dst, func(p *dhcpv4.DHCPv4, from netip.AddrPort, elapsed time.Duration) (bool, error) {
		if p.MessageType() != dhcpv4.MessageTypeAck {
			return false, nil
		}
		o := NewOffer(p, from, elapsed)
		ack = &o
		return true, nil
	})
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("client: boot server discovery: %w", err)
	case err != nil:
		return nil, err
	case answered:
		return ack, nil
	}
	return nil, fmt.Errorf("client: no answer from boot server %s after %d requests", dst, len(Windows))
}

// await sends req to dst once per retransmission window (Windows, scaled)
// and hands each reply of this exchange (its xid and chaddr) to accept, with
// the time since the first send, until accept says done. answered is false
// when every window passed without that; a send error or the end of ctx is
// returned as err (ctx's error is returned unwrapped).
func (e *Exchange) await(ctx context.Context, req *dhcpv4.DHCPv4, dst netip.AddrPort,
	accept func(p *dhcpv4.DHCPv4, from netip.AddrPort, elapsed time.Duration) (done bool, err error)) (answered bool, err error) {
	start := time.Now()
	for _, w := range Windows {
		if err := e.Transport.Send(ctx, req, dst); err != nil {
			return false, err
		}
		wctx, cancel := context.WithTimeout(ctx, e.scale(w))
		for {
			p, from, err := e.Transport.Receive(wctx)
			if err != nil {
				break
			}
			if !e.mine(p, req.TransactionID) {
				continue
			}
			if done, err := accept(p, from, time.Since(start)); done || err != nil {
				cancel()
				return done, err
			}
		}
		cancel()
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	return false, nil
}

func randomXID() dhcpv4.TransactionID {
	var x dhcpv4.TransactionID
	v := rand.Uint32()
	x[0], x[1], x[2], x[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	return x
}
