package client

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// configureLease puts the leased address on interface name, as firmware
// does once DHCP is done, so that TFTP and HTTP can be checked from it. It
// returns what it did, for the report, and undo, which removes the address
// again. Callers use it only when the interface has no IPv4 address of its
// own: an interface that has one is left alone.
func configureLease(name string, l *Lease) (done string, undo func() error, err error) {
	if l == nil || !l.Addr.Is4() {
		return "", nil, fmt.Errorf("client: interface %s has no IPv4 address and there is no lease to put on it", name)
	}
	ones := 32
	if l.Mask != "" {
		m := net.ParseIP(l.Mask).To4()
		if m == nil {
			return "", nil, fmt.Errorf("client: lease %s: subnet mask %q is not an IPv4 mask", l.Addr, l.Mask)
		}
		var bits int
		if ones, bits = net.IPMask(m).Size(); bits == 0 {
			return "", nil, fmt.Errorf("client: lease %s: subnet mask %s is not contiguous", l.Addr, l.Mask)
		}
	}
	pfx := netip.PrefixFrom(l.Addr, ones)
	link, err := netlink.LinkByName(name)
	if err != nil {
		return "", nil, fmt.Errorf("client: interface %s: %w", name, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(l.Addr.AsSlice()), Mask: net.CIDRMask(ones, 32)}}
	if err := netlink.AddrAdd(link, a); err != nil {
		return "", nil, fmt.Errorf("client: interface %s has no IPv4 address and adding the lease %s failed: %w "+
			"(run as root, or give %s an address on the boot network)", name, pfx, err, name)
	}
	undo = func() error {
		if err := netlink.AddrDel(link, a); err != nil {
			return fmt.Errorf("client: remove %s from %s: %w", pfx, name, err)
		}
		return nil
	}
	return fmt.Sprintf("%s on %s for the downloads (removed afterwards)", pfx, name), undo, nil
}

// AddLeaseAddr returns a StormConfig.AddAddress for interface name: each
// address goes on the interface as a /32 without a prefix route (the
// interface's own prefix keeps routing), and is removed afterwards.
func AddLeaseAddr(name string) (func(netip.Addr) (func(), error), error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("client: interface %s: %w", name, err)
	}
	return func(a netip.Addr) (func(), error) {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(32, 32)}, Flags: unix.IFA_F_NOPREFIXROUTE}
		if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("client: add %s to %s: %w", a, name, err)
		}
		return func() { _ = netlink.AddrDel(link, addr) }, nil
	}, nil
}
