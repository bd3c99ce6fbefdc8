package store

import (
	"context"
	"database/sql"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/schema"
)

// A lease file a newer pxed migrated is refused, saying what to do.
func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(context.Background(), path, Options{})
	var tn *schema.TooNewError
	if !errors.As(err, &tn) || tn.Version != 999 {
		t.Fatalf("Open of a newer schema: err = %v, want a TooNewError for version 999", err)
	}
	if !strings.Contains(err.Error(), "newer than this pxed knows") {
		t.Errorf("error %q does not explain", err)
	}
}

// Migration 0004 rebuilds the leases table of a database made by an
// earlier pxed: its rows are kept, and the CHECK still refuses a state
// that is none of lease.State's.
func TestSQLiteMigratesLeaseStateCheck(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	db, err := sql.Open("sqlite", dsn(path, DefaultBusyTimeout, true))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version < 4 {
			if err := apply(ctx, db, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := lease.Lease{Addr: netip.MustParseAddr("2001:db8::100"), Key: lease.ClientKey("duid+iaid"), State: lease.Bound,
		Expires: time.Unix(1800000000, 0).UTC(), Updated: time.Unix(1700000000, 0).UTC(), Version: 3, Hostname: "node"}
	if _, err := db.ExecContext(ctx, `INSERT INTO leases (`+columns+`) VALUES (?, ?, NULL, ?, ?, ?, ?, ?)`,
		want.Addr.AsSlice(), []byte(want.Key), want.Hostname, want.State.String(), want.Expires.UnixNano(), want.Updated.UnixNano(), want.Version); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("open a version 3 database: %v", err)
	}
	defer s.Close()
	got, err := s.Get(ctx, want.Addr)
	if err != nil || got.Key != want.Key || got.State != want.State || got.Version != want.Version ||
		!got.Expires.Equal(want.Expires) || got.Hostname != want.Hostname {
		t.Fatalf("after migration Get = %+v, %v; want %+v", got, err, want)
	}
	if _, err := s.wdb.ExecContext(ctx, `INSERT INTO leases (`+columns+`) VALUES (?, ?, NULL, '', 'bogus', 0, 0, 1)`,
		netip.MustParseAddr("2001:db8::101").AsSlice(), []byte("k")); err == nil || !strings.Contains(err.Error(), "CHECK") {
		t.Errorf("a lease in state 'bogus' was written (err %v): the CHECK is gone", err)
	}
	var text string
	if err := s.rdb.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE name = 'leases'`).Scan(&text); err != nil || strings.Contains(text, " IN (") {
		t.Errorf("leases table after migration: %q, %v; want the CHECK without IN", text, err)
	}
}
