// Package ra sends IPv6 router advertisements (RFC 4861 §4.2, §6.2) on a
// boot segment that has no router of its own: the M and O flags tell
// firmware and iPXE whether to ask DHCPv6 for an address or only for
// configuration (pxed's ProxyDHCPv6 answers the latter), and prefix
// information lets them configure addresses by SLAAC (RFC 4862). It sends
// one every Interval and answers router solicitations at once, so a
// machine that just started need not wait for the next one.
package ra

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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
		p.SetControlMessage(ipv6.FlagInterface, true), p.JoinGroup(ifi, &net.IPAddr{IP: net.ParseIP("ff02::2")})}
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

// Run advertises every Interval and on each router solicitation until ctx
// ends; it closes the socket.
func (s *Sender) Run(ctx context.Context) error {
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	iv := s.Config.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	solicited := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		s.conn.Close()
	}()
	go s.readSolicitations(solicited, log)
	log.Info("router advertisements", "interface", s.Interface, "managed", s.Config.Managed, "other", s.Config.Other,
		"prefixes", s.Config.Prefixes, "router_lifetime", s.Config.RouterLifetime, "interval", iv)
	t := time.NewTicker(iv)
	defer t.Stop()
	var last time.Time
	for {
		// RFC 4861 §6.2.6 asks for at most one advertisement per 3 s in
		// answer to solicitations: a flood of them costs one a 3 s.
		if time.Since(last) >= 3*time.Second || last.IsZero() {
			s.send(log)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			last = time.Time{}
		case <-solicited:
		}
	}
}

func (s *Sender) send(log *slog.Logger) {
	cm := &ipv6.ControlMessage{IfIndex: s.ifi.Index, HopLimit: 255}
	if _, err := s.conn.IPv6PacketConn().WriteTo(s.msg, cm, allNodes); err != nil {
		log.Warn("ra: send failed", "interface", s.Interface, "err", err)
	}
}

// readSolicitations signals solicited (without blocking) for each router
// solicitation received on the interface, until the socket is closed.
func (s *Sender) readSolicitations(solicited chan<- struct{}, log *slog.Logger) {
	buf := make([]byte, 1500)
	for {
		n, cm, _, err := s.conn.IPv6PacketConn().ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 8 || buf[0] != byte(ipv6.ICMPTypeRouterSolicitation) || (cm != nil && cm.IfIndex != s.ifi.Index) {
			continue
		}
		select {
		case solicited <- struct{}{}:
		default:
		}
	}
}
