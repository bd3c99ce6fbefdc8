package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"pxed/internal/api"
	"pxed/internal/boot"
	"pxed/internal/config"
	"pxed/internal/connlimit"
	"pxed/internal/dhcp4"
	"pxed/internal/dhcp6"
	"pxed/internal/events"
	"pxed/internal/httpboot"
	"pxed/internal/procs"
	"pxed/internal/tftp"
	"pxed/internal/web"
)

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs every part the configuration enables until ctx ends. Sockets
// are opened first, so a port in use or a missing interface fails at start.
// file, when set, is the configuration file reloaded on SIGHUP and when it
// changes (flags applied over it again).
func serve(ctx context.Context, cfg *config.Config, logw io.Writer, file string, flags *serverFlags) error {
	log := newLogger(cfg, logw)
	if cfg.Cluster.Enabled && cfg.Cluster.ServerID == "" {
		// Named once: the cluster membership and the DHCPv6 DUID file
		// both read cfg.Cluster.ServerID.
		id, err := serverID(cfg)
		if err != nil {
			return err
		}
		cfg.Cluster.ServerID = id
	}
	lim := cfg.Limits
	fitDescriptors(&lim, openFileLimit(), log)
	if subs, err := cfg.ServerSubnets(); err == nil && cfg.DHCP.Mode == config.ModeServer {
		warnNeighbourTable(onLinkAddresses(subs), neighbourLimit(), log)
	}
	evlog := &events.Log{Logger: log, PerMachine: lim.EventsPerMachine, MaxMachines: lim.Machines,
		MaxBytes: int64(lim.EventsMemoryMB) << 20, MaxAddresses: lim.Addresses}
	deps := &fleetDeps{choices: &boot.Choices{}} // menu items chosen (boot.Menus)
	choices := deps.choices
	bc := deps.baseConfig(cfg)
	sec, err := newSecurity(cfg, bc, log) // security.go: tokens, secret URLs, TLS
	if err != nil {
		return err
	}
	// A reload builds the configuration again: it keeps the machines'
	// secret URLs, HTTPS Boot and check-in tokens (fleet.go).
	deps.machineToken, deps.httpsPort, deps.checkinToken = bc.MachineToken, bc.HTTPSPort, sec.Key.CheckinToken
	bc.CheckinToken = deps.checkinToken
	// The catalog: every request decides from one snapshot of it; a
	// reload or an API change stores a new one (fleet.go).
	catalog := &boot.Catalog{}
	inv, closeInv, err := openFleet(ctx, cfg, catalog, bc, evlog, log)
	if err != nil {
		return err
	}
	defer closeInv()
	if len(cfg.Profiles) == 0 {
		log.Info("no boot profile yet: serving files only and answering no firmware until profiles are added (configuration file or PUT /api/profiles/NAME)")
	}

	httpPort := 8080
	if _, p, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
		if n, err := strconv.Atoi(p); err == nil && n != 0 {
			httpPort = n
		}
	}

	for _, w := range cfg.LoaderWarnings() {
		log.Warn(w)
	}
	for _, n := range cfg.MenuNotes() {
		log.Info(n)
	}

	// TFTP: the machines' directories (boot/<mac>/: generated loader
	// configurations, profile files), then the boot directory, then the
	// iPXE directory.
	var loaderN loaderCounts
	var tftpSrv *tftp.Server
	var tftpConn, mtftpConn net.PacketConn
	mcast := multicastTFTP(cfg, log.With("proto", "tftp")) // mtftp.go
	if cfg.TFTPAddr != "off" {
		tftpSrv = &tftp.Server{Handler: machineTFTP(catalog, evlog, tftpOwner(cfg, evlog, log), &loaderN, httpPort, tftpHandler(cfg)), Logger: log.With("proto", "tftp"),
			MaxTransfers: lim.TFTPTransfers, MaxPerClient: lim.TFTPTransfersPerClient, QueueLen: lim.TFTPQueue,
			QueueWait: lim.TFTPQueueWait.D(), MaxTimeout: lim.TFTPMaxTimeout.D(),
			OnStart: func(r tftp.Request) {
				evlog.Record(events.Event{IP: r.Client.Addr(), Stage: events.StageTFTPStart, Detail: r.Filename + tftpOptions(r.Options)})
			},
			OnDone:            func(t tftp.Transfer) { evlog.Record(tftpEvent(t)) },
			Multicast:         mcast,
			DisableSharedPort: !cfg.SharedPort(),
		}
		c, err := net.ListenPacket("udp", cfg.TFTPAddr)
		if err != nil {
			return fmt.Errorf("tftp: listen %s: %w", cfg.TFTPAddr, err)
		}
		tftpConn = c
	}

	// HTTP: boot files, scripts, API, metrics.
	mux := http.NewServeMux()
	hb := &httpboot.Handler{Boot: catalog, Dirs: cfg.FileDirs(), HTTPPort: httpPort, Events: evlog, Logger: log.With("proto", "http"),
		WriteTimeout: lim.HTTPWriteTimeout.D()}
	if tftpSrv != nil && lim.HTTPChunksDuringTFTP > 0 {
		// Firmware's TFTP first: kernels over HTTP yield while NBPs go out.
		// They yield only while the NBPs make progress (ACKs come in):
		// transfers whose clients went silent do not hold kernels back.
		hb.Yield = &httpboot.Yield{Busy: func() bool { return tftpSrv.InProgress() > 0 }, Max: lim.HTTPChunksDuringTFTP,
			Progress: func() int64 { return tftpSrv.Acks() + tftpSrv.MulticastBytes() }}
	}
	hb.Register(mux)
	apiHandler := &api.Handler{Events: evlog, Fleet: inv, CheckinAuth: sec.Key.VerifyCheckin}
	var dsrv *dhcp4.Server
	var leases *leaseServer
	if cfg.DHCP.Mode == config.ModeServer || cfg.DHCP6.Mode == config.ModeServer {
		ls, err := openLeaseServer(ctx, cfg, catalog, log)
		if err != nil {
			if tftpConn != nil {
				tftpConn.Close()
			}
			return err
		}
		leases = ls
		defer leases.close(log)
		if err := leases.joinCluster(ctx); err != nil {
			if tftpConn != nil {
				tftpConn.Close()
			}
			return err
		}
		if leases.member != nil {
			mux.HandleFunc("GET /api/cluster", clusterAPI(leases.member))
		}
	}
	switch cfg.DHCP.Mode {
	case config.ModeProxy, config.ModeBootServer:
		dsrv = &dhcp4.Server{Interfaces: cfg.Interfaces, HTTPPort: httpPort, Events: evlog, Logger: log.With("proto", "dhcp"),
			Responder: &dhcp4.Proxy{Boot: catalog, MTFTP: newMTFTPTable(cfg, mcast), BootServerOnly: cfg.DHCP.Mode == config.ModeBootServer}}
	case config.ModeServer:
		leases.full.MTFTP = newMTFTPTable(cfg, mcast)
		dsrv = &dhcp4.Server{Interfaces: cfg.Interfaces, Responder: leases.full, HTTPPort: httpPort,
			Workers: dhcp4.WorkersFor(cfg.ProbeTimeout()), Events: evlog, Logger: log.With("proto", "dhcp")}
	}
	if dsrv != nil {
		dsrv.Choices, dsrv.MulticastGroups = choices, cfg.MenuMulticastGroups()
		dsrv.Fleet = inv
	}
	var d6 *dhcp6.Server
	var duid dhcpv6.DUID // nil: one per interface, from its MAC
	if cfg.DHCP6.Mode != config.ModeOff && cfg.DataDir != "" {
		file, err := duidFileFor(cfg)
		var d dhcpv6.DUID
		if err == nil {
			d, err = serverDUID(cfg.DataDir, file, cfg.Interfaces, time.Now())
		}
		if err != nil {
			if tftpConn != nil {
				tftpConn.Close()
			}
			return err
		}
		duid = d
	}
	switch cfg.DHCP6.Mode {
	case config.ModeProxy:
		d6 = &dhcp6.Server{Interfaces: cfg.Interfaces, Proxy: &dhcp6.Proxy{Boot: catalog}, HTTPPort: httpPort, DUID: duid,
			Events: evlog, Logger: log.With("proto", "dhcp6")}
	case config.ModeServer:
		d6 = &dhcp6.Server{Interfaces: cfg.Interfaces, Proxy: &dhcp6.Proxy{Boot: catalog}, Full: leases.full6, HTTPPort: httpPort, DUID: duid,
			Events: evlog, Logger: log.With("proto", "dhcp6")}
	}
	if d6 != nil {
		d6.Fleet = inv
	}
	if leases != nil {
		apiHandler.Leases = leases.apiLeases
	}
	rw := newRogueWatch(cfg, evlog, log) // rogue.go: other DHCP servers on our networks
	if rw != nil && leases != nil && leases.member != nil {
		rw.det.Peer = leases.member.IsPeer // cluster peers answer the same clients by design
	}
	if rw != nil {
		apiHandler.Rogues = rw.apiRogues
	}
	apiHandler.Register(mux)
	stream := &api.Stream{Events: evlog, Logger: log.With("proto", "http"), Extra: machineMessages(inv)}
	stream.Register(mux)           // GET /api/events
	(&web.Handler{}).Register(mux) // the web page at / and /ui/
	hl, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		if tftpConn != nil {
			tftpConn.Close()
		}
		return fmt.Errorf("http: listen %s: %w", cfg.HTTPAddr, err)
	}
	if err := sec.listen(); err != nil { // api_addr, https_boot.addr
		hl.Close()
		if tftpConn != nil {
			tftpConn.Close()
		}
		return err
	}
	conns := &connlimit.Listener{Listener: hl, Max: lim.HTTPConnections, PerClient: lim.HTTPConnectionsPerClient,
		Logger: log.With("proto", "http")}
	reg := prometheus.NewRegistry()
	// The scheduler's size follows the load (internal/procs): one P while
	// pxed uses less than half a core.
	gov, noGov := procs.New(log.With("part", "procs"))
	if gov != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pxed_go_procs",
			Help: "Ps (GOMAXPROCS) the Go scheduler runs now: 1 under a light load, every CPU under a heavy one."},
			func() float64 { return float64(gov.Procs()) }))
	} else {
		log.Debug("scheduler size fixed", "why", noGov, "procs", runtime.GOMAXPROCS(0))
	}
	if leases != nil && leases.member != nil {
		registerClusterMetrics(reg, leases.member)
	}
	registerMetrics(reg, dsrv, tftpSrv, hb)
	registerMulticastMetrics(reg, tftpSrv)
	registerLimitMetrics(reg, evlog, conns)
	registerStreamMetrics(reg, stream)
	registerLoaderMetrics(reg, &loaderN, hb)
	registerFleetMetrics(reg, inv)
	if d6 != nil {
		registerDHCP6Metrics(reg, d6)
	}
	if rw != nil {
		reg.MustRegister(rogueCollector{rw.det})
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	// Every phase of a connection is bounded: headers (slowloris), the
	// whole request, idle keep-alive, and a response that stops
	// progressing (httpboot moves the deadline with each chunk it sends).
	httpSrv := &http.Server{Handler: sec.plainHandler(mux),
		ReadHeaderTimeout: lim.HTTPHeaderTimeout.D(),
		ReadTimeout:       2 * lim.HTTPHeaderTimeout.D(),
		WriteTimeout:      lim.HTTPWriteTimeout.D(),
		IdleTimeout:       lim.HTTPIdleTimeout.D(),
		MaxHeaderBytes:    lim.HTTPMaxHeaderBytes,
		ConnState:         conns.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	httpSrv.RegisterOnShutdown(stream.Close) // event streams end, not hold the shutdown

	// What is open so far, closed again when a later socket fails.
	opened := []io.Closer{hl}
	if tftpConn != nil {
		opened = append(opened, tftpConn)
	}
	fail := func(err error) error {
		sec.close()
		for _, c := range opened {
			c.Close()
		}
		return err
	}
	var socks []*dhcp4.Socket
	if dsrv != nil {
		if socks, err = dsrv.Open(); err != nil {
			return fail(err)
		}
		for _, sk := range socks {
			opened = append(opened, sk)
		}
	}

	var socks6 []*dhcp6.Socket
	if d6 != nil {
		var skipped []dhcp6.Skipped
		if socks6, skipped, err = d6.Open(); err != nil {
			return fail(err)
		}
		for _, sk := range socks6 {
			opened = append(opened, sk)
		}
		role := "ProxyDHCPv6"
		if d6.Full != nil {
			role = "DHCPv6 server"
		}
		for _, sk := range skipped {
			log.Info(role+" off on this interface", "iface", sk.Interface, "why", sk.Reason)
		}
		if len(socks6) > 0 {
			log.Info(role+" on (UEFI PXE and HTTP Boot over IPv6, iPXE)", "sockets", len(socks6))
		}
	}

	if rw != nil {
		rw.open(cfg.Interfaces, log)
		for _, sk := range rw.socks {
			opened = append(opened, sk)
		}
	}

	ras, err := openRouterAdvertisements(cfg, log)
	if err != nil {
		return fail(err)
	}
	if tftpSrv != nil {
		if mtftpConn, err = listenMTFTP(cfg, mcast); err != nil {
			return fail(err)
		}
	}

	errc := make(chan error, 8)
	if tftpSrv != nil {
		go func() { errc <- tftpSrv.Serve(tftpConn) }()
	}
	if mtftpConn != nil {
		go func() { errc <- tftpSrv.ServeMTFTP(mtftpConn) }()
	}
	go func() { errc <- httpSrv.Serve(conns) }()
	sec.serve(httpSrv, mux, evlog, errc)
	dctx, dcancel := context.WithCancel(ctx)
	defer dcancel()
	dhcpDone := make(chan struct{})
	if dsrv != nil {
		go func() { defer close(dhcpDone); errc <- dsrv.Run(dctx, socks) }()
	} else {
		close(dhcpDone)
	}
	dhcp6Done := make(chan struct{})
	if d6 != nil {
		go func() { defer close(dhcp6Done); errc <- d6.Run(dctx, socks6) }()
	} else {
		close(dhcp6Done)
	}
	if leases != nil {
		leases.runExpiry(dctx)
	}
	invDone := make(chan struct{})
	go func() { defer close(invDone); inv.Run(dctx) }()
	if file != "" {
		rl := &reloader{file: file, flags: flags, running: cfg, log: log, ev: evlog,
			apply: func(c *config.Config) { inv.SetBase(deps.baseConfig(c)) }}
		go rl.run(dctx)
	}
	for _, r := range ras {
		go r.Run(dctx)
	}
	if gov != nil {
		go gov.Run(dctx)
	}
	if rw != nil {
		go rw.run(dctx)
	}
	log.Info("pxed serving", "interfaces", cfg.Interfaces, "dhcp", cfg.DHCP.Mode, "dhcp6", cfg.DHCP6.Mode, "tftp", cfg.TFTPAddr,
		"http", hl.Addr().String(), "boot_files", bc.BootFiles, "default_profile", bc.Default, "unknown_machines", string(bc.Unknown))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		if errors.Is(runErr, http.ErrServerClosed) || errors.Is(runErr, net.ErrClosed) {
			runErr = nil
		}
	}
	log.Info("pxed stopping")
	dcancel()
	<-dhcpDone // no request is in flight when the lease store closes
	<-dhcp6Done
	<-invDone // the inventory's last changes are written
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(sctx)
	sec.shutdown(sctx)
	if tftpSrv != nil {
		_ = tftpSrv.Shutdown(sctx)
	}
	return runErr
}

