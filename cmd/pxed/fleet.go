package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"pxed/internal/api"
	"pxed/internal/boot"
	"pxed/internal/config"
	"pxed/internal/events"
	"pxed/internal/fleet"
	"pxed/internal/store"
	"pxed/internal/store/postgres"
)

// machinesDB is the inventory's database file inside --data-dir: its own
// file, so that its batched writes never hold the SQLite write lock a
// lease commit (and the DHCPACK behind it) waits for.
const machinesDB = "machines.db"

// fleetDeps is what the fleet's wiring takes from serve.
type fleetDeps struct {
	choices *boot.Choices
	// checkinToken gives a machine's check-in token for the URLs of its
	// templates (the security part of the API sets it); nil: none.
	checkinToken func(mac string) string
	// machineToken and httpsPort: the machines' secret URLs and HTTPS
	// Boot (security.go), kept by every configuration built.
	machineToken func(mac net.HardwareAddr) string
	httpsPort    int
}

// baseConfig is the configuration file's part of the catalog.
func (d *fleetDeps) baseConfig(cfg *config.Config) *boot.Config {
	bc := cfg.Boot()
	if bc.Menus != nil {
		bc.Menus.Choices = d.choices
	}
	bc.CheckinToken = d.checkinToken
	bc.MachineToken, bc.HTTPSPort = d.machineToken, d.httpsPort
	return bc
}

// openFleet opens the inventory over the configuration's catalog: in the
// PostgreSQL database of store: / --store when there is one (shared with
// the other servers on it: each polls the others' changes every second),
// else in the data directory's database, else in memory.
func openFleet(ctx context.Context, cfg *config.Config, catalog *boot.Catalog, bc *boot.Config, ev *events.Log, log *slog.Logger) (*fleet.Fleet, func(), error) {
	f := &fleet.Fleet{Catalog: catalog, Events: ev, Max: cfg.Limits.Machines, BootDir: cfg.BootDir, Logger: log.With("part", "inventory")}
	closeStore := func() {}
	if config.IsPostgres(cfg.Store) {
		// Connections of its own: its batched writes never wait behind a
		// lease commit.
		st, err := postgres.OpenMachines(ctx, cfg.Store, postgres.Options{Logger: log.With("proto", "store")})
		if err != nil {
			return nil, nil, fmt.Errorf("inventory: %w", err)
		}
		log.Info("inventory shared in PostgreSQL", "database", st.String())
		f.Store = st
		closeStore = func() { st.Close() }
	} else if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, nil, fmt.Errorf("inventory: data dir: %w", err)
		}
		st, err := store.Open(ctx, filepath.Join(cfg.DataDir, machinesDB), store.Options{Logger: log.With("proto", "store")})
		if err != nil {
			return nil, nil, fmt.Errorf("inventory: %w", err)
		}
		f.Store = st
		closeStore = func() { st.Close() }
	}
	if err := f.Open(ctx, bc); err != nil {
		closeStore()
		return nil, nil, err
	}
	return f, closeStore, nil
}

func registerFleetMetrics(reg *prometheus.Registry, f *fleet.Fleet) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pxed_inventory_machines", Help: "Machines in the inventory."},
		func() float64 { return float64(f.Stats().Machines) }))
	counter := func(name, help string, v func(fleet.Stats) uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(f.Stats())) }))
	}
	counter("pxed_inventory_evicted_total", "Never-approved machines forgotten to keep the inventory within limits.machines.",
		func(s fleet.Stats) uint64 { return s.Evicted })
	counter("pxed_inventory_dropped_total", "New machines not recorded: the inventory was full of approved or assigned machines.",
		func(s fleet.Stats) uint64 { return s.Dropped })
	counter("pxed_unknown_ignored_total", "DHCP requests of unknown machines not answered (unknown_machines: ignore).",
		func(s fleet.Stats) uint64 { return s.IgnoredUnknown })
}

// machineMessages feeds GET /api/events the inventory's changes: `event:
// machine` with the machine's row, and `event: resync` when one is
// forgotten (the page fetches the list again). A stream that falls behind
// misses changes, never blocks the inventory.
func machineMessages(inv *fleet.Fleet) func(buffer int) (<-chan api.Message, func()) {
	if inv == nil {
		return nil
	}
	return func(buffer int) (<-chan api.Message, func()) {
		ch, cancel := inv.Subscribe(buffer)
		out := make(chan api.Message, buffer)
		go func() {
			defer close(out)
			for c := range ch {
				m := api.Message{Event: "machine", Data: c.Machine}
				if c.Forgotten {
					m = api.Message{Event: "resync", Data: map[string]any{"dropped": 0, "forgotten": c.Machine.MAC}}
				}
				select {
				case out <- m:
				default: // the stream is behind: it resyncs on its own drops
				}
			}
		}()
		return out, cancel
	}
}
