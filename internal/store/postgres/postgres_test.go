package postgres

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"
	"pxed/internal/store/pgtest"
	"pxed/internal/store/schema"
	"pxed/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openDB opens a store on dsn, closed when the test ends.
func openDB(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openTemp opens a store on a new database of the shared test server.
func openTemp(t testing.TB, opts Options) *Store { return openDB(t, pgtest.DB(t), opts) }

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return openTemp(t, Options{}) })
}

func TestCachedPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return storetest.Cached(t, openTemp(t, Options{})) })
}

func TestPostgresAsyncConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return storetest.AsyncPuts(openTemp(t, Options{})) })
	storetest.RunAsync(t, func(t *testing.T) lease.AsyncStore { return openTemp(t, Options{}) })
}

func TestCachedPostgresDeferredConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store {
		return storetest.DeferredPuts(storetest.Cached(t, openTemp(t, Options{})))
	})
}

func TestPostgresConformanceNoGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) lease.Store { return openTemp(t, Options{MaxBatch: 1}) })
}

// Two stores (two servers) on one database: the database decides.
func TestManagersSharingPostgresNeverShareAnAddress(t *testing.T) {
	dsn := pgtest.DB(t)
	storetest.ManagersNeverShare(t, func() lease.Store { return openDB(t, dsn, Options{}) })
}

// roundTrips counts the client's round trips on its connections: each
// time it writes after having read (or first writes) is one.
type roundTrips struct{ n atomic.Int64 }

func (rt *roundTrips) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, rt: rt}, nil
}

