package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"pxed/internal/config"
	"pxed/internal/lease"
	"pxed/internal/store"
	"pxed/internal/store/postgres"
)

// leaseDB is the lease database's file name inside --data-dir.
const leaseDB = "leases.db"

// leaseStore is what the server and `pxed leases` need of either backend.
type leaseStore interface {
	lease.AsyncStore
	Close() error
}

// storeSpec is where the leases live: a PostgreSQL URL (--store, store:)
// or, by default, the SQLite file leases.db in the data directory.
type storeSpec struct {
	dsn     string // postgres://…; empty: SQLite
	dataDir string
}

// String names the database for logs and messages (no password).
func (sp storeSpec) String() string {
	if sp.dsn != "" {
		return postgres.Describe(sp.dsn)
	}
	return filepath.Join(sp.dataDir, leaseDB)
}

// check refuses a spec that names no database.
func (sp storeSpec) check() error {
	switch {
	case sp.dsn != "" && !config.IsPostgres(sp.dsn):
		return usagef("--store %q: write postgres://USER:PASSWORD@HOST:PORT/DATABASE, or leave it out for the SQLite file in --data-dir", sp.dsn)
	case sp.dsn == "" && sp.dataDir == "":
		return usagef("no lease database: pass --data-dir DIR (SQLite) or --store postgres://… (or write data_dir: or store: in the configuration)")
	}
	return nil
}

// open opens the store and applies its migrations. commitInterval is the
// store's (0: its default, negative: commit at once); journal turns on
// SQLite's lease journal (dhcp.lease_journal; PostgreSQL has none).
func (sp storeSpec) open(ctx context.Context, commitInterval time.Duration, journal bool, log *slog.Logger) (leaseStore, error) {
	if err := sp.check(); err != nil {
		return nil, err
	}
	if sp.dsn != "" {
		return postgres.Open(ctx, sp.dsn, postgres.Options{CommitInterval: commitInterval, Logger: log})
	}
	if err := os.MkdirAll(sp.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return store.Open(ctx, filepath.Join(sp.dataDir, leaseDB), store.Options{CommitInterval: commitInterval, Journal: journal, Logger: log})
}
