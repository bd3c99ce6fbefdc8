// Package store persists pxed's leases. SQLite (modernc.org/sqlite, pure
// Go) is the default backend; the lease.Store contract it implements is
// checked by the shared conformance suite in internal/store/storetest so a
// PostgreSQL backend can follow with the same guarantees.
//
// Durability: the database runs in WAL mode with synchronous=FULL, and
// Put returns only after its transaction is committed (fsync'd). Writes
// from concurrent callers are batched into one transaction per flush
// (group commit, internal/store/groupcommit), so many leases share one
// fsync.
//
// Concurrency: the leases table has one row per address (UNIQUE (addr))
// and a version column; Put inserts with ON CONFLICT (addr) DO NOTHING or
// updates WHERE addr = ? AND version = ?, and reports zero affected rows as
// lease.ErrConflict. A PostgreSQL backend needs exactly these two
// statements (same schema, timestamptz or bigint times) to give the same
// guarantee to several pxed servers sharing one database.
//
// With Options.Journal (journaled.go, the server's default) a group commit
// is instead one append and one fdatasync of a journal file pxed writes
// itself (internal/store/journal), the compare-and-swap is made in memory
// (the process holds an exclusive lock on DB.lock: it is the database's
// only writer), and SQLite is brought up to date from the journal once a
// second and at open.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Defaults for the zero fields of Options.
const (
	DefaultBusyTimeout = 5 * time.Second
	// DefaultMaxBatch and DefaultCommitInterval: at most 64 leases per
	// commit, a commit at most every 10 ms under load (see groupcommit).
	DefaultMaxBatch       = groupcommit.DefaultMaxBatch
	DefaultCommitInterval = groupcommit.DefaultInterval
	DefaultReaders        = 4
)

// Options tunes a SQLite store. The zero value works.
type Options struct {
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process; 0 means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxBatch caps the Puts committed in one transaction; 0 means
	// DefaultMaxBatch, 1 disables group commit (one fsync per Put).
	MaxBatch int
	// CommitInterval is the least time between the starts of two commits:
	// under load, Puts that arrive meanwhile wait for it and share the next
	// transaction and fsync (at most one commit per interval), while a Put
	// after a quiet spell commits at once. 0 means DefaultCommitInterval; a
	// negative value commits as soon as the previous commit is done.
	CommitInterval time.Duration
	// Readers is the size of the read connection pool; 0 means
	// DefaultReaders.
	Readers int
	// Logger receives commit failures; nil discards.
	Logger *slog.Logger
	// Journal makes a group commit one append and one fdatasync of a
	// journal file next to the database (DB.journal-N) instead of an
	// SQLite transaction; SQLite is brought up to date from it every
	// JournalApply (journaled.go). The process must then be the
	// database's only user: Open takes an exclusive lock on DB.lock and
	// fails while another process has the database open.
	Journal bool
	// JournalApply is how often journaled leases are written into SQLite;
	// 0 means DefaultJournalApply.
	JournalApply time.Duration
}

// Stats counts the work of the committer.
type Stats = groupcommit.Stats

// SQLite is a lease.Store in a SQLite database file.
type SQLite struct {
	rdb, wdb *sql.DB
	// Statements prepared once for the life of the store: database/sql
	// keeps one prepared copy per connection, so the hot path never parses
	// SQL text.
	getStmt, byKeyStmt *sql.Stmt // on rdb
	insStmt, updStmt   *sql.Stmt // on wdb, bound to each batch's transaction
	commit             *groupcommit.Committer
	commitHeld         func(inline bool) time.Duration // PutHeld's commit, made once
	close              sync.Once
	lock               *os.File // DB.lock: shared, or exclusive with the journal

	// The lease journal (Options.Journal), nil without it.
	jd       *journaled
	upsStmt  *sql.Stmt // on wdb
	applying bool      // the journal's applier runs

	// Events of each machine appended since its last cut (machines.go).
	evMu    sync.Mutex
	evCount map[string]int
}

var _ lease.HoldingStore = (*SQLite)(nil)

