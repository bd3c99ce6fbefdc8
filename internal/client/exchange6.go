package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// RequestWindows6 are the Request retransmission timeouts (RFC 8415 §7.6:
// REQ_TIMEOUT 1 s doubling, REQ_MAX_RT 30 s; six of REQ_MAX_RC's ten).
var RequestWindows6 = []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second}

// BootServiceWait6 is how long EDK II waits for the boot service's Reply
// to its one request (PXEBC_UDP_TIMEOUT, 3 s); it then tries the next
// ProxyBinl offer.
const BootServiceWait6 = 3 * time.Second

// Exchange6 is the DHCPv6 part of one boot as EDK II's PXE client
// (UefiPxeBcDxe over Dhcp6Dxe) or HTTP boot client (HttpBootDxe) does it:
// Solicit, Advertises collected for the first retransmission timeout
// (Windows: 4 s, as PxeBcDhcp6Sarr configures IRT 4, MRC 4, MRT 32) or
// until one carries preference 255, classification and choice, Request
// and Reply with the chosen address server, then for PXE the boot service
// request to a BINL offer's server on port 4011. It only talks to its
// Transport6.
type Exchange6 struct {
	Transport Transport6 // required
	Profile   Profile
	ID        Identity6
	// Scale multiplies every timeout; 0 means 1.
	Scale float64
	// OnLease, when set, is called with the address from the Reply before
	// the boot service request (firmware has configured it by then); an
	// error ends the exchange.
	OnLease func(*Lease6) error
	// XID gives the transaction ID of each new exchange (Solicit,
	// Request); nil picks random ones. A storm hands out unique ones, as
	// its machines share one pair of sockets demultiplexed by them.
	XID    func() dhcpv6.TransactionID
	Logger *slog.Logger // nil discards
}

func (e *Exchange6) newXID() dhcpv6.TransactionID {
	if e.XID != nil {
		return e.XID()
	}
	return randomXID6()
}

// Lease6 is the address the client got over DHCPv6.
type Lease6 struct {
	Addr     netip.Addr     `json:"addr"`
	Server   netip.AddrPort `json:"server"`    // where the Reply came from
	ServerID string         `json:"server_id"` // hex DUID
	Valid    time.Duration  `json:"valid_ns,omitempty"`
}

// DHCP6Result is what the DHCPv6 exchange found out.
type DHCP6Result struct {
	Solicits  int       `json:"solicits"`
	Offers    []Offer6  `json:"offers"`
	Selection Selection `json:"selection"`
	Requests  int       `json:"requests"`
	Lease     *Lease6   `json:"lease,omitempty"`
	// BootRequests counts the requests to boot services (port 4011), one
	// per BINL offer tried; BootReply is the Reply that named the file.
	BootRequests int     `json:"boot_requests,omitempty"`
	BootReply    *Offer6 `json:"boot_reply,omitempty"`
	// BootFile is the URL the firmware loads (tftp://[addr]/file for PXE,
	// http(s):// for HTTP boot); for PXE, BootServer and BootName are its
	// TFTP server and file.
	BootFile   string     `json:"boot_file,omitempty"`
	BootServer netip.Addr `json:"boot_server,omitzero"`
	BootName   string     `json:"boot_name,omitempty"`
	Warnings   []Warning  `json:"warnings,omitempty"`
}

func (e *Exchange6) scale(d time.Duration) time.Duration {
	if e.Scale <= 0 {
		return d
	}
	return time.Duration(float64(d) * e.Scale)
}

func (e *Exchange6) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func randomXID6() dhcpv6.TransactionID {
	v := rand.Uint32()
	return dhcpv6.TransactionID{byte(v >> 16), byte(v >> 8), byte(v)}
}

