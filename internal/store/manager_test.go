package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
)

// benchSubnet is 198.18.0.0/16 with one big pool.
func benchSubnet() lease.Subnet {
	return lease.Subnet{
		Prefix:   netip.MustParsePrefix("198.18.0.0/16"),
		Ranges:   []lease.Range{{First: netip.MustParseAddr("198.18.0.10"), Last: netip.MustParseAddr("198.18.255.250")}},
		ServerID: netip.MustParseAddr("198.18.0.1"),
	}
}

// dora runs DISCOVER/OFFER + REQUEST/ACK for one client. Like a client, it
// starts over after a DHCPNAK (a server sharing the store bound the
// offered address first), a bounded number of times.
func dora(ctx context.Context, m *lease.Manager, key lease.ClientKey) (lease.Lease, error) {
	const tries = 50
	for range tries {
		o, err := m.Offer(ctx, nil, lease.OfferRequest{Key: key})
		if err != nil {
			return lease.Lease{}, err
		}
		d, l, err := m.Request(ctx, nil, lease.RequestRequest{Key: key, ServerID: m.Subnet().ServerID, Requested: o.Addr})
		if err != nil {
			return lease.Lease{}, err
		}
		switch d.Action {
		case lease.Ack:
			return l, nil
		case lease.Nak:
			continue
		}
		return lease.Lease{}, fmt.Errorf("request %v for %v: %v %s", o.Addr, key, d.Action, d.Reason)
	}
	return lease.Lease{}, fmt.Errorf("%v: %d DHCPNAKs in a row", key, tries)
}

// Two Managers (two servers) on two connections to one database file,
// 256 clients at once over a pool of 200: every client that is acknowledged
// has its own address, the rest are told the pool is exhausted. The
// Managers do not see each other's offers (they are held in memory), so a
// client may be NAKed when the other server bound its offered address
// first; it then starts over, as a real client does.
func TestManagersSharingSQLiteNeverShareAnAddress(t *testing.T) {
	managersNeverShare(t, func(s lease.Store) lease.Store { return s })
}

func managersNeverShare(t *testing.T, wrap func(lease.Store) lease.Store) {
	path := filepath.Join(t.TempDir(), "leases.db")
	sn := benchSubnet()
	sn.Ranges = []lease.Range{{First: netip.MustParseAddr("198.18.1.1"), Last: netip.MustParseAddr("198.18.1.200")}}
	var ms []*lease.Manager
	for range 2 {
		s, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		m, err := lease.New(wrap(s), lease.Config{Subnet: sn, Authoritative: true})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	var mu sync.Mutex
	holder := map[netip.Addr]lease.ClientKey{}
	exhausted := 0
	var wg sync.WaitGroup
	for i := range 256 {
		wg.Go(func() {
			key := lease.ClientKey(fmt.Sprintf("client-%d", i))
			l, err := dora(context.Background(), ms[i%2], key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, lease.ErrExhausted):
				exhausted++
			case err != nil:
				t.Error(err)
			default:
				if prev, dup := holder[l.Addr]; dup {
					t.Errorf("%v acknowledged to %s and %s", l.Addr, prev, key)
				}
				holder[l.Addr] = key
			}
		})
	}
	wg.Wait()
	if len(holder) != 200 || exhausted != 56 {
		t.Fatalf("%d acknowledged, %d exhausted; want 200 and 56", len(holder), exhausted)
	}
	ls, err := ms[0].Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if holder[l.Addr] != l.Key || l.State != lease.Bound {
			t.Fatalf("stored %v %s %v, acknowledged to %s", l.Addr, l.Key, l.State, holder[l.Addr])
		}
	}
}

// Crash test through the Manager: the child runs DORA for new clients from
// 32 goroutines and prints "ack ADDR KEY" after each DHCPACK decision; the
// parent kills it with SIGKILL and checks every acknowledged lease is in
// the database, bound to that client, and no address has two rows.
const doraCrashEnv = "PXED_STORE_DORA_CRASH_CHILD"

func TestManagerCrashChild(t *testing.T) {
	path := os.Getenv(doraCrashEnv)
	if path == "" {
		t.Skip("helper process for TestManagerAcksSurviveSIGKILL, runs only when " + doraCrashEnv + " is set")
	}
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	m, err := lease.New(s, lease.Config{Subnet: benchSubnet(), Authoritative: true})
	if err != nil {
		fmt.Println("manager:", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for n := range 100000 { // bounded; the parent kills us long before
				key := lease.ClientKey(fmt.Sprintf("c%d-%d", w, n))
				l, err := dora(context.Background(), m, key)
				mu.Lock()
				if err != nil {
					fmt.Fprintln(out, "err", err)
				} else {
					fmt.Fprintln(out, "ack", l.Addr, string(key))
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

func TestManagerAcksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: spawns a child process")
	}
	path := filepath.Join(t.TempDir(), "leases.db")
	acked := killMidRun(t, "TestManagerCrashChild", doraCrashEnv, path, "ack", 1500, true)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	for a, key := range acked {
		l, err := s.Get(context.Background(), a)
		if err != nil {
			t.Fatalf("acknowledged lease %v for %s lost: %v", a, key, err)
		}
		if l.Key != key || l.State != lease.Bound {
			t.Fatalf("address %v acknowledged to %s, stored %s %v", a, key, l.Key, l.State)
		}
	}
	var rows, distinct int
	if err := s.rdb.QueryRow(`SELECT count(*), count(DISTINCT addr) FROM leases`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != distinct {
		t.Fatalf("%d rows for %d addresses", rows, distinct)
	}
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
