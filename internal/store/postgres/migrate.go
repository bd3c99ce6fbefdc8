package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"

	"pxed/internal/store/schema"
)

// migrations holds the PostgreSQL schema, one file per version.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serializes migrations of
// servers starting together on one database ("pxed" in ASCII).
const migrationLock = 0x70786564

// migrate brings the schema up to the newest embedded version in one
// transaction (PostgreSQL's DDL is transactional: a failed step leaves
// nothing behind) under an advisory lock, so servers starting at once
// apply each version once. It returns the versions applied.
func migrate(ctx context.Context, conn *pgx.Conn, database string) ([]string, error) {
	ms, err := schema.Load(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return nil, fmt.Errorf("store: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	todo, err := schema.Pending(database, ms, applied)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, m := range todo {
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("store: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			return nil, fmt.Errorf("store: migration %s: record: %w", m.Name, err)
		}
		names = append(names, m.Name)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("store: migrate: commit: %w", err)
	}
	return names, nil
}