// tftpHandler serves cfg.FileDirs in order: the boot directory, then the
// iPXE directory.
func tftpHandler(cfg *config.Config) tftp.Handler {
	var dirs []tftp.Handler
	for _, d := range cfg.FileDirs() {
		dirs = append(dirs, tftp.Dir(d))
	}
	return func(req tftp.Request) (tftp.File, int64, error) {
		err := error(tftp.ErrNotFound)
		for _, h := range dirs {
			f, size, e := h(req)
			if e == nil {
				return f, size, nil
			}
			if !errors.Is(e, tftp.ErrNotFound) {
				return nil, 0, e
			}
			err = e
		}
		return nil, 0, err
	}
}

func tftpOptions(o map[string]string) string {
	if len(o) == 0 {
		return ""
	}
	s := ""
	for _, k := range []string{"blksize", "tsize", "windowsize", "timeout"} {
		if v, ok := o[k]; ok {
			s += " " + k + "=" + v
		}
	}
	return s
}

func tftpEvent(t tftp.Transfer) events.Event {
	e := events.Event{IP: t.Client.Addr(), Detail: t.Filename, Bytes: t.Bytes, Dur: t.Dur}
	switch {
	case t.Err == nil:
		e.Stage = events.StageTFTPDone
		e.Detail = fmt.Sprintf("%s blksize=%d windowsize=%d", t.Filename, t.Blksize, t.Windowsize)
		if t.Multicast.IsValid() {
			e.Detail += " multicast=" + t.Multicast.String() // a multicast session's client completed
		}
	case t.Aborted:
		// UEFI firmware asks for tsize, then aborts on purpose (error 8).
		e.Stage = events.StageTFTPError
		e.Detail = t.Filename + ": aborted by client (" + t.Err.Error() + "; normal for a UEFI size probe)"
	default:
		e.Stage = events.StageTFTPError
		e.Detail = t.Filename + ": " + t.Err.Error()
	}
	return e
}

