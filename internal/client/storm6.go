package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// StageInfoRequest is iPXE's stateless DHCPv6 exchange over IPv6: first
// Information-request to the Reply naming its script.
const StageInfoRequest = "info-request→reply"

// stormXID6 returns unique DHCPv6 transaction IDs for machine i: four per
// machine (Solicit, Request, and the iPXE stage's), unique among 2^22
// machines, so the machines' replies on the shared sockets never mix.
func stormXID6(i int) func() dhcpv6.TransactionID {
	n := 0
	return func() dhcpv6.TransactionID {
		v := uint32(i)<<2 | uint32(n&3)
		n++
		return dhcpv6.TransactionID{byte(v >> 16), byte(v >> 8), byte(v)}
	}
}

// boot6 runs machine i through the IPv6 flow: EDK II's DHCPv6 exchange
// (Exchange6, with a DUID-LLT from the machine's MAC, the servers' only
// way to tell machines apart on the shared link-local address), the NBP
// over TFTP on IPv6; then, with Chain or for an iPXE profile, iPXE's
// Information-request and its script, kernel and initrd over HTTP.
func (r *stormRun) boot6(ctx context.Context, i int) (m machine) {
	cfg := r.cfg
	prof := cfg.Profiles[i%len(cfg.Profiles)]
	mac := StormMAC(r.prefix, i)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	inner, release := cfg.NewTransport6(mac)
	defer release()
	clock := &clockTransport6{inner: inner}
	ph := r.enter(-1, PhaseDHCP)
	defer func() { r.enter(ph, -1) }()
	log := r.log.With("mac", mac.String(), "arch", prof.Name)
	fail := func(stage string, err error) machine {
		clock.record(&m)
		m.cause, m.err = FailureCause(stage, err), err.Error()
		log.Debug("storm: machine failed", "stage", stage, "cause", m.cause, "err", err)
		return m
	}
	start := time.Now()
	xid := stormXID6(i)
	id := Identity6{MAC: mac, UUID: UUIDFromMAC(mac), DUID: DUIDLLT}
	f := &Fetcher{Profile: prof, Interface: cfg.Interface, Timeout: cfg.TFTPTimeout, SkipHash: !cfg.Verify, Engine: r.engine}
	if !prof.IPXE {
		ex := &Exchange6{Transport: clock, Profile: prof, ID: id, Scale: cfg.Scale, XID: xid}
		d, err := ex.Run(ctx)
		if err != nil {
			return fail("dhcp", err)
		}
		if !cfg.Fetch {
			clock.record(&m)
			m.add(StageTotal, time.Since(start))
			return m
		}
		ph = r.enter(ph, PhaseNBP)
		if _, err := r.get(ctx, f, &m, StageNBP, d.BootName, d.BootServer); err != nil {
			return fail(StageNBP, err)
		}
		if !cfg.Chain || prof.HTTPBoot() {
			clock.record(&m)
			m.add(StageTotal, time.Since(start))
			return m
		}
		prof = ipxeOf(prof)
		f = &Fetcher{Profile: prof, Interface: cfg.Interface, Timeout: cfg.TFTPTimeout, SkipHash: !cfg.Verify, Engine: r.engine}
		ph = r.enter(ph, PhaseDHCP)
	}
	url, err := r.infoRequest(ctx, clock, prof, id, xid())
	if err != nil {
		return fail("dhcp", err)
	}
	clock.record(&m)
	if w, loop := ChainloadWarning(prof, url); loop {
		return fail("dhcp", errors.New(w.Message))
	}
	if !cfg.Fetch {
		m.add(StageTotal, time.Since(start))
		return m
	}
	ph = r.enter(ph, PhaseFiles)
	if stage, err := r.ipxeFiles(ctx, f, &m, &DHCPResult{BootFile: url}); err != nil {
		return fail(stage, err)
	}
	m.add(StageTotal, time.Since(start))
	return m
}

// infoRequest is iPXE's stateless DHCPv6 (router advertisements with the O
// flag and without M): an Information-request, retransmitted on iPXE's
// schedule, until a Reply carries a boot file URL.
func (r *stormRun) infoRequest(ctx context.Context, t Transport6, prof Profile, id Identity6, xid dhcpv6.TransactionID) (string, error) {
	msg := NewInfoRequest6(prof, id, xid)
	scale := func(d time.Duration) time.Duration {
		if r.cfg.Scale <= 0 {
			return d
		}
		return time.Duration(float64(d) * r.cfg.Scale)
	}
	for _, w := range IPXEWindows {
		if err := t.Send(ctx, msg, AllDHCP6); err != nil {
			return "", err
		}
		wctx, cancel := context.WithTimeout(ctx, scale(w))
		for {
			m, _, err := t.Receive(wctx)
			if err != nil {
				break
			}
			if m.TransactionID != xid || m.MessageType != dhcpv6.MessageTypeReply {
				continue
			}
			if u := m.Options.BootFileURL(); u != "" {
				cancel()
				return u, nil
			}
		}
		cancel()
		if ctx.Err() != nil {
			return "", fmt.Errorf("client: information-request: %w", ctx.Err())
		}
	}
	return "", fmt.Errorf("client: %w: no Reply with a boot file URL to iPXE's Information-request after %d tries", ErrNoOffer, len(IPXEWindows))
}

