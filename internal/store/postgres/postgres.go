// Package postgres is the PostgreSQL lease store (pgx), for several pxed
// servers sharing one truth: it keeps the lease.Store and
// lease.AsyncStore contract of the SQLite store, checked by the same
// conformance suite (internal/store/storetest).
//
// Durability: a Put returns only once the transaction holding it is
// committed, with synchronous_commit on (set for every connection, so a
// server default of off does not weaken it). Writes from concurrent callers
// are grouped (internal/store/groupcommit): one transaction, and one
// network round trip, per batch of up to 64 leases.
//
// Concurrency: the leases table has one row per address (primary key
// addr, type inet, IPv4 and IPv6) and a version column. A batch is one
// statement over arrays (unnest) that inserts the new rows with ON
// CONFLICT (addr) DO NOTHING and updates the others WHERE version
// matches; a lease not returned by it is refused with lease.ErrConflict.
// Under READ COMMITTED a concurrent writer's row is waited for and then
// re-checked, so two servers can never both win one address.
//
// Schema: migrations (migrations/NNNN_name.sql) run at Open, in one
// transaction under an advisory lock; a database migrated by a newer pxed
// is refused.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"
)

// Defaults for the zero fields of Options.
const (
	// DefaultMaxBatch and DefaultCommitInterval are the SQLite store's:
	// at most 64 leases per commit, a commit at most every 10 ms under
	// load (see groupcommit).
	DefaultMaxBatch       = groupcommit.DefaultMaxBatch
	DefaultCommitInterval = groupcommit.DefaultInterval
	DefaultReaders        = 4
	// DefaultConnectTimeout bounds Open (connect, migrate) and every new
	// connection, so a wrong host fails at start instead of hanging.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultCommitTimeout bounds one commit: a database that stops
	// answering fails the Puts waiting on it (the DHCP server sends no
	// ACK for them) instead of holding them forever.
	DefaultCommitTimeout = 10 * time.Second
)

// Options tunes a PostgreSQL store. The zero value works.
type Options struct {
	// MaxBatch caps the Puts committed in one transaction; 0 means
	// DefaultMaxBatch, 1 disables group commit.
	MaxBatch int
	// CommitInterval is the least time between the starts of two
	// commits (see the SQLite store); 0 means DefaultCommitInterval, a
	// negative value commits as soon as the previous commit is done.
	CommitInterval time.Duration
	// Readers is the number of connections for reads; 0 means
	// DefaultReaders. Writes have one connection of their own.
	Readers int
	// ConnectTimeout: 0 means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// CommitTimeout: 0 means DefaultCommitTimeout.
	CommitTimeout time.Duration
	// Logger receives commit failures; nil discards.
	Logger *slog.Logger

	// configure edits the pools' configuration (tests count round trips).
	configure func(*pgxpool.Config)
}

// Store is a lease.Store in a PostgreSQL database.
type Store struct {
	rpool, wpool  *pgxpool.Pool
	commit        *groupcommit.Committer
	commitTimeout time.Duration
	name          string
}

var _ lease.AsyncStore = (*Store)(nil)

// IsDSN reports whether s names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a SQLite file.
func IsDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Describe names the database of dsn for messages and logs: user, host
// and database, never the password.
func Describe(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "PostgreSQL database (unparsable URL)"
	}
	return describe(cfg)
}

func describe(cfg *pgx.ConnConfig) string {
	host := cfg.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, strconv.Itoa(int(cfg.Port)))
	}
	return fmt.Sprintf("PostgreSQL database %q on %s as %q", cfg.Database, host, cfg.User)
}

// config parses dsn and applies opts.
func config(dsn string, opts *Options) (*pgxpool.Config, error) {
	if !IsDSN(dsn) {
		return nil, errors.New("store: not a PostgreSQL URL: write postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: %w: write postgres://USER:PASSWORD@HOST:PORT/DATABASE", err)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.ConnConfig.ConnectTimeout <= 0 || cfg.ConnConfig.ConnectTimeout > opts.ConnectTimeout {
		cfg.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	rp := cfg.ConnConfig.RuntimeParams
	rp["synchronous_commit"] = "on" // Put's durability: the commit is flushed before it returns
	if rp["application_name"] == "" {
		rp["application_name"] = "pxed"
	}
	return cfg, nil
}

// Migrate connects to dsn and applies the schema migrations only. It
// returns the names of the migrations applied (none when up to date).
func Migrate(ctx context.Context, dsn string, opts Options) ([]string, error) {
	cfg, err := config(dsn, &opts)
	if err != nil {
		return nil, err
	}
	return connectAndMigrate(ctx, cfg, opts)
}

func connectAndMigrate(ctx context.Context, cfg *pgxpool.Config, opts Options) ([]string, error) {
	name := describe(cfg.ConnConfig)
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("store: connect to %s: %w (check the host, port, user, password and database name in --store or store:, "+
			"and that PostgreSQL accepts connections from this host)", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	applied, err := migrate(ctx, conn, name)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, name)
	}
	return applied, nil
}

// Open connects to the PostgreSQL database of dsn (a postgres:// URL),
// applies the schema migrations and starts the committer. It fails within
// opts.ConnectTimeout when the server does not answer. Close it when done.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	s, err := open(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	s.commit.Start()
	return s, nil
}

