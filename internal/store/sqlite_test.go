package store

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

func openTemp(t testing.TB, opts Options) *SQLite {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "leases.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return openTemp(t, Options{}) })
}

// lease.Cached over SQLite is a Store like any other.
func TestCachedSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return storetest.Cached(t, openTemp(t, Options{})) })
}

// PutAsync keeps Put's contract, and queued writes apply in order.
func TestSQLiteAsyncConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return storetest.AsyncPuts(openTemp(t, Options{})) })
	storetest.RunAsync(t, func(t *testing.T) lease.AsyncStore { return openTemp(t, Options{}) })
}

// lease.Cached's deferred writes (the DHCP loop's path) keep Put's contract
// once the Deferred has been waited for.
func TestCachedSQLiteDeferredConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store {
		return storetest.DeferredPuts(storetest.Cached(t, openTemp(t, Options{})))
	})
}

func TestSQLiteConformanceNoGroupCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: one fsync per Put is slow")
	}
	storetest.Run(t, func(t *testing.T) lease.Store { return openTemp(t, Options{MaxBatch: 1}) })
}

func TestSQLitePragmas(t *testing.T) {
	s := openTemp(t, Options{})
	for _, db := range []struct {
		name string
		q    func(string) (string, error)
	}{
		{"writer", func(p string) (v string, err error) { err = s.wdb.QueryRow("PRAGMA " + p).Scan(&v); return }},
		{"reader", func(p string) (v string, err error) { err = s.rdb.QueryRow("PRAGMA " + p).Scan(&v); return }},
	} {
		for p, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "busy_timeout": "5000"} {
			got, err := db.q(p)
			if err != nil {
				t.Fatalf("%s PRAGMA %s: %v", db.name, p, err)
			}
			if got != want {
				t.Errorf("%s PRAGMA %s = %s, want %s", db.name, p, got, want)
			}
		}
	}
}

func TestSQLiteUniqueConstraintInSchema(t *testing.T) {
	s := openTemp(t, Options{})
	a := netip.MustParseAddr("192.0.2.1").AsSlice()
	ins := `INSERT INTO leases (` + columns + `) VALUES (?, ?, NULL, '', 'bound', 0, 0, 1)`
	if _, err := s.wdb.Exec(ins, a, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(ins, a, []byte("two")); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("second row for one address: err = %v, want a UNIQUE constraint failure", err)
	}
}

func TestSQLiteReopenKeepsLeasesAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Put(ctx, lease.Lease{Addr: netip.MustParseAddr("192.0.2.7"), Key: "k", State: lease.Bound,
		Expires: time.Unix(2e9, 5), Updated: time.Unix(2e9, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, want); !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Put after Close: err = %v, want ErrClosed", err)
	}
	s, err = Open(ctx, path, Options{}) // migrations must be idempotent
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.Get(ctx, want.Addr)
	if err != nil || got.Key != want.Key || !got.Expires.Equal(want.Expires) || got.Version != 1 {
		t.Fatalf("after reopen Get = %+v, %v; want %+v", got, err, want)
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("schema_migrations rows = %d, %v; want one per migration, %d", n, err, len(ms))
	}
}

// 64 Puts queued while the committer is busy go out in one transaction,
// and every caller returns only after it.
func TestSQLiteGroupCommitBatches(t *testing.T) {
	s, err := open(context.Background(), filepath.Join(t.TempDir(), "leases.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 64
	var wg sync.WaitGroup
	var returned atomic.Int32
	for w := range writers {
		wg.Go(func() {
			a := netip.AddrFrom4([4]byte{198, 18, byte(w >> 8), byte(w)})
			if _, err := s.Put(context.Background(), lease.Lease{Addr: a, Key: "k", State: lease.Bound, Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)}); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		})
	}
	for deadline := time.Now().Add(10 * time.Second); s.commit.Queued() < writers; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d Puts queued", s.commit.Queued())
		}
	}
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d Puts returned before any commit", n)
	}
	s.commit.Start() // the committer becomes free
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Puts != writers || st.Batches != 1 {
		t.Fatalf("Stats = %+v, want %d Puts in 1 transaction", st, writers)
	}
}

// TestSQLiteCommitInterval: a Put after a quiet spell commits at once; the
// Puts that arrive within CommitInterval of that commit share the next
// transaction.
func TestSQLiteCommitInterval(t *testing.T) {
	const interval = 2 * time.Second
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "leases.db"), Options{CommitInterval: interval})
	if err != nil {
		t.Fatal(err)
	}
	put := func(i int) {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		if _, err := s.Put(context.Background(), lease.Lease{Addr: a, Key: "k", State: lease.Bound, Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)}); err != nil {
			t.Error(err)
		}
	}
	start := time.Now()
	put(0)
	if d := time.Since(start); d >= interval {
		t.Fatalf("the first Put took %v: it waited for the commit interval", d)
	}
	const writers = 32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() { put(1 + w) })
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Puts != writers+1 || st.Batches != 2 {
		t.Fatalf("Stats = %+v, want %d Puts in 2 transactions", st, writers+1)
	}
}

// Crash test. The parent re-executes the test binary with crashEnv set;
// the child claims addresses from many goroutines (two keys race for each
// address) and prints "ok ADDR KEY" after each Put that returned nil. The
// parent kills it with SIGKILL mid-run, reopens the database and checks
// that every acknowledged lease is there and no address has two holders.
const crashEnv = "PXED_STORE_CRASH_CHILD"

func TestSQLiteCrashChild(t *testing.T) {
	storetest.CrashChild(t, crashEnv, "TestSQLiteSurvivesSIGKILL", openPath, storetest.CrashChildPuts)
}

// openPath opens the database at path with the default options.
func openPath(path string) (lease.Store, error) { return Open(context.Background(), path, Options{}) }

func TestSQLiteSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "leases.db")
	// Kill after 2000 acknowledged writes: mid-run, with batches in flight.
	acked := storetest.KillMidRun(t, "TestSQLiteCrashChild", crashEnv, path, "ok", 2000, false)

	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	storetest.CheckAcked(t, s, acked, false)
	rows := storetest.CheckOneRowPerAddress(t, s)
	var check string
	if err := s.rdb.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	t.Logf("SIGKILL after %d acknowledged leases; all present, %d rows in the table, integrity ok", len(acked), rows)
}

// BenchmarkPut compares one writer (one fsync per lease) with 64
// concurrent writers, with and without group commit. Run with
// -benchtime=3000x or more; addresses wrap after 131072.
func BenchmarkPut(b *testing.B) {
	b.Run("writers=1", func(b *testing.B) { storetest.BenchPuts(b, openTemp(b, Options{}), 1) })
	b.Run("writers=64/batch=1", func(b *testing.B) { storetest.BenchPuts(b, openTemp(b, Options{MaxBatch: 1}), 64) })
	b.Run("writers=64/group", func(b *testing.B) { storetest.BenchPuts(b, openTemp(b, Options{}), 64) })
}
