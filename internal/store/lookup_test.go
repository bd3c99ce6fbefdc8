package store

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"pxed/internal/lease"
)

// sampleLease is a Bound lease of 192.0.2.n for client "c<n>".
func sampleLease(n byte) lease.Lease {
	now := time.Now()
	return lease.Lease{Addr: netip.AddrFrom4([4]byte{192, 0, 2, n}), Key: lease.ClientKey([]byte{'c', '0' + n%10}),
		State: lease.Bound, Expires: now.Add(time.Hour), Updated: now}
}

// BenchmarkGet measures a lookup of an existing lease with a background
// and with a cancellable context (as the DHCP loop passes).
func BenchmarkGet(b *testing.B) {
	s := openTemp(b, Options{})
	if _, err := s.Put(context.Background(), sampleLease(1)); err != nil {
		b.Fatal(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"ctx=background", context.Background()}, {"ctx=cancellable", cctx}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Get(c.ctx, sampleLease(1).Addr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLookupCanceled checks that Get and ByKey still refuse a context
// that is already done.
func TestLookupCanceled(t *testing.T) {
	s := openTemp(t, Options{})
	l := sampleLease(1)
	if _, err := s.Put(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, l.Addr); err == nil {
		t.Error("Get with a canceled context: want an error")
	}
	if _, err := s.ByKey(ctx, l.Key); err == nil {
		t.Error("ByKey with a canceled context: want an error")
	}
	if _, err := s.Get(context.Background(), l.Addr); err != nil {
		t.Errorf("Get: %v", err)
	}
}
