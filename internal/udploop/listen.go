package udploop

import (
	"context"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// SocketBuffer is the receive and send buffer of each socket Listen opens.
const SocketBuffer = 4 << 20

// Listen opens a UDP socket ("udp4" or "udp6") on addr, bound to the
// interface ifname (SO_BINDTODEVICE) so that it answers only there and
// knows where each packet came from, with SO_REUSEADDR, SO_BROADCAST when
// broadcast is set, and SocketBuffer bytes of buffer each way.
func Listen(network, ifname string, addr netip.AddrPort, broadcast bool) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if broadcast {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
					return
				}
			}
			// A rack powering on sends hundreds of requests within
			// milliseconds: a large receive buffer queues the burst
			// instead of dropping it (FORCE passes rmem_max as root).
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, SocketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, SocketBuffer)
			}
			// Replies waiting for a neighbour (ARP) to resolve are charged
			// to the send buffer: room for a flood of them, so replies to
			// everyone else still fit (and see SendWait).
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, SocketBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, SocketBuffer)
			}
			serr = unix.BindToDevice(int(fd), ifname)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.ListenPacket(context.Background(), network, addr.String())
}

// InterfacePrefixes returns the addresses of ifi with their prefix
// lengths; IPv4 addresses are plain 4-byte ones.
func InterfacePrefixes(ifi *net.Interface) ([]netip.Prefix, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		pn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(pn.IP)
		if !ok {
			continue
		}
		ones, bits := pn.Mask.Size()
		if bits == 32 {
			ip = ip.Unmap()
		}
		out = append(out, netip.PrefixFrom(ip, ones))
	}
	return out, nil
}