// dsn returns the connection string of path with the durability settings.
func dsn(path string, busy time.Duration, write bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	if write {
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + path + "?" + q.Encode()
}

// Open opens (creating if needed) the SQLite lease database at path,
// applies the schema migrations and starts the committer. Close it when
// done.
func Open(ctx context.Context, path string, opts Options) (*SQLite, error) {
	s, err := open(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	s.commit.Start()
	if s.jd != nil {
		s.applying = true
		go s.applier()
	}
	return s, nil
}

// open is Open without starting the committer.
func open(ctx context.Context, path string, opts Options) (*SQLite, error) {
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.Readers <= 0 {
		opts.Readers = DefaultReaders
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: open %q: path must not contain '?' or '#'", path)
	}
	lock, err := lockFile(path, opts.Journal)
	if err != nil {
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	wdb, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout, true))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		lock.Close()
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", dsn(path, opts.BusyTimeout, false))
	if err != nil {
		wdb.Close()
		lock.Close()
		return nil, fmt.Errorf("store: open %q for reading: %w", path, err)
	}
	rdb.SetMaxOpenConns(opts.Readers)
	// Keep every reader open: a connection closed for being idle would be
	// reopened (and its statements prepared again) on the next burst.
	rdb.SetMaxIdleConns(opts.Readers)
	s := &SQLite{rdb: rdb, wdb: wdb, lock: lock}
	flush := s.flush
	if opts.Journal {
		flush = s.flushJournal
	}
	s.commit = groupcommit.New(flush, groupcommit.StoreOptions(opts.MaxBatch, opts.CommitInterval, opts.Logger))
	s.commitHeld = s.commitHeldFunc
	if err := s.prepare(ctx); err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	if opts.Journal {
		err = s.openJournal(ctx, path, opts)
	} else {
		err = s.replayLeftover(ctx, path, opts.Logger)
	}
	if err != nil {
		s.closeDBs()
		return nil, fmt.Errorf("store: open %q: %w", path, err)
	}
	return s, nil
}

// prepare prepares the statements of the hot path.
func (s *SQLite) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db   *sql.DB
		dst  **sql.Stmt
		text string
	}{
		{s.rdb, &s.getStmt, getSQL},
		{s.rdb, &s.byKeyStmt, byKeySQL},
		{s.wdb, &s.insStmt, insertSQL},
		{s.wdb, &s.updStmt, updateSQL},
	} {
		st, err := p.db.PrepareContext(ctx, p.text)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.text, err)
		}
		*p.dst = st
	}
	return nil
}

// closeDBs closes the statements and both connection pools.
func (s *SQLite) closeDBs() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.getStmt, s.byKeyStmt, s.insStmt, s.updStmt, s.upsStmt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.rdb.Close(), s.wdb.Close())
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	return errors.Join(errs...)
}

// Close stops the committer (pending Puts fail with lease.ErrClosed) and
// closes the database.
func (s *SQLite) Close() error {
	var err error
	s.close.Do(func() {
		s.commit.Close()
		if s.jd != nil {
			err = s.closeJournal()
		}
		err = errors.Join(err, s.closeDBs())
		if err != nil {
			err = fmt.Errorf("store: close: %w", err)
		}
	})
	return err
}

// Stats returns the committer's counters.
func (s *SQLite) Stats() Stats { return s.commit.Stats() }

const columns = `addr, client_key, mac, hostname, state, expires, updated, version`

const (
	getSQL   = `SELECT ` + columns + ` FROM leases WHERE addr = ?`
	byKeySQL = `SELECT ` + columns + ` FROM leases WHERE client_key = ? ORDER BY addr`
)

