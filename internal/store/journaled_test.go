package store

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/journal"
	"pxed/internal/store/storetest"
)

var journalOpts = Options{Journal: true}

// The store's contract holds with the lease journal, directly, through the
// cache and through the DHCP loop's deferred writes, and so does the lease
// state machine.
func TestJournalConformance(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) lease.Store { return openTemp(t, journalOpts) })
	})
	t.Run("cached", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) lease.Store { return storetest.Cached(t, openTemp(t, journalOpts)) })
	})
	t.Run("async", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) lease.Store { return storetest.AsyncPuts(openTemp(t, journalOpts)) })
		storetest.RunAsync(t, func(t *testing.T) lease.AsyncStore { return openTemp(t, journalOpts) })
	})
	t.Run("deferred", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) lease.Store {
			return storetest.DeferredPuts(storetest.Cached(t, openTemp(t, journalOpts)))
		})
	})
	t.Run("held", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) lease.Store {
			return storetest.HeldPuts(storetest.Cached(t, openTemp(t, journalOpts)))
		})
	})
	t.Run("lifecycle", func(t *testing.T) {
		storetest.RunLifecycle(t, func(t *testing.T) lease.Store { return openTemp(t, journalOpts) })
		storetest.RunLifecycle(t, func(t *testing.T) lease.Store { return storetest.Cached(t, openTemp(t, journalOpts)) })
	})
}

func jlease(i int, key string) lease.Lease {
	return lease.Lease{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Key: lease.ClientKey(key), State: lease.Bound,
		Expires: time.Unix(2e9, int64(i)), Updated: time.Unix(2e9, 0), Hostname: "h", MAC: []byte{0x52, 0x54, 0, 0, 0, byte(i)}}
}

