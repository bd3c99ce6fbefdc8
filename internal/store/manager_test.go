package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

func benchSubnet() lease.Subnet { return storetest.BenchSubnet() }

var dora = storetest.DORA

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
	path := filepath.Join(t.TempDir(), "leases.db")
	acked := storetest.KillMidRun(t, "TestManagerCrashChild", doraCrashEnv, path, "ack", 1500, true)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	storetest.CheckAcked(t, s, acked, true)
	rows := storetest.CheckOneRowPerAddress(t, s)
	t.Logf("SIGKILL after %d DHCPACKs: all present and bound; %d rows", len(acked), rows)
}

// BenchmarkManagerDORA measures full DISCOVER+REQUEST cycles over SQLite
// with 1 and 64 concurrent clients: one durable write each (the ACK; the
// offer is held in memory).
func BenchmarkManagerDORA(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			if b.N > 60000 {
				b.Skip("pool holds 65k addresses")
			}
			s := openTemp(b, Options{})
			m, err := lease.New(s, lease.Config{Subnet: benchSubnet(), Authoritative: true})
			if err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range clients {
				wg.Go(func() {
					for {
						n := next.Add(1)
						if n > int64(b.N) {
							return
						}
						if _, err := dora(context.Background(), m, lease.ClientKey(fmt.Sprint("c", n))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(start)
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/el.Seconds(), "leases/s")
			b.ReportMetric(float64(st.Puts)/float64(max(st.Batches, 1)), "writes/commit")
		})
	}
}