// scanLease reads the current row of rows, selected with columns. The
// driver's buffers are read in place (sql.RawBytes) and copied only into
// the fields that keep them.
func scanLease(rows *sql.Rows) (lease.Lease, error) {
	var (
		addr, key, mac, host, state sql.RawBytes
		expires, updated, version   int64
	)
	if err := rows.Scan(&addr, &key, &mac, &host, &state, &expires, &updated, &version); err != nil {
		return lease.Lease{}, err
	}
	a, ok := netip.AddrFromSlice(addr)
	if !ok {
		return lease.Lease{}, fmt.Errorf("bad address %x in leases table", []byte(addr))
	}
	st, ok := parseState(state)
	if !ok {
		return lease.Lease{}, fmt.Errorf("lease %v: unknown state %q", a, []byte(state))
	}
	l := lease.Lease{
		Addr: a, Key: lease.ClientKey(key), State: st,
		Expires: time.Unix(0, expires).UTC(), Updated: time.Unix(0, updated).UTC(),
		Version: uint64(version),
	}
	if len(host) > 0 {
		l.Hostname = string(host)
	}
	if len(mac) > 0 {
		l.MAC = net.HardwareAddr(bytes.Clone(mac))
	}
	return l, nil
}

// states are the stored state names, indexed by lease.State.
var states = func() []string {
	var out []string
	for st := lease.Offered; st <= lease.Declined; st++ {
		out = append(out, st.String())
	}
	return out
}()

// parseState is lease.ParseState on the driver's bytes, without copying.
func parseState(b []byte) (lease.State, bool) {
	for i, n := range states {
		if string(b) == n {
			return lease.Offered + lease.State(i), true
		}
	}
	return 0, false
}

// Get implements lease.Store.
func (s *SQLite) Get(ctx context.Context, addr netip.Addr) (lease.Lease, error) {
	rctx, err := lookupCtx(ctx)
	if err == nil {
		err = s.catchUp(ctx)
	}
	if err != nil {
		return lease.Lease{}, fmt.Errorf("store: get %v: %w", addr, err)
	}
	ls, err := s.collect(s.getStmt.QueryContext(rctx, addr.AsSlice()))
	if err != nil {
		return lease.Lease{}, fmt.Errorf("store: get %v: %w", addr, err)
	}
	if len(ls) == 0 {
		return lease.Lease{}, fmt.Errorf("store: get %v: %w", addr, lease.ErrNotFound)
	}
	return ls[0], nil
}

// ByKey implements lease.Store.
func (s *SQLite) ByKey(ctx context.Context, key lease.ClientKey) ([]lease.Lease, error) {
	rctx, err := lookupCtx(ctx)
	if err == nil {
		err = s.catchUp(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("store: leases of %v: %w", key, err)
	}
	ls, err := s.collect(s.byKeyStmt.QueryContext(rctx, []byte(key)))
	if err != nil {
		return nil, fmt.Errorf("store: leases of %v: %w", key, err)
	}
	return ls, nil
}

// lookupCtx is the context for an indexed lookup of a few rows (Get,
// ByKey): ctx is checked once, then its cancellation is dropped. With a
// cancellable context, database/sql and the driver each start a goroutine
// per query to watch it (and the driver arms an interrupt), which cost more
// than the lookup itself at thousands of DHCP packets per second; a lookup
// does not wait for the writer (WAL readers never block on it), so nothing
// is lost by letting it finish.
func lookupCtx(ctx context.Context) (context.Context, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return context.WithoutCancel(ctx), nil
}

// Find implements lease.Store.
func (s *SQLite) Find(ctx context.Context, f lease.Filter) ([]lease.Lease, error) {
	if err := s.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("store: find leases: %w", err)
	}
	var where []string
	var args []any
	if f.First.IsValid() {
		where, args = append(where, "addr >= ?"), append(args, f.First.AsSlice())
	}
	if f.Last.IsValid() {
		where, args = append(where, "addr <= ?"), append(args, f.Last.AsSlice())
	}
	if f.First.IsValid() || f.Last.IsValid() {
		// Blobs compare bytewise, then by length: without this an IPv6
		// address whose first 4 bytes lie in an IPv4 range would match it.
		a := f.First
		if !a.IsValid() {
			a = f.Last
		}
		where, args = append(where, "length(addr) = ?"), append(args, a.BitLen()/8)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, st.String())
		}
	}
	order := " ORDER BY addr"
	if !f.ExpiresBy.IsZero() {
		where, args = append(where, "expires <= ?"), append(args, f.ExpiresBy.UnixNano())
		order = " ORDER BY expires, addr"
	}
	q := `SELECT ` + columns + ` FROM leases`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += order
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	ls, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: find leases: %w", err)
	}
	return ls, nil
}