func registerMetrics(reg *prometheus.Registry, d *dhcp4.Server, t *tftp.Server, h *httpboot.Handler) {
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	if d != nil {
		counter("pxed_dhcp_received_total", "DHCP packets read.", func() float64 { return float64(d.Stats().Received) })
		counter("pxed_dhcp_malformed_total", "DHCP packets dropped as malformed.", func() float64 { return float64(d.Stats().Malformed) })
		counter("pxed_dhcp_ignored_total", "Valid DHCP packets not answered.", func() float64 { return float64(d.Stats().Ignored) })
		counter("pxed_dhcp_replies_total", "DHCP replies sent.", func() float64 { return float64(d.Stats().Replied) })
		counter("pxed_dhcp_send_errors_total", "DHCP replies that could not be sent (the socket's send buffer stayed full, or the kernel refused them).",
			func() float64 { return float64(d.Stats().SendErrs) })
		counter("pxed_dhcp_overload_dropped_total", "DHCP packets dropped because every worker was busy.", func() float64 { return float64(d.Stats().Overload) })
		counter("pxed_dhcp_unsaved_total", "DHCP replies withheld because the lease write they announce failed.", func() float64 { return float64(d.Stats().Unsaved) })
		counter("pxed_dhcp_pool_exhausted_total", "DHCPDISCOVERs not answered because their pool was empty.", func() float64 { return float64(d.Stats().PoolExhausted) })
		counter("pxed_dhcp_peer_share_total", "DHCPDISCOVERs and broadcast DHCPREQUESTs left to the cluster peer that owns the client.",
			func() float64 { return float64(d.Stats().PeerShare) })
		counter("pxed_dhcp_starvation_total", "DHCPDISCOVERs of new clients past the starvation threshold.", func() float64 { return float64(d.Stats().Starvation) })
		counter("pxed_dhcp_foreign_total", "DHCPDECLINEs and DHCPRELEASEs refused as not from the lease holder.", func() float64 { return float64(d.Stats().Foreign) })
		counter("pxed_pxe_menu_offers_total", "DHCP replies carrying a PXE boot menu.", func() float64 { return float64(d.Stats().MenuOffers) })
		counter("pxed_pxe_menu_items_total", "PXE boot server requests for a menu item answered.", func() float64 { return float64(d.Stats().MenuItems) })
		counter("pxed_pxe_menu_unknown_total", "PXE boot server requests for a menu item or layer not served (not answered).",
			func() float64 { return float64(d.Stats().MenuUnknown) })
	}
	if t != nil {
		counter("pxed_tftp_malformed_total", "TFTP packets dropped as malformed.", func() float64 { return float64(t.Stats().Malformed) })
		counter("pxed_tftp_refused_total", "TFTP requests refused.", func() float64 { return float64(t.Stats().Refused) })
		counter("pxed_tftp_transfers_ok_total", "TFTP transfers completed.", func() float64 { return float64(t.Stats().TransfersOK) })
		counter("pxed_tftp_transfers_failed_total", "TFTP transfers failed.", func() float64 { return float64(t.Stats().TransfersFailed) })
		counter("pxed_tftp_transfers_aborted_total", "TFTP transfers aborted by the client.", func() float64 { return float64(t.Stats().TransfersAborted) })
		counter("pxed_tftp_bytes_total", "TFTP payload bytes acknowledged.", func() float64 { return float64(t.Stats().Bytes) })
		counter("pxed_tftp_limit_refused_total", "TFTP read requests refused with \"server busy\": admission queue full, waited too long, or no socket.",
			func() float64 { return float64(t.Stats().Busy) })
		counter("pxed_tftp_timeout_clamped_total", "TFTP timeout options above limits.tftp_max_timeout, not acknowledged.",
			func() float64 { return float64(t.Stats().TimeoutClamped) })
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pxed_tftp_transfers_active", Help: "TFTP transfers in progress."},
			func() float64 { return float64(t.Stats().Active) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pxed_tftp_queued", Help: "TFTP read requests waiting for a transfer slot."},
			func() float64 { return float64(t.Stats().Queued) }))
	}
	counter("pxed_http_errors_total", "HTTP boot requests answered with an error.", func() float64 { return float64(h.Errors()) })
	counter("pxed_http_chunks_yielded_total", "HTTP file chunks that waited while TFTP transfers ran (limits.http_chunks_during_tftp).",
		func() float64 { return float64(h.Yield.Stats().Held) })
	counter("pxed_http_chunks_yield_timeouts_total", "HTTP file chunks sent after waiting 1 s for a slot while TFTP transfers ran.",
		func() float64 { return float64(h.Yield.Stats().TimedOut) })
}

