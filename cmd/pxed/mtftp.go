package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"pxed/internal/config"
	"pxed/internal/dhcp4"
	"pxed/internal/pxe"
	"pxed/internal/tftp"
)

// multicastTFTP builds the TFTP server's multicast part from the
// tftp_multicast section, or nil when it is off.
func multicastTFTP(cfg *config.Config, log *slog.Logger) *tftp.Multicast {
	rfc2090, pxeFiles := cfg.MulticastFiles()
	if rfc2090 == nil {
		return nil
	}
	m := cfg.TFTPMulticast
	cport, sport := m.MTFTPPorts()
	port := uint16(m.Port)
	return &tftp.Multicast{Groups: m.MulticastGroups(), Port: port, TTL: m.TTL, Files: rfc2090, PXEFiles: pxeFiles,
		PXEClientPort: cport, PXEServerPort: sport,
		OnSession: func(s tftp.MulticastSession) {
			kind := "rfc2090"
			if s.PXE {
				kind = "pxe-mtftp"
			}
			log.Info("tftp: multicast session completed", "kind", kind, "file", s.Filename, "group", s.Group,
				"clients", s.Clients, "done", s.Done, "bytes_sent", s.Bytes, "size", s.Size, "dur", s.Dur)
		}}
}

// mtftpTable offers files by PXE MTFTP in DHCP (dhcp4.MTFTPTable).
type mtftpTable struct {
	m             *tftp.Multicast
	listen, delay uint8
}

func newMTFTPTable(cfg *config.Config, m *tftp.Multicast) dhcp4.MTFTPTable {
	if m == nil || m.PXEFiles == nil {
		return nil
	}
	li, de := cfg.TFTPMulticast.MTFTPWaits()
	return mtftpTable{m: m, listen: li, delay: de}
}

func (t mtftpTable) MTFTP(file string) (pxe.MTFTP, bool) {
	g, cp, sp, ok := t.m.PXEParams(file)
	if !ok {
		return pxe.MTFTP{}, false
	}
	return pxe.MTFTP{Addr: g, ClientPort: cp, ServerPort: sp, Timeout: t.listen, Delay: t.delay}, true
}

// listenMTFTP opens the PXE MTFTP server port on tftp_addr's host.
func listenMTFTP(cfg *config.Config, m *tftp.Multicast) (net.PacketConn, error) {
	if m == nil || m.PXEFiles == nil {
		return nil, nil
	}
	host, _, err := net.SplitHostPort(cfg.TFTPAddr)
	if err != nil {
		return nil, fmt.Errorf("tftp: mtftp: tftp_addr %q: %w", cfg.TFTPAddr, err)
	}
	_, sport := cfg.TFTPMulticast.MTFTPPorts()
	addr := net.JoinHostPort(host, strconv.Itoa(int(sport)))
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("tftp: mtftp: listen %s: %w", addr, err)
	}
	return c, nil
}

func registerMulticastMetrics(reg *prometheus.Registry, t *tftp.Server) {
	if t == nil || t.Multicast == nil {
		return
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_tftp_multicast_sessions_total",
		Help: "Multicast TFTP sessions (RFC 2090 and PXE MTFTP) started."}, func() float64 { return float64(t.Stats().MulticastSessions) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_tftp_multicast_bytes_total",
		Help: "DATA payload bytes multicast sessions sent (each datagram once, whatever the number of receivers)."},
		func() float64 { return float64(t.Stats().MulticastBytes) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pxed_tftp_multicast_active",
		Help: "Multicast TFTP sessions running."}, func() float64 { return float64(t.Stats().MulticastActive) }))
}
