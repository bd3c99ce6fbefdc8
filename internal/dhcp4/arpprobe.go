package dhcp4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"pxed/internal/udploop"
)

// ARP probing (RFC 5227 §2.1.1) for addresses on one of the server's own
// links. An ICMP echo to such an address makes the kernel resolve it: every
// probe of a free address leaves an INCOMPLETE, then FAILED, entry in the
// neighbour table for seconds. The table is shared by every network
// namespace of the host (net.ipv4.neigh.default.gc_thresh3, 1024 by
// default), so a burst of a few hundred DISCOVERs a second filled it and
// the kernel then dropped unrelated packets, DHCP ones included ("neighbor
// table overflow"). An ARP probe sent on a packet socket creates no
// neighbour entry, and it also finds hosts that do not answer pings.

// arpLen is the length of an Ethernet/IPv4 ARP packet.
const arpLen = 28

// arpRequest is the ARP operation of a request (and of a probe).
const arpRequest = 1

// marshalARPProbe writes an RFC 5227 probe for target: an ARP request from
// mac with sender protocol address 0.0.0.0, so that no host's ARP cache
// learns anything from it.
func marshalARPProbe(mac net.HardwareAddr, target netip.Addr) []byte {
	b := make([]byte, arpLen)
	binary.BigEndian.PutUint16(b[0:], 1)      // hardware type: Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // protocol type: IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], arpRequest)
	copy(b[8:14], mac)
	// b[14:18] sender IP 0.0.0.0, b[18:24] target MAC zero
	t := target.As4()
	copy(b[24:28], t[:])
	return b
}

// parseARP returns the operation, sender hardware and protocol addresses
// and target protocol address of an Ethernet/IPv4 ARP packet; ok is false
// for anything else.
func parseARP(b []byte) (op uint16, sha net.HardwareAddr, spa, tpa netip.Addr, ok bool) {
	if len(b) < arpLen || binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != 0x0800 ||
		b[4] != 6 || b[5] != 4 {
		return 0, nil, netip.Addr{}, netip.Addr{}, false
	}
	op = binary.BigEndian.Uint16(b[6:])
	sha = net.HardwareAddr(b[8:14])
	spa = netip.AddrFrom4([4]byte(b[14:18]))
	tpa = netip.AddrFrom4([4]byte(b[24:28]))
	return op, sha, spa, tpa, true
}

// arpConflict reports whether an ARP packet shows that addr is in use by a
// host other than the one with hardware address self: the host answered
// (or announced) with addr as its sender address, or it is probing for
// addr itself (RFC 5227 §2.1.1: a probe from another host for the same
// address is a conflict too).
func arpConflict(b []byte, addr netip.Addr, self net.HardwareAddr) bool {
	op, sha, spa, tpa, ok := parseARP(b)
	if !ok || bytes.Equal(sha, self) {
		return false
	}
	return spa == addr || op == arpRequest && spa.IsUnspecified() && tpa == addr
}

// arpLink is the packet socket of one interface and the probes waiting on
// it.
type arpLink struct {
	ifi  *net.Interface
	conn *packet.Conn

	mu      sync.Mutex
	waiters map[netip.Addr][]chan struct{}
	dead    error // set when the reader stopped
}

// openARPLink opens an ARP packet socket on ifi and starts its reader.
func openARPLink(ifi *net.Interface) (*arpLink, error) {
	if len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagBroadcast == 0 {
		return nil, fmt.Errorf("dhcp4: arp probe on %s: not an Ethernet broadcast link", ifi.Name)
	}
	c, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_ARP, nil)
	if err != nil {
		return nil, fmt.Errorf("dhcp4: arp probe on %s: %w", ifi.Name, err)
	}
	l := &arpLink{ifi: ifi, conn: c, waiters: map[netip.Addr][]chan struct{}{}}
	go l.read()
	return l, nil
}

