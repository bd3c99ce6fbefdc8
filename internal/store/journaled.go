package store

// The lease journal (Options.Journal): a group commit appends its leases
// to a file pxed fdatasyncs itself (internal/store/journal) instead of
// committing an SQLite transaction, and SQLite is brought up to date from
// the journal off the reply path, once a second or every
// journalApplyRecords leases. The compare-and-swap that the UPDATE …
// WHERE version = ? gives otherwise is done in memory, against the version
// of every address, under one mutex: that is only valid when this process
// is the database's only writer, so a journaled store holds an exclusive
// lock on DB.lock and every SQLite store a shared one.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"
	"pxed/internal/store/journal"
)

const (
	// DefaultJournalApply is how often the journal's leases are written
	// into SQLite.
	DefaultJournalApply = time.Second
	// journalApplyRecords: the journal is applied early once this many
	// leases wait.
	journalApplyRecords = 8192
)

// journalPrealloc is the zero-filled size of a journal file (about 45,000
// leases); the applier moves to a new file, prepared ahead, once half of
// it is used. A variable for the tests.
var journalPrealloc int64 = 4 << 20

// upsertSQL writes a journaled lease: idempotent, and never over a newer
// version (the journal may be replayed over rows already written).
const upsertSQL = `INSERT INTO leases (` + columns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (addr) DO UPDATE SET client_key = excluded.client_key, mac = excluded.mac,
	hostname = excluded.hostname, state = excluded.state, expires = excluded.expires,
	updated = excluded.updated, version = excluded.version
	WHERE excluded.version > leases.version`

// lockFile takes the inter-process lock of the database at path: exclusive
// for a journaled store, shared otherwise. It never waits.
func lockFile(path string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if exclusive {
				return nil, fmt.Errorf("%s.lock is held by another process that uses the database; "+
					"with the lease journal (dhcp.lease_journal) pxed must be its only user: stop the other one "+
					"(read a running server's leases with `pxed leases --server`)", path)
			}
			return nil, fmt.Errorf("%s.lock is held by a pxed that writes the database through its lease journal; "+
				"read its leases with `pxed leases --server ADDR`, or stop it first", path)
		}
		return nil, fmt.Errorf("lock %s.lock: %w", path, err)
	}
	return f, nil
}

// journaled is the journal state of a SQLite store.
type journaled struct {
	path  string
	log   *slog.Logger
	every time.Duration

	mu       sync.Mutex
	j        *journal.Journal
	spare    *journal.Journal           // the next generation, created ahead (applier only)
	broken   error                      // set when the journal cannot be appended to
	versions map[netip.Addr]uint64      // every address's version: SQLite's plus the journal's
	pending  map[netip.Addr]lease.Lease // journaled, not yet in SQLite
	old      []uint64                   // generations closed, removable once pending is in SQLite
	buf      []byte                     // records of the batch being flushed
	undo     []undo

	applyMu sync.Mutex // one apply at a time; readers wait for it
	kick    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

type undo struct {
	addr    netip.Addr
	version uint64
	had     bool
}

// openJournal replays the journal of s's database into SQLite, loads the
// version of every address and starts a new journal generation.
func (s *SQLite) openJournal(ctx context.Context, path string, opts Options) error {
	jd := &journaled{path: path, log: opts.Logger, every: opts.JournalApply,
		pending: map[netip.Addr]lease.Lease{},
		kick:    make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if jd.log == nil {
		jd.log = slog.New(slog.DiscardHandler)
	}
	if jd.every <= 0 {
		jd.every = DefaultJournalApply
	}
	gens, err := s.replay(ctx, path, jd.log)
	if err != nil {
		return err
	}
	var next uint64 = 1
	if len(gens) > 0 {
		next = gens[len(gens)-1] + 1
	}
	rows, err := s.wdb.QueryContext(ctx, `SELECT addr, version FROM leases`)
	if err != nil {
		return fmt.Errorf("load versions: %w", err)
	}
	jd.versions = map[netip.Addr]uint64{}
	for rows.Next() {
		var a []byte
		var v int64
		if err := rows.Scan(&a, &v); err != nil {
			rows.Close()
			return fmt.Errorf("load versions: %w", err)
		}
		addr, ok := netip.AddrFromSlice(a)
		if !ok {
			rows.Close()
			return fmt.Errorf("load versions: bad address %x in leases table", a)
		}
		jd.versions[addr] = uint64(v)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("load versions: %w", err)
	}
	if jd.j, err = journal.Create(path, next, journalPrealloc); err != nil {
		return err
	}
	s.jd = jd
	return nil
}

// replay writes the journal files of the database at path into SQLite
// (idempotent: a row keeps a newer version) and removes them; it returns
// their generations. The caller holds the exclusive lock.
func (s *SQLite) replay(ctx context.Context, path string, log *slog.Logger) ([]uint64, error) {
	if s.upsStmt == nil {
		upsert, err := s.wdb.PrepareContext(ctx, upsertSQL)
		if err != nil {
			return nil, fmt.Errorf("prepare %q: %w", upsertSQL, err)
		}
		s.upsStmt = upsert
	}
	names, gens, err := journal.Files(path)
	if err != nil {
		return nil, err
	}
	replay := map[netip.Addr]lease.Lease{}
	err = newestInJournals(names, replay, false, func(name string, good, size int) {
		log.Warn("lease journal: ignored a torn record at its end (a write cut short by a crash, never acknowledged)",
			"file", name, "offset", good, "bytes", size-good)
	})
	if err != nil {
		return nil, fmt.Errorf("replay journal: %w", err)
	}
	if err := s.upsert(ctx, replay); err != nil {
		return nil, fmt.Errorf("replay journal: %w", err)
	}
	if len(names) > 0 {
		log.Info("lease journal replayed into the database", "files", len(names), "leases", len(replay))
	}
	for _, name := range names {
		if err := os.Remove(name); err != nil {
			return nil, fmt.Errorf("replay journal: %w", err)
		}
	}
	if len(names) > 0 {
		if err := journal.SyncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	return gens, nil
}

// replayLeftover replays the journal a journaled pxed left (it was killed,
// or its last write into SQLite failed) before a store without the journal
// uses the database: it upgrades the shared lock for that.
func (s *SQLite) replayLeftover(ctx context.Context, path string, log *slog.Logger) error {
	names, _, err := journal.Files(path)
	if err != nil || len(names) == 0 {
		return err
	}
	if err := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("%s has a lease journal to replay (%s) and another process has the database open: "+
			"stop the other process first: %w", path, filepath.Base(names[0]), err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	_, err = s.replay(ctx, path, log)
	if e := syscall.Flock(int(s.lock.Fd()), syscall.LOCK_SH); e != nil {
		err = errors.Join(err, fmt.Errorf("lock %s.lock: %w", path, e))
	}
	return err
}

// upsert writes leases into SQLite in one transaction.
func (s *SQLite) upsert(ctx context.Context, ls map[netip.Addr]lease.Lease) error {
	if len(ls) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	st := tx.StmtContext(ctx, s.upsStmt)
	for _, l := range ls {
		var mac []byte
		if len(l.MAC) > 0 {
			mac = l.MAC
		}
		if _, err := st.ExecContext(ctx, l.Addr.AsSlice(), []byte(l.Key), mac, l.Hostname, l.State.String(),
			l.Expires.UnixNano(), l.Updated.UnixNano(), int64(l.Version)); err != nil {
			return fmt.Errorf("write %v: %w", l.Addr, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// flushJournal is the committer's Flush with the journal: the batch's
// compare-and-swaps against the versions in memory, its records in one
// append and one fdatasync. Nothing changes in memory unless they are on
// disk.
func (s *SQLite) flushJournal(batch []*groupcommit.Req) error {
	jd := s.jd
	jd.mu.Lock()
	defer jd.mu.Unlock()
	if jd.broken != nil {
		return jd.broken
	}
	jd.buf, jd.undo = jd.buf[:0], jd.undo[:0]
	rollback := func() {
		for i := len(jd.undo) - 1; i >= 0; i-- {
			u := jd.undo[i]
			if u.had {
				jd.versions[u.addr] = u.version
			} else {
				delete(jd.versions, u.addr)
			}
		}
	}
	for _, r := range batch {
		if r.Err != nil {
			continue // the caller has given up; do not write
		}
		l := r.Lease
		cur, ok := jd.versions[l.Addr]
		if (l.Version == 0 && ok) || (l.Version != 0 && (!ok || cur != l.Version)) {
			r.Err = lease.ErrConflict
			continue
		}
		out := l
		out.Version++
		out.Expires, out.Updated = time.Unix(0, l.Expires.UnixNano()).UTC(), time.Unix(0, l.Updated.UnixNano()).UTC()
		var err error
		if jd.buf, err = journal.AppendLease(jd.buf, out); err != nil {
			r.Err = err
			continue
		}
		jd.undo = append(jd.undo, undo{l.Addr, cur, ok})
		jd.versions[l.Addr] = out.Version
		r.Out = out
	}
	if err := jd.j.Append(jd.buf); err != nil {
		rollback()
		for _, r := range batch {
			r.Out = lease.Lease{}
		}
		if errors.Is(err, journal.ErrBroken) {
			jd.broken = err
		}
		return err
	}
	for _, r := range batch {
		if r.Err == nil {
			jd.pending[r.Out.Addr] = r.Out
		}
	}
	if len(jd.pending) >= journalApplyRecords {
		select {
		case jd.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// applier writes the journal into SQLite every jd.every, or when kicked,
// until quit.
func (s *SQLite) applier() {
	jd := s.jd
	defer close(jd.done)
	t := time.NewTicker(jd.every)
	defer t.Stop()
	for {
		select {
		case <-jd.quit:
			return
		case <-t.C:
		case <-jd.kick:
		}
		if err := s.apply(context.Background()); err != nil {
			jd.log.Error("lease journal: writing leases into the database failed; they stay in the journal", "err", err)
		}
	}
}

// apply writes the leases journaled so far into SQLite in one
// transaction. The journal keeps its file until half of it is used (the
// records already in SQLite are replayed harmlessly at open); then it
// moves to the next file, created here ahead of time so that the
// committer never waits for it, and the files before are removed once
// their leases are in SQLite.
func (s *SQLite) apply(ctx context.Context) error {
	jd := s.jd
	jd.applyMu.Lock()
	defer jd.applyMu.Unlock()
	jd.mu.Lock()
	half := jd.j.Size() >= journalPrealloc/2
	gen := jd.j.Gen()
	jd.mu.Unlock()
	if half && jd.spare == nil {
		var err error
		if jd.spare, err = journal.Create(jd.path, gen+1, journalPrealloc); err != nil {
			jd.log.Warn("lease journal: cannot prepare the next file; appending to the current one", "err", err)
		}
	}
	jd.mu.Lock()
	if len(jd.pending) == 0 && len(jd.old) == 0 && jd.spare == nil {
		jd.mu.Unlock()
		return nil
	}
	snap := jd.pending
	jd.pending = make(map[netip.Addr]lease.Lease, len(snap))
	if jd.spare != nil {
		jd.j.Close()
		jd.old = append(jd.old, jd.j.Gen())
		jd.j, jd.spare = jd.spare, nil
	}
	old := jd.old
	jd.mu.Unlock()

	if err := s.upsert(ctx, snap); err != nil {
		jd.mu.Lock()
		for a, l := range snap {
			if cur, ok := jd.pending[a]; !ok || cur.Version < l.Version {
				jd.pending[a] = l
			}
		}
		jd.mu.Unlock()
		return err
	}
	removed := 0
	for _, g := range old {
		name := journal.FileName(jd.path, g)
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			jd.log.Warn("lease journal: cannot remove a file already in the database", "file", name, "err", err)
			break
		}
		removed++
	}
	jd.mu.Lock()
	jd.old = jd.old[removed:]
	jd.mu.Unlock()
	return nil
}

// catchUp makes SQLite hold every journaled lease before a read: it
// applies what is pending, or waits for an apply under way.
func (s *SQLite) catchUp(ctx context.Context) error {
	if s.jd == nil {
		return nil
	}
	if err := s.apply(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("bring the database up to date from the lease journal: %w", err)
	}
	return nil
}

// closeJournal stops the applier, writes what is left into SQLite and
// removes the journal; its files stay when that write fails.
func (s *SQLite) closeJournal() error {
	jd := s.jd
	close(jd.quit)
	if s.applying {
		<-jd.done
	}
	err := s.apply(context.Background())
	jd.mu.Lock()
	defer jd.mu.Unlock()
	errs := []error{err, jd.j.Close()}
	if err == nil && len(jd.old) == 0 {
		errs = append(errs, os.Remove(journal.FileName(jd.path, jd.j.Gen())))
	}
	if jd.spare != nil {
		errs = append(errs, jd.spare.Close(), os.Remove(journal.FileName(jd.path, jd.spare.Gen())))
	}
	return errors.Join(errs...)
}

// keepNewest puts l in newest unless it holds its address at a higher
// version already.
func keepNewest(newest map[netip.Addr]lease.Lease, l lease.Lease) {
	if cur, ok := newest[l.Addr]; !ok || l.Version > cur.Version {
		newest[l.Addr] = l
	}
}

// newestInJournals reads the journal files names into newest, each
// address's highest version winning. A file removed since it was listed
// is skipped when missingOK (a reader beside a running server: its leases
// are in SQLite by then) and an error otherwise. onTorn, when set, hears
// of a file whose end holds a torn record (not the preallocated zeros).
func newestInJournals(names []string, newest map[netip.Addr]lease.Lease, missingOK bool, onTorn func(name string, good, size int)) error {
	keep := func(l lease.Lease) { keepNewest(newest, l) }
	for _, name := range names {
		b, err := os.ReadFile(name)
		if missingOK && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		good, err := journal.Scan(b, keep)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if onTorn != nil && good < len(b) && !allZero(b[good:]) {
			onTorn(name, good, len(b))
		}
	}
	return nil
}

// allZero reports whether b holds only zero bytes (a journal file's unused
// preallocated part).
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ReadLeases returns every lease of the SQLite database at path, without
// writing to it or taking its lock, so it works beside a running server
// with the lease journal (pxed leases --data-dir): the journal files'
// leases are read first, then SQLite's rows, and the higher version of
// each address wins. A journal file removed meanwhile had its leases
// written into SQLite before, which is read after.
func ReadLeases(ctx context.Context, path string) ([]lease.Lease, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("store: read %q: path must not contain '?' or '#'", path)
	}
	names, _, err := journal.Files(path)
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", path, err)
	}
	newest := map[netip.Addr]lease.Lease{}
	if err := newestInJournals(names, newest, true, nil); err != nil {
		return nil, fmt.Errorf("store: read %q: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, DefaultBusyTimeout, false))
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", path, err)
	}
	defer db.Close()
	s := &SQLite{rdb: db}
	rows, err := s.collect(db.QueryContext(ctx, `SELECT `+columns+` FROM leases`))
	if err != nil {
		return nil, fmt.Errorf("store: read %q: %w", path, err)
	}
	for _, l := range rows {
		keepNewest(newest, l)
	}
	out := make([]lease.Lease, 0, len(newest))
	for _, l := range newest {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b lease.Lease) int { return a.Addr.Compare(b.Addr) })
	return out, nil
}
