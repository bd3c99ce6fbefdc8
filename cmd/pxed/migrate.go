package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"pxed/internal/store/postgres"
)

// runMigrate is `pxed migrate`: create or upgrade the lease database's
// schema and exit, for operators who run migrations apart from the
// servers (which also migrate at start).
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/pxed", "directory of the SQLite lease database leases.db (the server's --data-dir)")
	dsn := fs.String("store", "", "PostgreSQL database to migrate instead: postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	spec := storeSpec{dsn: *dsn, dataDir: *dataDir}
	if err := spec.check(); err != nil {
		return err
	}
	if spec.dsn != "" {
		applied, err := postgres.Migrate(ctx, spec.dsn, postgres.Options{})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		report(stdout, spec, applied)
		return nil
	}
	// SQLite migrates when the file is opened.
	st, err := spec.open(ctx, 0, false, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	report(stdout, spec, nil)
	return nil
}

func report(w io.Writer, spec storeSpec, applied []string) {
	if len(applied) > 0 {
		fmt.Fprintf(w, "%s: applied %s\n", spec, strings.Join(applied, ", "))
		return
	}
	fmt.Fprintf(w, "%s: schema up to date\n", spec)
}
