package dhcp4

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// DefaultProbeTimeout is how long Prober waits for an echo reply.
const DefaultProbeTimeout = 300 * time.Millisecond

// ProbeRate is the rate of probed DISCOVERs a second the server's workers
// keep up with when every probe waits its whole timeout (free addresses,
// the usual case): each probe holds a worker for the timeout.
const ProbeRate = 4000

// WorkersFor returns Server.Workers for a probe timeout: the default plus
// enough workers for ProbeRate probes a second of that timeout in flight
// (1,456 at 300 ms). A probe waiting is a parked goroutine, not CPU.
func WorkersFor(probeTimeout time.Duration) int {
	if probeTimeout <= 0 {
		return DefaultWorkers
	}
	return DefaultWorkers + int(probeTimeout.Seconds()*ProbeRate)
}

// Prober asks whether an address is in use before the server offers it
// (RFC 2131 §3.1 step 2 "SHOULD probe") and waits Timeout for an answer.
// An address on one of the host's own Ethernet links gets an ARP probe
// (RFC 5227, arpprobe.go: no neighbour-table entry, and hosts that drop
// pings answer it); any other address (a relayed subnet) an ICMP echo
// request. Its InUse method is a lease.Config.Probe.
type Prober struct {
	Timeout time.Duration // 0 means DefaultProbeTimeout
	Logger  *slog.Logger  // nil discards

	arp arpProber
}

// InUse reports whether addr answered within the timeout. When the probe
// cannot be sent (no raw socket), it logs and reports false: the address
// is offered, as without probing.
func (p *Prober) InUse(ctx context.Context, addr netip.Addr) bool {
	used, err := p.probe(ctx, addr)
	if err != nil && p.Logger != nil {
		p.Logger.Warn("address probe failed, offering without it", "addr", addr.String(), "err", err)
	}
	return used
}

// Close stops the ARP readers.
func (p *Prober) Close() { p.arp.close() }

func (p *Prober) probe(ctx context.Context, addr netip.Addr) (bool, error) {
	if !addr.Is4() {
		return false, fmt.Errorf("dhcp4: probe %v: not IPv4", addr)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	l, err := p.arp.link(addr)
	if err == nil && l != nil {
		used, err := l.probe(ctx, addr, deadline)
		if err == nil || time.Now().After(deadline) {
			return used, err
		}
	} else if err != nil && p.Logger != nil {
		p.Logger.Warn("arp probe unavailable on this link, probing with icmp", "addr", addr.String(), "err", err)
	}
	return p.echo(addr, deadline)
}

// echo sends one ICMP echo request to addr and waits until deadline for
// its reply.
func (p *Prober) echo(addr netip.Addr, deadline time.Time) (bool, error) {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return false, fmt.Errorf("dhcp4: probe %v: %w", addr, err)
	}
	defer c.Close()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	id, seq := int(binary.BigEndian.Uint16(rnd[:2])), int(binary.BigEndian.Uint16(rnd[2:]))
	echo := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("pxed-probe")}}
	b, err := echo.Marshal(nil)
	if err != nil {
		return false, fmt.Errorf("dhcp4: probe %v: %w", addr, err)
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: net.IP(addr.AsSlice())}); err != nil {
		return false, fmt.Errorf("dhcp4: probe %v: %w", addr, err)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return false, fmt.Errorf("dhcp4: probe %v: %w", addr, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("dhcp4: probe %v: %w", addr, err)
		}
		ia, ok := from.(*net.IPAddr)
		if !ok || AddrFromIP(ia.IP) != addr {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
			return true, nil
		}
	}
}
