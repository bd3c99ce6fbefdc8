package config

import (
	"net"
	"net/netip"

	"pxed/internal/udploop"
)

// Host is what Validate asks of the machine pxed runs on: which network
// interfaces it has and their addresses. cmd/pxed sets Config.Host to
// SystemHost; tests give a fake one. A nil Host is SystemHost.
type Host interface {
	// HasInterface reports whether a network interface of that name exists.
	HasInterface(name string) bool
	// InterfaceAddrs returns the interface's addresses, IPv4 and IPv6, each
	// with its prefix length.
	InterfaceAddrs(name string) ([]netip.Prefix, error)
}

// SystemHost is the Host pxed runs on, as package net sees it.
type SystemHost struct{}

// HasInterface reports whether net.InterfaceByName finds the interface.
func (SystemHost) HasInterface(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// InterfaceAddrs returns the interface's addresses; IPv4 ones are plain
// 4-byte addresses.
func (SystemHost) InterfaceAddrs(name string) ([]netip.Prefix, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, err
	}
	return udploop.InterfacePrefixes(ifi)
}

// host is c.Host, SystemHost when unset.
func (c *Config) host() Host {
	if c.Host == nil {
		return SystemHost{}
	}
	return c.Host
}

// ifaceAddr returns the first IPv4 address of an interface with its prefix.
func (c *Config) ifaceAddr(name string) (netip.Prefix, bool) {
	addrs, err := c.host().InterfaceAddrs(name)
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, p := range addrs {
		if p.Addr().Is4() {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
