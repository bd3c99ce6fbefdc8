package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"
)

// BenchPuts measures durable Puts/s on s from writers concurrent callers,
// each Put a new lease of 198.18.0.0/15 (addresses wrap after 131072; run
// with -benchtime=3000x or more).
func BenchPuts(b *testing.B, s lease.Store, writers int) {
	run(b, s, writers, "leases/commit", func(n int) error {
		a := netip.AddrFrom4([4]byte{198, 18 + byte(n>>16&1), byte(n >> 8), byte(n)})
		_, err := s.Put(context.Background(), lease.Lease{Addr: a, Key: "k", State: lease.Bound,
			Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)})
		return err
	})
}

// BenchDORA measures full DISCOVER+REQUEST cycles through a lease.Manager
// over s, from clients concurrent clients: one durable write each (the
// ACK; the offer is held in memory).
func BenchDORA(b *testing.B, s lease.Store, clients int) {
	if b.N > 60000 {
		b.Skip("pool holds 65k addresses")
	}
	m, err := lease.New(s, lease.Config{Subnet: BenchSubnet(), Authoritative: true})
	if err != nil {
		b.Fatal(err)
	}
	run(b, s, clients, "writes/commit", func(n int) error {
		_, err := DORA(context.Background(), m, lease.ClientKey(fmt.Sprint("c", n+1)))
		return err
	})
}

// run runs op(n) for n from 0 to b.N-1 on workers goroutines and reports
// the rates (see report); a failed op fails the benchmark and stops its
// worker.
func run(b *testing.B, s lease.Store, workers int, perCommit string, op func(n int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				n := int(next.Add(1) - 1)
				if n >= b.N {
					return
				}
				if err := op(n); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	report(b, time.Since(start), s, perCommit)
}

// report stops the timer and reports leases/s over el and, for a store
// that counts its commits (groupcommit.Stats), commits/s and perCommit.
func report(b *testing.B, el time.Duration, s lease.Store, perCommit string) {
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "leases/s")
	if c, ok := s.(interface{ Stats() groupcommit.Stats }); ok {
		st := c.Stats()
		b.ReportMetric(float64(st.Batches)/el.Seconds(), "commits/s")
		b.ReportMetric(float64(st.Puts)/float64(max(st.Batches, 1)), perCommit)
	}
}