// A Put acknowledged by a journaled store is in the journal file, not yet
// in SQLite, until the applier runs; reopening replays it, and the files
// are gone once it is in SQLite.
func TestJournalReplayAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := Open(ctx, path, Options{Journal: true, JournalApply: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var want []lease.Lease
	for i := 1; i <= 5; i++ {
		l, err := s.Put(ctx, jlease(i, "k"))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	if want[0], err = s.Put(ctx, func() lease.Lease { l := want[0]; l.State = lease.Released; return l }()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.wdb.QueryRow(`SELECT count(*) FROM leases`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rows in SQLite before any apply = %d, %v; want 0 (the leases are in the journal)", n, err)
	}
	// Simulate a crash: drop the store without Close (the lock goes with
	// the process in real life; here it is released by hand).
	s.commit.Close()
	close(s.jd.quit)
	<-s.jd.done
	s.jd.j.Close()
	s.closeDBs()

	files, _, err := journal.Files(path)
	if err != nil || len(files) != 1 {
		t.Fatalf("journal files = %v, %v; want one", files, err)
	}
	s, err = Open(ctx, path, journalOpts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if err := s.wdb.QueryRow(`SELECT count(*) FROM leases`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("rows in SQLite after replay = %d, %v; want 5", n, err)
	}
	for _, w := range want {
		got, err := s.Get(ctx, w.Addr)
		if err != nil || got.Version != w.Version || got.State != w.State || !got.Expires.Equal(w.Expires) || got.Key != w.Key || got.MAC.String() != w.MAC.String() {
			t.Errorf("after replay Get(%v) = %+v, %v; want %+v", w.Addr, got, err, w)
		}
	}
	// The compare-and-swap holds across the replay.
	if _, err := s.Put(ctx, jlease(2, "other")); !errors.Is(err, lease.ErrConflict) {
		t.Errorf("insert over a replayed lease: err = %v, want ErrConflict", err)
	}
	if files, _, _ := journal.Files(path); len(files) != 1 {
		t.Errorf("journal files after replay = %v, want only the new, empty generation", files)
	}
}

// A torn record at the end of the journal (a crash in the middle of an
// append, which was never acknowledged) is ignored at replay, and every
// whole record before it is kept.
func TestJournalTornTailIgnored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "leases.db")
	var b []byte
	var err error
	for i := 1; i <= 3; i++ {
		l := jlease(i, "k")
		l.Version = 1
		if b, err = journal.AppendLease(b, l); err != nil {
			t.Fatal(err)
		}
	}
	whole := len(b)
	extra := jlease(4, "k")
	extra.Version = 1
	if b, err = journal.AppendLease(b, extra); err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{whole + 3, whole + journal.HeaderLen + 5, len(b) - 1} {
		os.Remove(path)
		os.Remove(path + "-wal")
		os.Remove(path + "-shm")
		if err := os.WriteFile(journal.FileName(path, 7), b[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctx, path, journalOpts)
		if err != nil {
			t.Fatalf("open with a journal cut at %d: %v", cut, err)
		}
		ls, err := s.Find(ctx, lease.Filter{})
		if err != nil || len(ls) != 3 {
			t.Errorf("journal cut at %d of %d: %d leases, %v; want the 3 whole records", cut, len(b), len(ls), err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A flipped bit in the last record: its checksum fails, it is ignored.
	b[len(b)-2] ^= 1
	os.Remove(path)
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	if err := os.WriteFile(journal.FileName(path, 9), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, journalOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ls, err := s.Find(ctx, lease.Filter{}); err != nil || len(ls) != 3 {
		t.Errorf("damaged last record: %d leases, %v; want 3", len(ls), err)
	}
}

// A journaled store must be the database's only user: it refuses to open
// while another store has the file open, and other stores refuse while it
// has.
func TestJournalExclusive(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	plain, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, journalOpts); err == nil || !strings.Contains(err.Error(), "only user") {
		t.Fatalf("journaled open beside a plain one: err = %v, want a refusal", err)
	}
	// Plain stores still share the file.
	second, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("second plain open: %v", err)
	}
	second.Close()
	plain.Close()
	j, err := Open(ctx, path, journalOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := Open(ctx, path, Options{}); err == nil || !strings.Contains(err.Error(), "pxed leases --server") {
		t.Fatalf("plain open beside a journaled one: err = %v, want a refusal naming the fix", err)
	}
}

// The applier writes journaled leases into SQLite and removes the files
// it no longer needs, while Puts go on.
func TestJournalApplies(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := Open(ctx, path, Options{Journal: true, JournalApply: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 1; i <= 20; i++ {
		if _, err := s.Put(ctx, jlease(i, "k")); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if err := s.apply(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _, _ := journal.Files(path)
	if len(files) != 1 {
		t.Fatalf("journal files = %v, want the current one only", files)
	}
	if err := s.apply(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.wdb.QueryRow(`SELECT count(*) FROM leases`).Scan(&n); err != nil || n != 20 {
		t.Fatalf("rows = %d, %v; want 20", n, err)
	}
}

// SIGKILL crash test with the journal, like TestSQLiteSurvivesSIGKILL: the
// child never applies the journal to SQLite (JournalApply of an hour), so
// every acknowledged lease must come back from the journal's replay.
const journalCrashEnv = "PXED_STORE_JOURNAL_CRASH_CHILD"

func openJournalPath(path string) (lease.Store, error) {
	return Open(context.Background(), path, Options{Journal: true, JournalApply: time.Hour})
}

func TestJournalCrashChild(t *testing.T) {
	storetest.CrashChild(t, journalCrashEnv, "TestJournalSurvivesSIGKILL", openJournalPath, storetest.CrashChildPuts)
}

func TestJournalSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "leases.db")
	acked := storetest.KillMidRun(t, "TestJournalCrashChild", journalCrashEnv, path, "ok", 2000, false)
	files, _, err := journal.Files(path)
	if err != nil || len(files) == 0 {
		t.Fatalf("journal files after the kill = %v, %v; want some", files, err)
	}
	s, err := Open(context.Background(), path, journalOpts)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	storetest.CheckAcked(t, s, acked, false)
	rows := storetest.CheckOneRowPerAddress(t, s)
	t.Logf("SIGKILL after %d acknowledged leases; all replayed from the journal, %d rows", len(acked), rows)
}

// The same through the Manager (DORA decisions), as TestManagerAcksSurviveSIGKILL.
const journalDoraCrashEnv = "PXED_STORE_JOURNAL_DORA_CRASH_CHILD"

func TestJournalManagerCrashChild(t *testing.T) {
	storetest.CrashChild(t, journalDoraCrashEnv, "TestJournalManagerAcksSurviveSIGKILL", openJournalPath, storetest.CrashChildDORA)
}

func TestJournalManagerAcksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	managerAcksSurviveSIGKILL(t, "TestJournalManagerCrashChild", journalDoraCrashEnv, journalOpts)
}

// The same through the DHCP socket reader's held writes (lease.Deferred
// with Hold, committed by the caller): every ACK printed after its commit
// survives the SIGKILL.
const journalHeldCrashEnv = "PXED_STORE_JOURNAL_HELD_CRASH_CHILD"

func TestJournalHeldCrashChild(t *testing.T) {
	storetest.CrashChild(t, journalHeldCrashEnv, "TestJournalHeldAcksSurviveSIGKILL", openJournalPath, storetest.CrashChildHeldDORA)
}

func TestJournalHeldAcksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	managerAcksSurviveSIGKILL(t, "TestJournalHeldCrashChild", journalHeldCrashEnv, journalOpts)
}

// A store opened without the journal over a database whose journaled
// pxed was killed replays that journal first: an acknowledged lease is
// never read stale, nor written over from a stale version.
func TestPlainOpenReplaysLeftoverJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	l := jlease(5, "k")
	l.Version = 2
	rec, err := journal.AppendLease(nil, l)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal.FileName(path, 1), rec, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, l.Addr)
	if err != nil || got.Version != 2 || got.Key != "k" {
		t.Fatalf("Get = %+v, %v; want the journaled lease, version 2", got, err)
	}
	if files, _, _ := journal.Files(path); len(files) != 0 {
		t.Errorf("journal files after the replay = %v, want none", files)
	}
}

// Once half of a journal file is used, the applier moves to the next
// (prepared ahead) and removes the files whose leases are in SQLite;
// nothing is lost on the way.
func TestJournalRotates(t *testing.T) {
	defer func(p int64) { journalPrealloc = p }(journalPrealloc)
	journalPrealloc = 2048
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := Open(ctx, path, Options{Journal: true, JournalApply: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	maxFiles := 0
	for i := 1; i <= 200; i++ {
		if _, err := s.Put(ctx, jlease(i, "k")); err != nil {
			t.Fatal(err)
		}
		if err := s.apply(ctx); err != nil {
			t.Fatal(err)
		}
		files, _, _ := journal.Files(path)
		maxFiles = max(maxFiles, len(files))
	}
	if maxFiles > 2 || s.jd.j.Gen() < 5 {
		t.Fatalf("at most %d journal files at once, generation %d: want at most 2 files and several generations", maxFiles, s.jd.j.Gen())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if files, _, _ := journal.Files(path); len(files) != 0 {
		t.Fatalf("journal files after Close = %v, want none", files)
	}
	s, err = Open(ctx, path, journalOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ls, err := s.Find(ctx, lease.Filter{}); err != nil || len(ls) != 200 {
		t.Fatalf("leases after reopen = %d, %v; want 200", len(ls), err)
	}
}

// ReadLeases sees a journaled server's leases while it runs (journal
// and SQLite merged, newest version winning), without its lock.
func TestReadLeasesBesideJournaledStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := Open(ctx, path, Options{Journal: true, JournalApply: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Put(ctx, jlease(1, "k"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.apply(ctx); err != nil { // 192.0.2.1 version 1 in SQLite
		t.Fatal(err)
	}
	a.State = lease.Released
	if a, err = s.Put(ctx, a); err != nil { // version 2 in the journal only
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, jlease(2, "k")); err != nil {
		t.Fatal(err)
	}
	ls, err := ReadLeases(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Addr != a.Addr || ls[0].Version != 2 || ls[0].State != lease.Released || ls[1].Version != 1 {
		t.Fatalf("ReadLeases = %+v; want 192.0.2.1 released (version 2, from the journal) and 192.0.2.2", ls)
	}
}

// BenchmarkCommitCPU: the process's CPU time (user + system, getrusage)
// per commit and per lease, SQLite's transaction against the journal's
// append and fdatasync, at one lease per commit (a quiet server) and with
// 64 writers (a busy one).
func BenchmarkCommitCPU(b *testing.B) {
	for _, c := range []struct {
		name    string
		opts    Options
		writers int
	}{
		{"sqlite/writers=1", Options{}, 1},
		{"journal/writers=1", Options{Journal: true}, 1},
		{"sqlite/writers=64", Options{}, 64},
		{"journal/writers=64", Options{Journal: true}, 64},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := openTemp(b, c.opts)
			cpu := func() time.Duration {
				var ru syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			before, batches := cpu(), s.Stats().Batches
			storetest.BenchPuts(b, s, c.writers)
			used, n := cpu()-before, s.Stats().Batches-batches
			b.ReportMetric(float64(used.Microseconds())/float64(max(n, 1)), "cpu-µs/commit")
			b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/lease")
		})
	}
}
