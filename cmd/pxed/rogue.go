package main

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"pxed/internal/api"
	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/rogue"
)

// rogueWatch is rogue server detection as serve wires it: the detector and
// its packet sockets.
type rogueWatch struct {
	det   *rogue.Detector
	socks []*rogue.Socket
}

// newRogueWatch returns the detector for cfg, or nil when rogue_detection
// is off or pxed serves no DHCP.
func newRogueWatch(cfg *config.Config, evlog *events.Log, log *slog.Logger) *rogueWatch {
	role := func(m string) rogue.Role {
		switch m {
		case config.ModeProxy:
			return rogue.RoleProxy
		case config.ModeServer:
			return rogue.RoleServer
		}
		return rogue.RoleOff
	}
	d := &rogue.Detector{Role4: role(cfg.DHCP.Mode), Role6: role(cfg.DHCP6.Mode), Events: evlog,
		Seen: func(mac string) bool { return evlog.Timeline(mac) != nil }, Logger: log.With("proto", "rogue")}
	if !cfg.RogueDetectionOn() || (d.Role4 == rogue.RoleOff && d.Role6 == rogue.RoleOff) {
		return nil
	}
	return &rogueWatch{det: d}
}

// open opens the packet sockets; an interface that cannot be watched is
// logged and skipped (rogue detection is a report, not a service).
func (w *rogueWatch) open(ifaces []string, log *slog.Logger) {
	socks, skipped := w.det.Open(ifaces)
	for _, s := range skipped {
		log.Warn("rogue DHCP server detection off on this interface", "iface", s.Interface, "family", s.Family, "why", s.Reason)
	}
	w.socks = socks
	if len(socks) > 0 {
		log.Info("rogue DHCP server detection on", "sockets", len(socks))
	}
}

func (w *rogueWatch) run(ctx context.Context) { _ = w.det.Run(ctx, w.socks) }

// apiRogues is GET /api/rogues's list.
func (w *rogueWatch) apiRogues() []api.Rogue {
	str := func(a netip.Addr) string {
		if !a.IsValid() || a.IsUnspecified() {
			return ""
		}
		return a.String()
	}
	var out []api.Rogue
	for _, e := range w.det.Rogues() {
		r := api.Rogue{Server: e.Server.String(), MAC: e.MAC.String(), Interface: e.Interface, Family: e.Family,
			FirstSeen: e.FirstSeen, LastSeen: e.LastSeen, Count: e.Count, Kind: e.Kind, Type: e.Type, Relayed: e.Relayed,
			Offered: api.Offered{YIAddr: str(e.YIAddr), SIAddr: str(e.SIAddr), File: e.File, VendorClass: e.VendorClass}}
		if len(e.LastClient) > 0 {
			r.LastClient = e.LastClient.String()
		}
		out = append(out, r)
	}
	return out
}

// rogueCollector exposes pxed_rogue_dhcp_replies_total{server}: one series
// per server in the detector's bounded table (rogue.DefaultMaxServers),
// plus server="other" for replies from servers past it.
type rogueCollector struct{ det *rogue.Detector }

var (
	rogueRepliesDesc = prometheus.NewDesc("pxed_rogue_dhcp_replies_total",
		"DHCP and ProxyDHCP replies to boot clients from other servers, by server address (\"other\" past the table's bound).",
		[]string{"server"}, nil)
	rogueServersDesc = prometheus.NewDesc("pxed_rogue_dhcp_servers", "Other DHCP servers seen answering boot clients.", nil, nil)
	rogueFramesDesc  = prometheus.NewDesc("pxed_rogue_frames_total",
		"Frames the rogue detection filters passed up (server-to-client DHCP only; pxed's own replies and other traffic stay in the kernel).", nil, nil)
	rogueIgnoredDesc = prometheus.NewDesc("pxed_rogue_ignored_total",
		"Server-to-client DHCP replies seen and not reported: pxed's own, or expected (the address-only server beside ProxyDHCP).", nil, nil)
)

func (c rogueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rogueRepliesDesc
	ch <- rogueServersDesc
	ch <- rogueFramesDesc
	ch <- rogueIgnoredDesc
}

func (c rogueCollector) Collect(ch chan<- prometheus.Metric) {
	byServer := map[string]uint64{}
	for _, e := range c.det.Rogues() {
		byServer[e.Server.String()] += e.Count // the same server on several interfaces: one series
	}
	if n := c.det.Stats().Overflow; n > 0 {
		byServer["other"] += n
	}
	for s, n := range byServer {
		ch <- prometheus.MustNewConstMetric(rogueRepliesDesc, prometheus.CounterValue, float64(n), s)
	}
	st := c.det.Stats()
	ch <- prometheus.MustNewConstMetric(rogueServersDesc, prometheus.GaugeValue, float64(st.Servers))
	ch <- prometheus.MustNewConstMetric(rogueFramesDesc, prometheus.CounterValue, float64(st.Frames))
	ch <- prometheus.MustNewConstMetric(rogueIgnoredDesc, prometheus.CounterValue, float64(st.Ignored))
}