func registerDHCP6Metrics(reg *prometheus.Registry, d *dhcp6.Server) {
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	counter("pxed_dhcp6_received_total", "DHCPv6 packets read.", func() float64 { return float64(d.Stats().Received) })
	counter("pxed_dhcp6_malformed_total", "DHCPv6 packets dropped as malformed.", func() float64 { return float64(d.Stats().Malformed) })
	counter("pxed_dhcp6_pool_exhausted_total", "DHCPv6 IAs answered NoAddrsAvail (server role): the pool has no address left.",
		func() float64 { return float64(d.Stats().PoolExhausted) })
	counter("pxed_dhcp6_ignored_total", "Valid DHCPv6 messages not answered.", func() float64 { return float64(d.Stats().Ignored) })
	counter("pxed_dhcp6_peer_share_total", "DHCPv6 Solicits, Rebinds and Confirms left to the cluster peer that owns the client.",
		func() float64 { return float64(d.Stats().PeerShare) })
	counter("pxed_dhcp6_replies_total", "DHCPv6 replies sent.", func() float64 { return float64(d.Stats().Replied) })
	counter("pxed_dhcp6_send_errors_total", "DHCPv6 replies that could not be sent.", func() float64 { return float64(d.Stats().SendErrs) })
}

// registerLimitMetrics exposes what the limits hold and refuse.
func registerLimitMetrics(reg *prometheus.Registry, ev *events.Log, conns *connlimit.Listener) {
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("pxed_http_connections", "HTTP connections open.", func() float64 { return float64(conns.Stats().Open) })
	counter("pxed_http_connections_refused_total", "HTTP connections closed at once: the total or per-client limit was reached with no idle connection to reclaim.",
		func() float64 { return float64(conns.Stats().Refused) })
	counter("pxed_http_connections_reclaimed_total", "Idle HTTP connections closed to make room for new ones.",
		func() float64 { return float64(conns.Stats().Reclaimed) })
	gauge("pxed_events_machines", "Machines with a timeline.", func() float64 { return float64(ev.Stats().Machines) })
	counter("pxed_events_recorded_total", "Boot events recorded (each also sent to every event stream that keeps up).",
		func() float64 { return float64(ev.Stats().Recorded) })
	gauge("pxed_events_bytes", "Accounted bytes of all timelines.", func() float64 { return float64(ev.Stats().Bytes) })
	gauge("pxed_events_addresses", "Address-to-machine associations learned from DHCP.", func() float64 { return float64(ev.Stats().Addresses) })
	counter("pxed_events_evicted_total", "Machines whose timeline was forgotten to stay within limits.machines or limits.events_memory_mb.",
		func() float64 { return float64(ev.Stats().Evicted) })
	counter("pxed_events_claim_mismatch_total", "HTTP requests whose URL named another machine than the one DHCP taught for their address.",
		func() float64 { return float64(ev.Stats().ClaimMismatch) })
}
