package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// Transport6 carries one simulated client's DHCPv6 messages: Send
// transmits m to dst (AllDHCP6, or a boot service's address and port
// 4011); Receive returns the next message for this client or an error when
// ctx ends. Exchange6 is its only user, one goroutine at a time.
type Transport6 interface {
	Send(ctx context.Context, m *dhcpv6.Message, dst netip.AddrPort) error
	Receive(ctx context.Context) (*dhcpv6.Message, netip.AddrPort, error)
}

// Mux6 is a pair of UDP sockets on one interface (SO_BINDTODEVICE): port
// 546, the DHCPv6 client port, and port 4011, the port EDK II sends its
// boot service request from and gets the Reply on. Messages from either go
// to the client (Conn6) that sent a message with their transaction ID, so
// many simulated machines share one interface and its addresses: their
// Solicits leave from the interface's link-local address and tell the
// machines apart by their DUIDs. One machine (probe) or many (storm).
type Mux6 struct {
	iface      string
	dhcp, boot *net.UDPConn
	log        *slog.Logger

	mu   sync.Mutex
	subs map[dhcpv6.TransactionID]*Conn6

	unclaimed, malformed atomic.Int64
	wg                   sync.WaitGroup
}

// OpenMux6 opens the sockets of a Mux6 on interface iface and starts
// reading them until Close.
func OpenMux6(iface string, log *slog.Logger) (*Mux6, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Mux6{iface: iface, log: log, subs: map[dhcpv6.TransactionID]*Conn6{}}
	for _, port := range []int{546, BootServerPort} {
		lc := net.ListenConfig{Control: bindControl(iface, true)}
		pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", port))
		if err != nil {
			m.close()
			return nil, fmt.Errorf("client: listen on %s port %d (udp6): %w", iface, port, err)
		}
		if port == 546 {
			m.dhcp = pc.(*net.UDPConn)
		} else {
			m.boot = pc.(*net.UDPConn)
		}
	}
	for _, c := range []*net.UDPConn{m.dhcp, m.boot} {
		m.wg.Add(1)
		go m.read(c)
	}
	return m, nil
}

func (m *Mux6) close() {
	for _, c := range []*net.UDPConn{m.dhcp, m.boot} {
		if c != nil {
			c.Close()
		}
	}
}

// Close closes the sockets and waits for the readers.
func (m *Mux6) Close() error {
	m.close()
	m.wg.Wait()
	return nil
}

// Unclaimed counts the messages no client was waiting for.
func (m *Mux6) Unclaimed() int64 { return m.unclaimed.Load() }

func (m *Mux6) read(c *net.UDPConn) {
	defer m.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Debug("dhcp6 client read", "err", err)
			continue
		}
		msg, err := dhcpv6.MessageFromBytes(append([]byte(nil), buf[:n]...))
		if err != nil {
			m.malformed.Add(1)
			m.log.Debug("dhcp6 client: malformed message dropped", "from", from, "err", err)
			continue
		}
		m.mu.Lock()
		sub := m.subs[msg.TransactionID]
		m.mu.Unlock()
		if sub == nil {
			m.unclaimed.Add(1)
			continue
		}
		select {
		case sub.ch <- packet6{msg, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}:
		default: // the client is not reading: as a full NIC queue
		}
	}
}

// Conn returns a new client of m.
func (m *Mux6) Conn() *Conn6 { return &Conn6{m: m, ch: make(chan packet6, 32)} }

type packet6 struct {
	msg  *dhcpv6.Message
	from netip.AddrPort
}

// Conn6 is one client of a Mux6; it implements Transport6.
type Conn6 struct {
	m    *Mux6
	ch   chan packet6
	xids []dhcpv6.TransactionID
}

// Send implements Transport6: from port 4011 to a port 4011, else from
// port 546. A link-local or multicast destination goes out on the mux's
// interface.
func (c *Conn6) Send(ctx context.Context, msg *dhcpv6.Message, dst netip.AddrPort) error {
	c.m.mu.Lock()
	if _, ok := c.m.subs[msg.TransactionID]; !ok {
		c.m.subs[msg.TransactionID] = c
		c.xids = append(c.xids, msg.TransactionID)
	}
	c.m.mu.Unlock()
	conn := c.m.dhcp
	if dst.Port() == BootServerPort {
		conn = c.m.boot
	}
	if a := dst.Addr(); a.IsLinkLocalUnicast() || a.IsMulticast() {
		dst = netip.AddrPortFrom(a.WithZone(c.m.iface), dst.Port())
	}
	if _, err := conn.WriteToUDPAddrPort(msg.ToBytes(), dst); err != nil {
		return fmt.Errorf("client: send %s to %s on %s: %w", msg.MessageType, dst, c.m.iface, err)
	}
	return nil
}

// Receive implements Transport6.
func (c *Conn6) Receive(ctx context.Context) (*dhcpv6.Message, netip.AddrPort, error) {
	select {
	case p := <-c.ch:
		return p.msg, p.from, nil
	case <-ctx.Done():
		return nil, netip.AddrPort{}, ctx.Err()
	}
}

// Close stops delivering this client's messages.
func (c *Conn6) Close() {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for _, x := range c.xids {
		if c.m.subs[x] == c {
			delete(c.m.subs, x)
		}
	}
	c.xids = nil
}
