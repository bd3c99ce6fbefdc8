package dhcp4

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// arpreq is struct arpreq of <net/if_arp.h>, filled as dnsmasq does
// (src/dhcp.c) to reach a client that has no address yet.
type arpreq struct {
	pa      unix.RawSockaddrInet4 // protocol address
	ha      unix.RawSockaddr      // hardware address: family ARPHRD_ETHER, data the MAC
	flags   int32
	netmask unix.RawSockaddrInet4
	dev     [unix.IFNAMSIZ]byte
}

// atfCom marks a completed ARP entry (ATF_COM of <net/if_arp.h>).
const atfCom = 0x02

// setARP installs the neighbour entry ip → mac on ifname with ioctl
// SIOCSARP on the socket rc, so that a reply to ip goes out as a unicast
// frame to mac although the client cannot answer ARP yet (RFC 2131 §4.1).
func setARP(rc syscall.RawConn, ifname string, ip netip.Addr, mac net.HardwareAddr) error {
	if !ip.Is4() || len(mac) != 6 || len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("dhcp4: arp entry %v → %v on %q: want IPv4, Ethernet and a short name", ip, mac, ifname)
	}
	var req arpreq
	req.pa.Family = unix.AF_INET
	req.pa.Addr = ip.As4()
	req.ha.Family = unix.ARPHRD_ETHER
	for i, b := range mac {
		req.ha.Data[i] = int8(b)
	}
	req.flags = atfCom
	copy(req.dev[:], ifname)
	var ioErr error
	err := rc.Control(func(fd uintptr) {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.SIOCSARP, uintptr(unsafe.Pointer(&req)))
		if errno != 0 {
			ioErr = errno
		}
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		return fmt.Errorf("dhcp4: arp entry %v → %v on %s: %w", ip, mac, ifname, err)
	}
	return nil
}
