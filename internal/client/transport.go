package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Transport carries one simulated client's DHCP packets. Send transmits p
// to dst (255.255.255.255:67 for a broadcast, a server's address and port
// 4011 for boot server discovery); Receive returns the next packet
// addressed to this client (implementations may filter by chaddr) or an
// error when ctx ends. Exchange is its only user, one goroutine at a time.
type Transport interface {
	Send(ctx context.Context, p *dhcpv4.DHCPv4, dst netip.AddrPort) error
	Receive(ctx context.Context) (*dhcpv4.DHCPv4, netip.AddrPort, error)
}

// Well-known DHCP destinations.
var (
	BroadcastDHCP = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), 67)
)

// BootServerPort is the PXE boot server discovery port (PXE 2.1 §2.2.5).
const BootServerPort = 4011

// UDPTransport is a UDP socket on port 68 bound to one interface
// (SO_BINDTODEVICE) with SO_BROADCAST: one client per interface and host.
// Its packets leave from the interface's own address (0.0.0.0 when it has
// none and no route): unlike firmware, which sends from 0.0.0.0 before it
// has a lease; servers do not depend on that.
type UDPTransport struct {
	conn  *net.UDPConn
	iface string
	buf   []byte
}

// ListenUDP opens a UDPTransport on interface iface.
func ListenUDP(iface string) (*UDPTransport, error) {
	lc := net.ListenConfig{Control: bindControl(iface, true)}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		return nil, fmt.Errorf("client: listen on %s port 68: %w", iface, err)
	}
	return &UDPTransport{conn: pc.(*net.UDPConn), iface: iface, buf: make([]byte, 1500)}, nil
}

// bindControl sets SO_BINDTODEVICE (and SO_BROADCAST, SO_REUSEADDR when
// broadcast is true) on a socket before it is bound.
func bindControl(iface string, broadcast bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if iface != "" {
				if serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, iface); serr != nil {
					serr = fmt.Errorf("SO_BINDTODEVICE %s: %w", iface, serr)
					return
				}
			}
			if broadcast {
				if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); serr != nil {
					serr = fmt.Errorf("SO_BROADCAST: %w", serr)
					return
				}
				if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); serr != nil {
					serr = fmt.Errorf("SO_REUSEADDR: %w", serr)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// Send implements Transport.
func (t *UDPTransport) Send(ctx context.Context, p *dhcpv4.DHCPv4, dst netip.AddrPort) error {
	if _, err := t.conn.WriteToUDPAddrPort(p.ToBytes(), dst); err != nil {
		return fmt.Errorf("client: send %s to %s on %s: %w", p.MessageType(), dst, t.iface, err)
	}
	return nil
}

// Receive implements Transport: the next BOOTREPLY that decodes. Malformed
// packets and requests (other clients' broadcasts) are skipped.
func (t *UDPTransport) Receive(ctx context.Context) (*dhcpv4.DHCPv4, netip.AddrPort, error) {
	stop := context.AfterFunc(ctx, func() { t.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		t.conn.SetReadDeadline(dl)
	} else {
		t.conn.SetReadDeadline(time.Time{})
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, netip.AddrPort{}, err
		}
		n, from, err := t.conn.ReadFromUDPAddrPort(t.buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, netip.AddrPort{}, ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, netip.AddrPort{}, context.DeadlineExceeded
			}
			return nil, netip.AddrPort{}, fmt.Errorf("client: receive on %s: %w", t.iface, err)
		}
		p, err := dhcpv4.FromBytes(t.buf[:n])
		if err != nil || p.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		return p, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
	}
}

// Close closes the socket.
func (t *UDPTransport) Close() error { return t.conn.Close() }

// InterfaceMAC returns the hardware address of interface name.
func InterfaceMAC(name string) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("client: interface %q: %w", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("client: interface %q has no Ethernet address", name)
	}
	return ifi.HardwareAddr, nil
}