type countingConn struct {
	net.Conn
	rt      *roundTrips
	mu      sync.Mutex
	writing bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.writing {
		c.writing = true
		c.rt.n.Add(1)
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	c.writing = false
	c.mu.Unlock()
	return c.Conn.Read(b)
}

// 64 Puts queued while the committer is busy go out in one transaction
// and one network round trip, and every caller returns only after it.
func TestPostgresGroupCommitOneRoundTrip(t *testing.T) {
	rt := &roundTrips{}
	s, err := open(context.Background(), pgtest.DB(t), Options{configure: func(c *pgxpool.Config) {
		c.ConnConfig.DialFunc = rt.dial
		c.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bound := func(i int) lease.Lease {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		return lease.Lease{Addr: a, Key: "k", State: lease.Bound, Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)}
	}
	// Warm up the writer's connection (connect, prepare) with one batch
	// flushed by hand.
	warm := &groupcommit.Req{Ctx: context.Background(), Lease: bound(1000)}
	if err := s.flush([]*groupcommit.Req{warm}); err != nil || warm.Err != nil {
		t.Fatalf("warm-up write: %v, %v", err, warm.Err)
	}
	const writers = 64
	var wg sync.WaitGroup
	var returned atomic.Int32
	for w := range writers {
		wg.Go(func() {
			if _, err := s.Put(context.Background(), bound(w)); err != nil {
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
	before := rt.n.Load()
	s.commit.Start() // the committer becomes free
	wg.Wait()
	if n := rt.n.Load() - before; n != 1 {
		t.Errorf("the batch of %d leases took %d round trips, want 1", writers, n)
	}
	if st := s.Stats(); st.Puts != writers || st.Batches != 1 {
		t.Fatalf("Stats = %+v, want %d Puts in 1 transaction", st, writers)
	}
	ls, err := s.Find(context.Background(), lease.Filter{})
	if err != nil || len(ls) != writers+1 {
		t.Fatalf("Find: %d leases, %v; want %d", len(ls), err, writers+1)
	}
}

// A batch holding two writes of one address (an update queued over an
// insert not yet committed) is still one round trip, applied in order.
func TestPostgresBatchWithRepeatedAddress(t *testing.T) {
	s, err := open(context.Background(), pgtest.DB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := storetestLease(1)
	l2 := l
	l2.Version, l2.Hostname = 1, "second"
	stale := l
	stale.Version = 1 // also version 1: loses to l2
	reqs := []*groupcommit.Req{{Ctx: context.Background(), Lease: l}, {Ctx: context.Background(), Lease: l2}, {Ctx: context.Background(), Lease: stale}}
	if err := s.flush(reqs); err != nil {
		t.Fatal(err)
	}
	if reqs[0].Err != nil || reqs[1].Err != nil || !errors.Is(reqs[2].Err, lease.ErrConflict) {
		t.Fatalf("outcomes %v, %v, %v; want ok, ok, conflict", reqs[0].Err, reqs[1].Err, reqs[2].Err)
	}
	got, err := s.Get(context.Background(), l.Addr)
	if err != nil || got.Version != 2 || got.Hostname != "second" {
		t.Fatalf("Get = %+v, %v; want version 2 %q", got, err, "second")
	}
}

func storetestLease(i byte) lease.Lease {
	return lease.Lease{Addr: netip.AddrFrom4([4]byte{192, 0, 2, i}), Key: lease.ClientKey([]byte{'c', i}), State: lease.Bound,
		Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)}
}

func TestPostgresReopenKeepsLeasesAndSchema(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	s := openDB(t, dsn, Options{})
	want, err := s.Put(ctx, storetestLease(7))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Put(ctx, want); !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Put after Close: err = %v, want ErrClosed", err)
	}
	applied, err := Migrate(ctx, dsn, Options{})
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate of an up-to-date database = %v, %v; want nothing applied", applied, err)
	}
	s = openDB(t, dsn, Options{})
	got, err := s.Get(ctx, want.Addr)
	if err != nil || got.Key != want.Key || !got.Expires.Equal(want.Expires) || got.Version != 1 {
		t.Fatalf("after reopen Get = %+v, %v; want %+v", got, err, want)
	}
}

func TestPostgresMigrateFresh(t *testing.T) {
	applied, err := Migrate(context.Background(), pgtest.DB(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := schema.Load(migrations, "migrations")
	if len(applied) != len(ms) || applied[0] != "0001_leases.sql" {
		t.Fatalf("applied %v, want all %d migrations", applied, len(ms))
	}
}

// A database a newer pxed migrated is refused, saying what to do.
func TestPostgresRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	if _, err := Migrate(ctx, dsn, Options{}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future.sql')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = Open(ctx, dsn, Options{})
	var tn *schema.TooNewError
	if !errors.As(err, &tn) || tn.Version != 999 {
		t.Fatalf("Open of a newer schema: err = %v, want a TooNewError for version 999", err)
	}
	for _, want := range []string{"999", "newer than this pxed knows", "another database"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A wrong or unreachable database fails Open with a clear error within
// the connect timeout, never a hang.
func TestPostgresBadDSN(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	srv := pgtest.Start(t)
	cases := []struct{ name, dsn, want string }{
		{"not a URL", "host=x dbname=y", "postgres://"},
		{"silent server", "postgres://pxed@" + ln.Addr().String() + "/pxed?sslmode=disable", "check the host"},
		{"no such database", srv.DSN("nosuchdb"), "nosuchdb"},
		{"bad port", "postgres://pxed@127.0.0.1:1/pxed?sslmode=disable", "check the host"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(context.Background(), c.dsn, Options{ConnectTimeout: 2 * time.Second})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open(%s): err = %v, want one mentioning %q", c.dsn, err, c.want)
			}
		})
	}
	if !strings.Contains(Describe("postgres://u:secret@h/db"), "db") || strings.Contains(Describe("postgres://u:secret@h/db"), "secret") {
		t.Errorf("Describe = %q: want the database, never the password", Describe("postgres://u:secret@h/db"))
	}
}

// While PostgreSQL is down, a Put fails (no lease is acknowledged that is
// not committed); once it is back, Puts succeed again on new connections.
func TestPostgresRestart(t *testing.T) {
	srv := pgtest.Start(t)
	dsn, err := srv.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := openDB(t, dsn, Options{CommitTimeout: 5 * time.Second})
	ctx := context.Background()
	if _, err := s.Put(ctx, storetestLease(1)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, storetestLease(2)); err == nil || errors.Is(err, lease.ErrConflict) {
		t.Fatalf("Put with the database down: err = %v, want a failure", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	var err2 error
	for range 2 { // the first use of a connection broken by the restart may fail
		if _, err2 = s.Put(ctx, storetestLease(3)); err2 == nil {
			break
		}
	}
	if err2 != nil {
		t.Fatalf("Put after restart: %v", err2)
	}
	if _, err := s.Get(ctx, storetestLease(2).Addr); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("the lease refused while down: Get err = %v, want ErrNotFound", err)
	}
}

// Crash tests: the child claims addresses (or runs DORA) and prints each
// acknowledgement; the parent kills it with SIGKILL mid-run and checks
// every acknowledged lease is in the database and no address has two
// holders.
const (
	crashEnv     = "PXED_PG_CRASH_CHILD"
	doraCrashEnv = "PXED_PG_DORA_CRASH_CHILD"
)

func TestPostgresCrashChild(t *testing.T) {
	storetest.CrashChild(t, crashEnv, "TestPostgresSurvivesSIGKILL", openDSN, storetest.CrashChildPuts)
}

// openDSN opens the store on dsn with the default options.
func openDSN(dsn string) (lease.Store, error) { return Open(context.Background(), dsn, Options{}) }

func TestPostgresSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	dsn := pgtest.DB(t)
	acked := storetest.KillMidRun(t, "TestPostgresCrashChild", crashEnv, dsn, "ok", 2000, false)
	s := openDB(t, dsn, Options{})
	storetest.CheckAcked(t, s, acked, false)
	storetest.CheckOneRowPerAddress(t, s)
	t.Logf("SIGKILL after %d acknowledged leases; all present", len(acked))
}

func TestPostgresManagerCrashChild(t *testing.T) {
	storetest.CrashChild(t, doraCrashEnv, "TestPostgresManagerAcksSurviveSIGKILL", openDSN, storetest.CrashChildDORA)
}

func TestPostgresManagerAcksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	dsn := pgtest.DB(t)
	acked := storetest.KillMidRun(t, "TestPostgresManagerCrashChild", doraCrashEnv, dsn, "ack", 1500, true)
	s := openDB(t, dsn, Options{})
	storetest.CheckAcked(t, s, acked, true)
	storetest.CheckOneRowPerAddress(t, s)
	t.Logf("SIGKILL after %d DHCPACKs: all present and bound", len(acked))
}

// The lease state machine over PostgreSQL, directly and through the cache
// the DHCP server uses.
func TestPostgresLifecycle(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		storetest.RunLifecycle(t, func(t *testing.T) lease.Store { return openTemp(t, Options{}) })
	})
	t.Run("cached", func(t *testing.T) {
		storetest.RunLifecycle(t, func(t *testing.T) lease.Store { return storetest.Cached(t, openTemp(t, Options{})) })
	})
}