// open is Open without starting the committer.
func open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := config(dsn, &opts)
	if err != nil {
		return nil, err
	}
	if opts.Readers <= 0 {
		opts.Readers = DefaultReaders
	}
	if opts.CommitTimeout <= 0 {
		opts.CommitTimeout = DefaultCommitTimeout
	}
	if _, err := connectAndMigrate(ctx, cfg, opts); err != nil {
		return nil, err
	}
	s := &Store{name: describe(cfg.ConnConfig), commitTimeout: opts.CommitTimeout}
	if opts.configure != nil {
		opts.configure(cfg)
	}
	rcfg, wcfg := cfg.Copy(), cfg.Copy()
	rcfg.MaxConns = int32(opts.Readers)
	wcfg.MaxConns = 1
	if s.rpool, err = pgxpool.NewWithConfig(ctx, rcfg); err != nil {
		return nil, fmt.Errorf("store: %s: %w", s.name, err)
	}
	if s.wpool, err = pgxpool.NewWithConfig(ctx, wcfg); err != nil {
		s.rpool.Close()
		return nil, fmt.Errorf("store: %s: %w", s.name, err)
	}
	s.commit = groupcommit.New(s.flush, groupcommit.StoreOptions(opts.MaxBatch, opts.CommitInterval, opts.Logger))
	return s, nil
}

// String names the database (no password).
func (s *Store) String() string { return s.name }

// Close stops the committer (pending Puts fail with lease.ErrClosed) and
// closes the connections.
func (s *Store) Close() error {
	s.commit.Close()
	s.rpool.Close()
	s.wpool.Close()
	return nil
}

// Stats returns the committer's counters.
func (s *Store) Stats() groupcommit.Stats { return s.commit.Stats() }

const columns = `addr, client_key, mac, hostname, state, expires, updated, version`

// scanLease reads one row selected with columns.
func scanLease(row pgx.CollectableRow) (lease.Lease, error) {
	var (
		l              lease.Lease
		key, mac, host []byte
		state          string
		version        int64
	)
	if err := row.Scan(&l.Addr, &key, &mac, &host, &state, &l.Expires, &l.Updated, &version); err != nil {
		return lease.Lease{}, err
	}
	st, err := lease.ParseState(state)
	if err != nil {
		return lease.Lease{}, fmt.Errorf("lease %v: %w", l.Addr, err)
	}
	l.Key, l.Hostname, l.State, l.Version = lease.ClientKey(key), string(host), st, uint64(version)
	if len(mac) > 0 {
		l.MAC = net.HardwareAddr(mac)
	}
	l.Expires, l.Updated = l.Expires.UTC(), l.Updated.UTC()
	return l, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]lease.Lease, error) {
	rows, err := s.rpool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanLease)
}

// Get implements lease.Store.
func (s *Store) Get(ctx context.Context, addr netip.Addr) (lease.Lease, error) {
	ls, err := s.query(ctx, `SELECT `+columns+` FROM leases WHERE addr = $1`, addr)
	if err != nil {
		return lease.Lease{}, fmt.Errorf("store: get %v: %w", addr, err)
	}
	if len(ls) == 0 {
		return lease.Lease{}, fmt.Errorf("store: get %v: %w", addr, lease.ErrNotFound)
	}
	return ls[0], nil
}

// ByKey implements lease.Store.
func (s *Store) ByKey(ctx context.Context, key lease.ClientKey) ([]lease.Lease, error) {
	ls, err := s.query(ctx, `SELECT `+columns+` FROM leases WHERE client_key = $1 ORDER BY addr`, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("store: leases of %v: %w", key, err)
	}
	return ls, nil
}

// Find implements lease.Store.
func (s *Store) Find(ctx context.Context, f lease.Filter) ([]lease.Lease, error) {
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.First.IsValid() {
		arg("addr >= ?", f.First)
	}
	if f.Last.IsValid() {
		arg("addr <= ?", f.Last)
	}
	if f.First.IsValid() || f.Last.IsValid() {
		// inet orders IPv4 before IPv6: an open end would reach into the
		// other family.
		a := f.First
		if !a.IsValid() {
			a = f.Last
		}
		fam := 4
		if a.Is6() {
			fam = 6
		}
		arg("family(addr) = ?", fam)
	}
	if len(f.States) > 0 {
		var names []string
		for _, st := range f.States {
			names = append(names, st.String())
		}
		arg("state = ANY(?)", names)
	}
	order := " ORDER BY addr"
	if !f.ExpiresBy.IsZero() {
		arg("expires <= ?", f.ExpiresBy)
		order = " ORDER BY expires, addr"
	}
	q := `SELECT ` + columns + ` FROM leases`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += order
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += " LIMIT $" + strconv.Itoa(len(args))
	}
	ls, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: find leases: %w", err)
	}
	return ls, nil
}

// Put implements lease.Store: it queues l for the committer and returns
// once the transaction holding it is committed.
func (s *Store) Put(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	return s.commit.Put(ctx, l)
}

// PutAsync implements lease.AsyncStore: Put without the wait. done runs
// on the committer's goroutine (or at once when the store is closed or
// ctx has ended), after the transaction holding l is committed.
func (s *Store) PutAsync(ctx context.Context, l lease.Lease, done func(lease.Lease, error)) {
	s.commit.PutAsync(ctx, l, done)
}