func (s *SQLite) query(ctx context.Context, q string, args ...any) ([]lease.Lease, error) {
	return s.collect(s.rdb.QueryContext(ctx, q, args...))
}

// collect reads every row of a query made with columns.
func (s *SQLite) collect(rows *sql.Rows, err error) ([]lease.Lease, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lease.Lease
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Put implements lease.Store: it queues l for the committer and returns
// once the transaction holding it is committed to disk.
func (s *SQLite) Put(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	return s.commit.Put(ctx, l)
}

// PutAsync implements lease.AsyncStore: Put without the wait. done runs
// on the committer's goroutine (or at once when the store is closed or
// ctx has ended), after the transaction holding l is committed to disk.
func (s *SQLite) PutAsync(ctx context.Context, l lease.Lease, done func(lease.Lease, error)) {
	s.commit.PutAsync(ctx, l, done)
}

// PutHeld implements lease.HoldingStore with the lease journal, whose
// commit (one pwrite, one fdatasync: raw system calls) the DHCP socket's
// reader makes itself. Without the journal it is PutAsync: SQLite's
// commit stays on the committer.
func (s *SQLite) PutHeld(ctx context.Context, l lease.Lease, done func(lease.Lease, error)) func(inline bool) time.Duration {
	if s.jd == nil {
		s.commit.PutAsync(ctx, l, done)
		return nil
	}
	s.commit.PutHeld(ctx, l, done)
	return s.commitHeld
}

// commitHeldFunc is the commit PutHeld returns.
func (s *SQLite) commitHeldFunc(inline bool) time.Duration {
	if inline {
		return s.commit.CommitHeld()
	}
	s.commit.Kick()
	return 0
}

const (
	insertSQL = `INSERT INTO leases (` + columns + `) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (addr) DO NOTHING`
	updateSQL = `UPDATE leases SET client_key = ?, mac = ?, hostname = ?, state = ?, expires = ?, updated = ?,
		version = version + 1 WHERE addr = ? AND version = ?`
)

// flush is the committer's groupcommit.Flush: it runs the batch in one
// transaction. A Put whose condition fails gets ErrConflict and does not
// affect the others; any other error aborts the whole batch.
func (s *SQLite) flush(batch []*groupcommit.Req) error {
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	// The writer pool has one connection, on which both statements are
	// already prepared: Tx.Stmt reuses them rather than parsing again.
	var ins, upd *sql.Stmt
	for _, r := range batch {
		if r.Err != nil {
			continue // the caller has given up; do not write
		}
		l := r.Lease
		var mac []byte
		if len(l.MAC) > 0 {
			mac = l.MAC
		}
		var res sql.Result
		if l.Version == 0 {
			if ins == nil {
				ins = tx.StmtContext(ctx, s.insStmt)
			}
			res, err = ins.ExecContext(ctx, l.Addr.AsSlice(), []byte(l.Key), mac, l.Hostname, l.State.String(),
				l.Expires.UnixNano(), l.Updated.UnixNano())
		} else {
			if upd == nil {
				upd = tx.StmtContext(ctx, s.updStmt)
			}
			res, err = upd.ExecContext(ctx, []byte(l.Key), mac, l.Hostname, l.State.String(),
				l.Expires.UnixNano(), l.Updated.UnixNano(), l.Addr.AsSlice(), int64(l.Version))
		}
		if err != nil {
			return fmt.Errorf("write %v: %w", l.Addr, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("write %v: %w", l.Addr, err)
		}
		if n == 0 {
			r.Err = lease.ErrConflict
			continue
		}
		l.Version++
		l.Expires, l.Updated = time.Unix(0, l.Expires.UnixNano()).UTC(), time.Unix(0, l.Updated.UnixNano()).UTC()
		r.Out = l
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