// read wakes the probes whose address an incoming ARP packet shows in use.
func (l *arpLink) read() {
	buf := make([]byte, 1500)
	for {
		n, _, err := l.conn.ReadFrom(buf)
		if err != nil {
			l.mu.Lock()
			l.dead = err
			for a, ws := range l.waiters {
				for _, w := range ws {
					close(w)
				}
				delete(l.waiters, a)
			}
			l.mu.Unlock()
			return
		}
		_, _, spa, tpa, ok := parseARP(buf[:n])
		if !ok {
			continue
		}
		l.mu.Lock()
		for _, a := range []netip.Addr{spa, tpa} {
			ws := l.waiters[a]
			if len(ws) == 0 || !arpConflict(buf[:n], a, l.ifi.HardwareAddr) {
				continue
			}
			for _, w := range ws {
				close(w)
			}
			delete(l.waiters, a)
		}
		l.mu.Unlock()
	}
}

// errLinkClosed is what a probe on a link whose reader stopped returns.
var errLinkClosed = errors.New("dhcp4: arp probe: link closed")

// probe broadcasts an ARP probe for addr and reports whether any host
// claimed it before deadline.
func (l *arpLink) probe(ctx context.Context, addr netip.Addr, deadline time.Time) (bool, error) {
	w := make(chan struct{})
	l.mu.Lock()
	if l.dead != nil {
		l.mu.Unlock()
		return false, errLinkClosed
	}
	l.waiters[addr] = append(l.waiters[addr], w)
	l.mu.Unlock()
	defer l.forget(addr, w)
	to := &packet.Addr{HardwareAddr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	if _, err := l.conn.WriteTo(marshalARPProbe(l.ifi.HardwareAddr, addr), to); err != nil {
		return false, fmt.Errorf("dhcp4: arp probe %v on %s: %w", addr, l.ifi.Name, err)
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-w:
		l.mu.Lock()
		dead := l.dead
		l.mu.Unlock()
		if dead != nil {
			return false, errLinkClosed
		}
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, nil
	}
}

// forget removes the waiter w of addr, if the reader has not already.
func (l *arpLink) forget(addr netip.Addr, w chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ws := l.waiters[addr]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(l.waiters, addr)
	} else {
		l.waiters[addr] = ws
	}
}

func (l *arpLink) close() { l.conn.Close() }

// onLinkRefresh is how long the prober trusts its list of the host's
// interface prefixes.
const onLinkRefresh = 10 * time.Second

// arpProber finds the link an address is on and probes there.
type arpProber struct {
	mu       sync.Mutex
	prefixes []linkPrefix
	listed   time.Time
	links    map[int]*arpLink // by interface index
	failed   map[int]error    // links whose socket would not open
}

type linkPrefix struct {
	p   netip.Prefix
	ifi net.Interface
}

// link returns the ARP link addr is directly on, or nil when addr is on
// none of the host's Ethernet links (relayed subnets: probe with ICMP).
func (a *arpProber) link(addr netip.Addr) (*arpLink, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.listed) > onLinkRefresh {
		a.list()
	}
	for _, lp := range a.prefixes {
		if !lp.p.Contains(addr) {
			continue
		}
		if l := a.links[lp.ifi.Index]; l != nil {
			l.mu.Lock()
			dead := l.dead
			l.mu.Unlock()
			if dead == nil {
				return l, nil
			}
			delete(a.links, lp.ifi.Index)
		}
		if _, failed := a.failed[lp.ifi.Index]; failed {
			return nil, nil // reported when it failed: ICMP until the next listing
		}
		ifi := lp.ifi
		l, err := openARPLink(&ifi)
		if err != nil {
			a.failed[ifi.Index] = err
			return nil, err
		}
		a.links[ifi.Index] = l
		return l, nil
	}
	return nil, nil
}

// list reads the host's IPv4 interface prefixes (a.mu held).
func (a *arpProber) list() {
	a.listed = time.Now()
	a.prefixes = a.prefixes[:0]
	if a.links == nil {
		a.links, a.failed = map[int]*arpLink{}, map[int]error{}
	}
	clear(a.failed) // an interface may have come up since
	ifs, err := net.Interfaces()
	if err != nil {
		return
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 || ifi.Flags&net.FlagUp == 0 {
			continue
		}
		ps, err := udploop.InterfacePrefixes(&ifi)
		if err != nil {
			continue
		}
		for _, p := range ps {
			if p.Addr().Is4() {
				a.prefixes = append(a.prefixes, linkPrefix{p: p.Masked(), ifi: ifi})
			}
		}
	}
}

func (a *arpProber) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, l := range a.links {
		l.close()
		delete(a.links, i)
	}
}