// Run performs the whole exchange; the result is filled as far as it got,
// also when err is not nil.
func (e *Exchange6) Run(ctx context.Context) (*DHCP6Result, error) {
	res := &DHCP6Result{Selection: Selection{Address: -1, Boot: -1}}
	start := time.Now()
	if err := e.solicit(ctx, res, start); err != nil {
		return res, err
	}
	sel := res.Selection
	if sel.Address < 0 {
		return res, fmt.Errorf("client: %w: %s", ErrNoOffer, sel.Reason)
	}
	req, reply, err := e.request(ctx, res, res.Offers[sel.Address], start)
	if err != nil {
		return res, err
	}
	if e.OnLease != nil {
		if err := e.OnLease(res.Lease); err != nil {
			return res, err
		}
	}
	if e.Profile.HTTPBoot() {
		// HttpBootDxe takes the URI of the offer it chose (the proxy's
		// for priorities 3–5): it asks no boot service.
		res.BootFile = res.Offers[sel.Boot].BootFileURL
		return res, nil
	}
	url := ""
	switch res.Offers[sel.Boot].Type {
	case PXE6DhcpBinl, PXE6ProxyBinl:
		b, err := e.bootService(ctx, res, req, start)
		if err != nil {
			return res, err
		}
		url = b.BootFileURL
	default:
		// A DhcpOnly offer with a URL: PxeBcDhcp6BootInfo reads the file
		// from the Reply.
		url = NewOffer6(reply, netip.AddrPort{}, 0, e.ID.iaid()).BootFileURL
		if url == "" {
			return res, fmt.Errorf("client: the Reply of %s has no boot file URL (its Advertise had %q): %w",
				res.Lease.Server.Addr(), res.Offers[sel.Boot].BootFileURL, errNoBootFile)
		}
	}
	res.BootFile = url
	b, err := ParseBootFileURL6(url)
	if err != nil {
		return res, err
	}
	if !b.Server.IsValid() {
		return res, fmt.Errorf("client: boot file URL %q names host %q: EDK II would resolve it over DNS, which the probe does not simulate", url, b.Host)
	}
	res.BootServer, res.BootName = b.Server, b.File
	return res, nil
}

// classify sets o's firmware offer type.
func (e *Exchange6) classify(o *Offer6) {
	if !e.Profile.HTTPBoot() {
		o.Type = ClassifyPXE6(*o)
		return
	}
	t, err := ClassifyHTTP(httpOffer6(*o))
	o.Type = t
	if err != nil {
		o.Type = "Dropped: " + err.Error()
	}
}

func (e *Exchange6) choose(offers []Offer6) Selection {
	if !e.Profile.HTTPBoot() {
		return SelectPXE6(offers)
	}
	types := make([]string, len(offers))
	for i, o := range offers {
		if o.Dropped == "" && !strings.HasPrefix(o.Type, "Dropped") {
			types[i] = o.Type
		}
	}
	return SelectHTTP(types)
}

// solicit sends the Solicit and collects Advertises as Dhcp6Dxe does
// (Dhcp6HandleAdvertiseMsg, Dhcp6OnTimerTick): until the first
// retransmission timeout, or at once on an Advertise with preference 255;
// when the first timeout passed with none, the next Advertise ends the
// collection. The firmware then chooses among those it kept.
func (e *Exchange6) solicit(ctx context.Context, res *DHCP6Result, start time.Time) error {
	xid := e.newXID()
	iaid := e.ID.iaid()
	seen := map[string]bool{}
	anyAfter := false // Dhcp6Dxe's AdPref = 0xff after an empty first timeout
	for _, w := range Windows {
		sol := NewSolicit6(e.Profile, e.ID, xid)
		sol.UpdateOption(elapsedTime(time.Since(start)))
		if res.Solicits == 0 {
			sol.UpdateOption(dhcpv6.OptElapsedTime(0))
		}
		if err := e.Transport.Send(ctx, sol, AllDHCP6); err != nil {
			return err
		}
		res.Solicits++
		wctx, cancel := context.WithTimeout(ctx, e.scale(w))
		done := false
		for !done {
			m, from, err := e.Transport.Receive(wctx)
			if err != nil {
				break
			}
			if m.TransactionID != xid || m.MessageType != dhcpv6.MessageTypeAdvertise || !sameDUID(m.Options.ClientID(), e.ID.ClientDUID()) {
				continue
			}
			o := NewOffer6(m, from, time.Since(start), iaid)
			key := o.ServerID + "/" + from.Addr().String()
			if seen[key] {
				continue // the answer to a retransmission
			}
			seen[key] = true
			e.classify(&o)
			e.log().Debug("advertise", "from", from, "type", o.Type, "url", o.BootFileURL, "dropped", o.Dropped)
			res.Offers = append(res.Offers, o)
			if o.Dropped == "" && (anyAfter || o.HasPreference && o.Preference == 255) {
				done = true
			}
		}
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("client: solicit: %w", ctx.Err())
		}
		kept := false
		for _, o := range res.Offers {
			kept = kept || o.Dropped == ""
		}
		if kept {
			res.Selection = e.choose(res.Offers)
			return nil
		}
		anyAfter = true
	}
	res.Selection = e.choose(res.Offers)
	return nil
}

