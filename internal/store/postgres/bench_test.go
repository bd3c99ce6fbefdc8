package postgres

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

// BenchmarkPut measures durable Puts/s with one writer (one commit per
// lease) and 64 concurrent writers (group commit). Run with
// -benchtime=3000x or more; addresses wrap after 131072.
func BenchmarkPut(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openTemp(b, Options{})
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range writers {
				wg.Go(func() {
					for {
						n := next.Add(1) - 1
						if n >= int64(b.N) {
							return
						}
						a := netip.AddrFrom4([4]byte{198, 18 + byte(n>>16&1), byte(n >> 8), byte(n)})
						if _, err := s.Put(context.Background(), lease.Lease{Addr: a, Key: "k", State: lease.Bound,
							Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)}); err != nil {
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
			b.ReportMetric(float64(st.Puts)/float64(max(st.Batches, 1)), "leases/commit")
		})
	}
}

// BenchmarkManagerDORA measures full DISCOVER+REQUEST cycles over
// PostgreSQL with 64 concurrent clients.
func BenchmarkManagerDORA(b *testing.B) {
	if b.N > 60000 {
		b.Skip("pool holds 65k addresses")
	}
	s := openTemp(b, Options{})
	m, err := lease.New(s, lease.Config{Subnet: storetest.BenchSubnet(), Authoritative: true})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 64 {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				if _, err := storetest.DORA(context.Background(), m, lease.ClientKey(fmt.Sprint("c", n))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "leases/s")
}
