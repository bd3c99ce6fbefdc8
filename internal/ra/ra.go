// Package ra sends IPv6 router advertisements (RFC 4861 §4.2, §6.2) on a
// boot segment that has no router of its own: the M and O flags tell
// firmware and iPXE whether to ask DHCPv6 for an address or only for
// configuration (pxed's ProxyDHCPv6 answers the latter), and prefix
// information lets them configure addresses by SLAAC (RFC 4862). It sends
// one every Interval and answers each router solicitation within
// MaxRADelay: unicast to a sender that has an address, else to all nodes
// at most once a MinDelayBetweenRAs (see Solicited), so a machine that
// just started, firmware or iPXE, need not wait for the next one.
package ra

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Config is what the advertisements say.
type Config struct {
	// Managed sets the M flag: addresses come from DHCPv6 (a stateful
	// server on the segment). Other sets the O flag: other configuration
	// (boot file URL, DNS) comes from DHCPv6.
	Managed, Other bool
	// Prefixes are announced on-link and for SLAAC (/64).
	Prefixes []netip.Prefix
	// RouterLifetime is how long hosts may use this router as their
	// default router; 0 announces none (pxed is not a router), the usual
	// choice for a boot-only segment.
	RouterLifetime time.Duration
	// Interval is the time between unsolicited advertisements; 0 means
	// DefaultInterval.
	Interval time.Duration
}

// DefaultInterval is Config.Interval when 0 (RFC 4861 allows 4 s to
// 1800 s; firmware waits for the first one, so short).
const DefaultInterval = 10 * time.Second

// Prefix lifetimes announced (RFC 4861 §6.2.1 defaults).
const (
	validLifetime     = 30 * 24 * time.Hour
	preferredLifetime = 7 * 24 * time.Hour
)

// Message encodes a router advertisement for a sender whose link-layer
// address is mac (the source link-layer address option; nil leaves it
// out). The checksum is left zero: the kernel fills it in on ICMPv6 sockets.
func (c Config) Message(mac net.HardwareAddr) []byte {
	b := make([]byte, 16, 16+8+32*len(c.Prefixes))
	b[0] = byte(ipv6.ICMPTypeRouterAdvertisement)
	b[4] = 64 // cur hop limit suggested to hosts
	if c.Managed {
		b[5] |= 0x80
	}
	if c.Other {
		b[5] |= 0x40
	}
	life := min(c.RouterLifetime/time.Second, 9000) // RFC 4861 §6.2.1: at most 9000 s
	binary.BigEndian.PutUint16(b[6:], uint16(life))
	// reachable time and retrans timer 0: unspecified
	if len(mac) == 6 {
		b = append(b, 1, 1) // source link-layer address, 8 bytes
		b = append(b, mac...)
	}
	for _, p := range c.Prefixes {
		o := make([]byte, 32)
		o[0], o[1] = 3, 4 // prefix information, 32 bytes
		o[2] = byte(p.Bits())
		o[3] = 0x80 // L: on-link
		if p.Bits() == 64 {
			o[3] |= 0x40 // A: autonomous address configuration
		}
		binary.BigEndian.PutUint32(o[4:], uint32(validLifetime/time.Second))
		binary.BigEndian.PutUint32(o[8:], uint32(preferredLifetime/time.Second))
		a := p.Masked().Addr().As16()
		copy(o[16:], a[:])
		b = append(b, o...)
	}
	return b
}

// Sender advertises on one interface.
type Sender struct {
	Interface string
	Config    Config
	Logger    *slog.Logger // nil discards

	conn *icmp.PacketConn
	ifi  *net.Interface
	msg  []byte
}

var allNodes = &net.IPAddr{IP: net.ParseIP("ff02::1")}

// Open creates the ICMPv6 socket (root or CAP_NET_RAW) on the interface.
func (s *Sender) Open() error {
	ifi, err := net.InterfaceByName(s.Interface)
	if err != nil {
		return fmt.Errorf("ra: interface %s: %w", s.Interface, err)
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("ra: icmpv6 socket: %w", err)
	}
	p := c.IPv6PacketConn()
	// RFC 4861 §6.1.2: hosts drop advertisements whose hop limit is not 255.
	errs := []error{p.SetMulticastHopLimit(255), p.SetHopLimit(255), p.SetMulticastInterface(ifi),
		p.SetControlMessage(ipv6.FlagInterface|ipv6.FlagHopLimit, true), p.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")})}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterSolicitation)
	errs = append(errs, p.SetICMPFilter(&f))
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return fmt.Errorf("ra: socket options on %s: %w", s.Interface, err)
	}
	s.conn, s.ifi, s.msg = c, ifi, s.Config.Message(ifi.HardwareAddr)
	return nil
}

// Close closes the socket of a Sender that was opened but will not Run.
func (s *Sender) Close() error {
	if s.conn == nil {
		return nil
	}
	return s.conn.Close()
}

