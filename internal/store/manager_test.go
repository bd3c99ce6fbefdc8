package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

// Two Managers (two servers) on two connections to one database file,
// 256 clients at once over a pool of 200: every client that is acknowledged
// has its own address, the rest are told the pool is exhausted. The
// Managers do not see each other's offers (they are held in memory), so a
// client may be NAKed when the other server bound its offered address
// first; it then starts over, as a real client does.
func TestManagersSharingSQLiteNeverShareAnAddress(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	storetest.ManagersNeverShare(t, func() lease.Store {
		s, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Crash test through the Manager: the child runs DORA for new clients from
// 32 goroutines and prints "ack ADDR KEY" after each DHCPACK decision; the
// parent kills it with SIGKILL and checks every acknowledged lease is in
// the database, bound to that client, and no address has two rows.
const doraCrashEnv = "PXED_STORE_DORA_CRASH_CHILD"

func TestManagerCrashChild(t *testing.T) {
	storetest.CrashChild(t, doraCrashEnv, "TestManagerAcksSurviveSIGKILL", openPath, storetest.CrashChildDORA)
}

func TestManagerAcksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	managerAcksSurviveSIGKILL(t, "TestManagerCrashChild", doraCrashEnv, Options{})
}

// managerAcksSurviveSIGKILL kills the test child (made one by env) while
// it runs DORA cycles through a lease.Manager over a SQLite store, reopens
// the database with opts and checks that every DHCPACK the child sent has
// its lease there, bound, with one row per address.
func managerAcksSurviveSIGKILL(t *testing.T, child, env string, opts Options) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "leases.db")
	acked := storetest.KillMidRun(t, child, env, path, "ack", 1500, true)
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	storetest.CheckAcked(t, s, acked, true)
	rows := storetest.CheckOneRowPerAddress(t, s)
	t.Logf("SIGKILL after %d DHCPACKs: all present and bound; %d rows", len(acked), rows)
}

// BenchmarkManagerDORA measures full DISCOVER+REQUEST cycles over SQLite
// with 1 and 64 concurrent clients.
func BenchmarkManagerDORA(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { storetest.BenchDORA(b, openTemp(b, Options{}), clients) })
	}
}
