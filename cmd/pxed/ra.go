package main

import (
	"fmt"
	"log/slog"
	"net/netip"

	"pxed/internal/config"
	"pxed/internal/ra"
)

// openRouterAdvertisements opens a router advertisement sender on every
// interface when router_advertisements.enabled is set; the prefixes default
// to those of each interface's global IPv6 addresses.
func openRouterAdvertisements(cfg *config.Config, log *slog.Logger) ([]*ra.Sender, error) {
	r := cfg.RouterAdvertisements
	if !r.Enabled {
		return nil, nil
	}
	var out []*ra.Sender
	for _, name := range cfg.Interfaces {
		prefixes := r.RAPrefixes()
		if len(prefixes) == 0 {
			prefixes = globalPrefixes(name)
		}
		s := &ra.Sender{Interface: name, Logger: log.With("proto", "ra"), Config: ra.Config{Managed: r.Managed, Other: r.OtherFlag(),
			Prefixes: prefixes, RouterLifetime: r.RouterLifetime.D(), Interval: r.Interval.D()}}
		if err := s.Open(); err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, fmt.Errorf("router_advertisements: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// globalPrefixes are the prefixes of the interface's global unicast IPv6
// addresses (ULAs included).
func globalPrefixes(name string) []netip.Prefix {
	ps, _ := config.SystemHost{}.InterfaceAddrs(name)
	var out []netip.Prefix
	for _, p := range ps {
		if ip := p.Addr(); ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() && p.Bits() <= 64 {
			out = append(out, p.Masked())
		}
	}
	return out
}
