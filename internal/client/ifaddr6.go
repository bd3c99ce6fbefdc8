package client

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// interfaceAddr6 returns the first global (or ULA) IPv6 address of
// interface name that is usable (not tentative), or the zero Addr.
func interfaceAddr6(name string) netip.Addr {
	a, _ := interfaceAddrs6(name)
	return a
}

// interfaceAddrs6 returns the first usable global address and whether a
// usable link-local address exists.
func interfaceAddrs6(name string) (global netip.Addr, linkLocal bool) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return netip.Addr{}, false
	}
	addrs, err := netlink.AddrList(link, unix.AF_INET6)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		switch {
		case ip.IsLinkLocalUnicast():
			linkLocal = true
		case ip.IsGlobalUnicast() && !global.IsValid():
			global = ip
		}
	}
	return global, linkLocal
}

// WaitLinkLocal waits up to wait for interface name to have a usable
// link-local address, the source of a DHCPv6 client's messages (EDK II
// waits out duplicate address detection the same way: PxeBcDhcp6Sarr on
// EFI_NO_MAPPING).
func WaitLinkLocal(ctx context.Context, name string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		if _, ll := interfaceAddrs6(name); ll {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("client: interface %s has no usable IPv6 link-local address after %v (is it up, with IPv6 enabled?)", name, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// configureLease6 puts the leased address on interface name for the
// downloads, as firmware does once DHCPv6 is done. DHCPv6 gives no prefix
// length (routers announce it): the probe assumes the /64 of the link,
// without duplicate address detection, as the address server vouched for
// it. undo removes it.
func configureLease6(name string, l *Lease6) (done string, undo func() error, err error) {
	if l == nil || !l.Addr.Is6() {
		return "", nil, fmt.Errorf("client: interface %s has no global IPv6 address and there is no lease to put on it", name)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return "", nil, fmt.Errorf("client: interface %s: %w", name, err)
	}
	pfx := netip.PrefixFrom(l.Addr, 64)
	a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(l.Addr.AsSlice()), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
	if err := netlink.AddrAdd(link, a); err != nil {
		return "", nil, fmt.Errorf("client: interface %s has no global IPv6 address and adding the lease %s failed: %w "+
			"(run as root, or give %s an address on the boot network)", name, pfx, err, name)
	}
	undo = func() error {
		if err := netlink.AddrDel(link, a); err != nil {
			return fmt.Errorf("client: remove %s from %s: %w", pfx, name, err)
		}
		return nil
	}
	return fmt.Sprintf("%s on %s for the downloads (removed afterwards; DHCPv6 names no prefix length, /64 assumed)", pfx, name), undo, nil
}