// request asks the chosen server for its address (RFC 8415 §18.2.2) and
// waits for its Reply.
func (e *Exchange6) request(ctx context.Context, res *DHCP6Result, o Offer6, start time.Time) (req, reply *dhcpv6.Message, err error) {
	xid := e.newXID()
	sid := o.Msg.Options.ServerID()
	for _, w := range RequestWindows6 {
		if req, err = NewRequest6(e.Profile, e.ID, xid, o.Msg, time.Since(start)); err != nil {
			return nil, nil, err
		}
		if err := e.Transport.Send(ctx, req, AllDHCP6); err != nil {
			return nil, nil, err
		}
		res.Requests++
		wctx, cancel := context.WithTimeout(ctx, e.scale(w))
		for {
			m, from, err := e.Transport.Receive(wctx)
			if err != nil {
				break
			}
			if m.TransactionID != xid || m.MessageType != dhcpv6.MessageTypeReply || !sameDUID(m.Options.ServerID(), sid) {
				continue
			}
			cancel()
			r := NewOffer6(m, from, time.Since(start), e.ID.iaid())
			if r.Dropped != "" || r.Kind != "dhcp" || !r.Addr.IsValid() {
				why := r.Dropped
				if why == "" {
					why = "no address in its IA_NA"
				}
				return req, m, fmt.Errorf("client: %s refused the address %s: %s", from.Addr(), o.Addr, why)
			}
			l := &Lease6{Addr: r.Addr, Server: from, ServerID: r.ServerID}
			if a := m.Options.OneIANA().Options.OneAddress(); a != nil {
				l.Valid = a.ValidLifetime
			}
			res.Lease = l
			return req, m, nil
		}
		cancel()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("client: request %s: %w", o.Addr, ctx.Err())
		}
	}
	return nil, nil, fmt.Errorf("client: no Reply from %s for %s after %d requests", o.From.Addr(), o.Addr, len(RequestWindows6))
}

// bootService asks the boot service of the chosen BINL offer for the boot
// file (PxeBcRetryDhcp6Binl): for a DhcpBinl offer its server, for
// DhcpOnly + ProxyBinl every ProxyBinl offer in turn until one answers;
// each at the host of the offer's boot file URL (All_DHCP_Relay_Agents_
// and_Servers without one), port 4011, once, waiting BootServiceWait6.
func (e *Exchange6) bootService(ctx context.Context, res *DHCP6Result, req *dhcpv6.Message, start time.Time) (*Offer6, error) {
	sel := res.Selection
	var tries []int
	if res.Offers[sel.Boot].Type == PXE6DhcpBinl {
		tries = []int{sel.Boot}
	} else {
		for i, o := range res.Offers {
			if o.Dropped == "" && o.Type == PXE6ProxyBinl {
				tries = append(tries, i)
			}
		}
	}
	var errs []error
	for _, i := range tries {
		o := res.Offers[i]
		dst := netip.AddrPortFrom(AllDHCP6.Addr(), BootServerPort)
		if o.BootFileURL != "" {
			b, err := ParseBootFileURL6(o.BootFileURL)
			if err == nil && !b.Server.IsValid() {
				err = fmt.Errorf("boot file URL %q names a host (DNS is not simulated)", o.BootFileURL)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("offer [%d]: %w", i, err))
				continue
			}
			dst = netip.AddrPortFrom(b.Server, BootServerPort)
		}
		breq, err := NewBootRequest6(req, o.Msg, o.Type == PXE6ProxyBinl, time.Since(start))
		if err != nil {
			errs = append(errs, fmt.Errorf("offer [%d]: %w", i, err))
			continue
		}
		if err := e.Transport.Send(ctx, breq, dst); err != nil {
			return nil, err
		}
		res.BootRequests++
		// Scaled, but never under RFC 4861's RetransTimer (1 s) and a half:
		// the address was configured a moment ago, and a first neighbor
		// solicitation that goes unanswered costs a second either way.
		wctx, cancel := context.WithTimeout(ctx, max(e.scale(BootServiceWait6), 1500*time.Millisecond))
		for {
			m, from, err := e.Transport.Receive(wctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("offer [%d]: no answer from the boot service at %s", i, dst))
				break
			}
			// UdpRead: from the server's address and port 4011.
			if m.TransactionID != breq.TransactionID || from.Port() != BootServerPort ||
				(!dst.Addr().IsMulticast() && from.Addr().WithZone("") != dst.Addr()) {
				continue
			}
			r := NewOffer6(m, from, time.Since(start), e.ID.iaid())
			e.classify(&r)
			res.BootReply = &r
			cancel()
			if r.BootFileURL == "" {
				// PxeBcRetryDhcp6Binl: a BINL reply without a boot file.
				errs = append(errs, fmt.Errorf("offer [%d]: the boot service at %s answered without a boot file URL", i, from.Addr()))
				break
			}
			return &r, nil
		}
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: boot service: %w", ctx.Err())
		}
	}
	res.Warnings = append(res.Warnings, Warning{WarnNoBootServer, fmt.Sprintf("no boot service answered with a boot file (%v)", errors.Join(errs...))})
	return nil, fmt.Errorf("client: boot service request: %w", errors.Join(errs...))
}