// clockTransport6 times the DHCPv6 stages of one machine as seen on the
// wire and counts retransmissions.
type clockTransport6 struct {
	inner                          Transport6
	solicit, advertise             time.Time
	request, reply                 time.Time
	bootReq, bootReply             time.Time
	info, infoReply                time.Time
	solicits, requests, bootReqs   int
	infos                          int
	requestXID, bootXID, infoXID   dhcpv6.TransactionID
	haveRequest, haveBoot, haveInf bool
}

// Send implements Transport6.
func (c *clockTransport6) Send(ctx context.Context, m *dhcpv6.Message, dst netip.AddrPort) error {
	now := time.Now()
	first := func(t *time.Time) {
		if t.IsZero() {
			*t = now
		}
	}
	switch {
	case dst.Port() == BootServerPort:
		c.bootReqs++
		first(&c.bootReq)
		c.bootXID, c.haveBoot = m.TransactionID, true
	case m.MessageType == dhcpv6.MessageTypeSolicit:
		c.solicits++
		first(&c.solicit)
	case m.MessageType == dhcpv6.MessageTypeRequest:
		c.requests++
		first(&c.request)
		c.requestXID, c.haveRequest = m.TransactionID, true
	case m.MessageType == dhcpv6.MessageTypeInformationRequest:
		c.infos++
		first(&c.info)
		c.infoXID, c.haveInf = m.TransactionID, true
	}
	return c.inner.Send(ctx, m, dst)
}

// Receive implements Transport6.
func (c *clockTransport6) Receive(ctx context.Context) (*dhcpv6.Message, netip.AddrPort, error) {
	m, from, err := c.inner.Receive(ctx)
	if err != nil {
		return m, from, err
	}
	now := time.Now()
	first := func(t *time.Time, after time.Time) {
		if t.IsZero() && !after.IsZero() {
			*t = now
		}
	}
	switch {
	case from.Port() == BootServerPort && c.haveBoot && m.TransactionID == c.bootXID:
		first(&c.bootReply, c.bootReq)
	case m.MessageType == dhcpv6.MessageTypeAdvertise:
		first(&c.advertise, c.solicit)
	case m.MessageType == dhcpv6.MessageTypeReply && c.haveRequest && m.TransactionID == c.requestXID:
		first(&c.reply, c.request)
	case m.MessageType == dhcpv6.MessageTypeReply && c.haveInf && m.TransactionID == c.infoXID && m.Options.BootFileURL() != "":
		first(&c.infoReply, c.info)
	}
	return m, from, nil
}

// record adds the stages and retries to m (once: it clears what it
// recorded).
func (c *clockTransport6) record(m *machine) {
	pair := func(stage string, a, b *time.Time) {
		if !a.IsZero() && !b.IsZero() {
			m.add(stage, b.Sub(*a))
		}
		*a, *b = time.Time{}, time.Time{}
	}
	pair(StageDiscover, &c.solicit, &c.advertise)
	pair(StageRequest, &c.request, &c.reply)
	pair(StageBootServer, &c.bootReq, &c.bootReply)
	pair(StageInfoRequest, &c.info, &c.infoReply)
	if m.retries == nil {
		m.retries = map[string]int{}
	}
	m.retries["Solicit"] += max(c.solicits-1, 0)
	m.retries["Request"] += max(c.requests-1, 0)
	m.retries["boot service request"] += max(c.bootReqs-1, 0)
	m.retries["Information-request"] += max(c.infos-1, 0)
	c.solicits, c.requests, c.bootReqs, c.infos = 0, 0, 0, 0
}

// newTransport6Check is the compile-time check that Conn6 is a Transport6.
var _ Transport6 = (*Conn6)(nil)

// Mux6Transport returns a StormConfig.NewTransport6 over mux.
func Mux6Transport(mux *Mux6) func(net.HardwareAddr) (Transport6, func()) {
	return func(net.HardwareAddr) (Transport6, func()) {
		c := mux.Conn()
		return c, c.Close
	}
}