// Run advertises every Interval and answers router solicitations (see
// Solicited) until ctx ends; it closes the socket.
func (s *Sender) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	iv := s.Config.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	solicited := make(chan netip.Addr, 64)
	go func() {
		<-ctx.Done()
		s.conn.Close()
	}()
	go s.readSolicitations(solicited)
	log.Info("router advertisements", "interface", s.Interface, "managed", s.Config.Managed, "other", s.Config.Other,
		"prefixes", s.Config.Prefixes, "router_lifetime", s.Config.RouterLifetime, "interval", iv)
	t := time.NewTicker(iv)
	defer t.Stop()
	wake := time.NewTimer(time.Hour)
	defer wake.Stop()
	var q queue
	failed := 0 // advertisements to all nodes in a row that could not go
	multicast := func() {
		if s.send(netip.Addr{}, log) {
			q.sentMulticast(time.Now())
			failed = 0
			return
		}
		q.retryMulticast(time.Now().Add(linkLocalRetry))
		if failed++; failed == linkLocalPatience {
			log.Warn("ra: no usable IPv6 link-local address, so no router advertisement can go (RFC 4861 §4.2 makes it the source); "+
				"pxed keeps trying: a bridge gets one once a port is up, else enable IPv6 on the interface (disable_ipv6=0, addrgenmode eui64)",
				"interface", s.Interface, "tries", failed)
		}
	}
	multicast() // a starting router's first advertisement (RFC 4861 §6.2.4)
	for {
		if at, ok := q.next(); ok {
			wake.Reset(time.Until(at))
		} else {
			wake.Stop()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			multicast()
		case src := <-solicited:
			q.add(src, time.Now(), rand.N(MaxRADelay+1))
		case <-wake.C:
			for _, to := range q.due(time.Now()) {
				if !to.IsValid() {
					multicast()
				} else {
					s.send(to, log)
				}
			}
		}
	}
}

// linkLocalRetry is how soon an advertisement to all nodes that could not
// go (the interface's link-local address not usable yet) is tried again.
const linkLocalRetry = time.Second

// linkLocalPatience is how many tries in a row without a usable
// link-local address (DAD takes about a second once the link is up) make
// a warning: the interface has none.
const linkLocalPatience = 10

// send sends the advertisement to to, or to all nodes when to is the zero
// Addr, from the interface's link-local address: RFC 4861 §4.2 makes it
// the source of every advertisement and hosts drop others (§6.1.2). Left
// to itself the kernel would pick a global address while the link-local
// one is tentative (a bridge with no port up yet). It reports whether the
// advertisement went.
func (s *Sender) send(to netip.Addr, log *slog.Logger) bool {
	dst := allNodes
	if to.IsValid() {
		dst = &net.IPAddr{IP: to.AsSlice(), Zone: s.ifi.Name}
	}
	src, ok := linkLocal(s.ifi)
	if !ok {
		log.Debug("ra: no link-local address yet, advertisement deferred", "interface", s.Interface)
		return false
	}
	cm := &ipv6.ControlMessage{IfIndex: s.ifi.Index, HopLimit: 255, Src: src.AsSlice()}
	if _, err := s.conn.IPv6PacketConn().WriteTo(s.msg, cm, dst); err != nil {
		// EINVAL: the link-local address is still tentative (in DAD).
		log.Debug("ra: send failed", "interface", s.Interface, "to", dst, "src", src, "err", err)
		return false
	}
	return true
}

// linkLocal returns the interface's link-local unicast address.
func linkLocal(ifi *net.Interface) (netip.Addr, bool) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	return firstLinkLocal(addrs)
}

// firstLinkLocal picks the first IPv6 link-local unicast address of addrs.
func firstLinkLocal(addrs []net.Addr) (netip.Addr, bool) {
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if ok && ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast() {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// readSolicitations passes the source of each valid router solicitation
// received on the interface to solicited (dropping it when the loop is that
// far behind), until the socket is closed.
func (s *Sender) readSolicitations(solicited chan<- netip.Addr) {
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := s.conn.IPv6PacketConn().ReadFrom(buf)
		if err != nil {
			return
		}
		from, ok := validSolicitation(buf[:n], cm, src, s.ifi.Index)
		if !ok {
			continue
		}
		select {
		case solicited <- from:
		default:
		}
	}
}

// validSolicitation checks a received ICMPv6 message as RFC 4861 §6.1.1
// asks of a router solicitation and returns its source (unspecified: the
// sender has no address yet).
func validSolicitation(b []byte, cm *ipv6.ControlMessage, src net.Addr, ifIndex int) (netip.Addr, bool) {
	if len(b) < 8 || b[0] != byte(ipv6.ICMPTypeRouterSolicitation) || b[1] != 0 {
		return netip.Addr{}, false
	}
	if cm != nil && ((cm.IfIndex != 0 && cm.IfIndex != ifIndex) || (cm.HopLimit != 0 && cm.HopLimit != 255)) {
		return netip.Addr{}, false
	}
	ia, ok := src.(*net.IPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	from, ok := netip.AddrFromSlice(ia.IP)
	if !ok || !from.Is6() || from.IsMulticast() {
		return netip.Addr{}, false
	}
	from = from.WithZone("")
	if from.IsUnspecified() && hasSourceLinkLayer(b[8:]) {
		return netip.Addr{}, false // §6.1.1: no source link-layer option from ::
	}
	return from, true
}

// hasSourceLinkLayer reports whether the options (RFC 4861 §4.6) hold a
// source link-layer address option; false also when they are malformed.
func hasSourceLinkLayer(opts []byte) bool {
	for len(opts) >= 2 && opts[1] != 0 && len(opts) >= 8*int(opts[1]) {
		if opts[0] == 1 {
			return true
		}
		opts = opts[8*int(opts[1]):]
	}
	return false
}
