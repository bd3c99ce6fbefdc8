package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"pxed/internal/lease"
)

// AsyncPuts returns s as a Store whose Put queues through PutAsync and
// waits for done, so that Run checks PutAsync against Put's contract.
func AsyncPuts(s lease.AsyncStore) lease.Store { return asyncPuts{s} }

type asyncPuts struct{ lease.AsyncStore }

type putResult struct {
	l   lease.Lease
	err error
}

func (a asyncPuts) Put(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	ch := make(chan putResult, 1)
	a.PutAsync(ctx, l, func(out lease.Lease, err error) { ch <- putResult{out, err} })
	r := <-ch
	return r.l, r.err
}

// Cached returns s behind lease.Cached, the cache the DHCP server reads
// through, failing the test when it cannot load s.
func Cached(t testing.TB, s lease.Store) *lease.Cached {
	t.Helper()
	c, err := lease.NewCached(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// DeferredPuts returns s as a Store whose Put is PutDeferred under a
// lease.Deferred and then waits for it, as the DHCP loop does before it sends a
// reply, so that Run checks lease.Cached's deferred writes against Put's
// contract.
func DeferredPuts(s lease.DeferringStore) lease.Store { return deferredPuts{s} }

type deferredPuts struct{ lease.DeferringStore }

func (d deferredPuts) Put(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	var def lease.Deferred
	out, err := d.PutDeferred(ctx, &def, l)
	if err != nil {
		return out, err
	}
	if err := def.Wait(context.Background()); err != nil {
		return lease.Lease{}, err
	}
	return out, nil
}

// HeldPuts returns s as a Store whose Put is PutDeferred under a
// lease.Deferred with Hold set, committed by the caller (Commit inline,
// again after the wait the store's pacing asks for) and then waited for,
// as the DHCP loop's reader does, so that Run checks a lease.HoldingStore's
// held writes against Put's contract.
func HeldPuts(s lease.DeferringStore) lease.Store { return heldPuts{s} }

type heldPuts struct{ lease.DeferringStore }

func (h heldPuts) Put(ctx context.Context, l lease.Lease) (lease.Lease, error) {
	def := lease.Deferred{Hold: true}
	out, err := h.PutDeferred(ctx, &def, l)
	if err != nil {
		return out, err
	}
	for wait := def.Commit(true); wait > 0; wait = def.Commit(true) {
		time.Sleep(wait)
	}
	if err := def.Wait(context.Background()); err != nil {
		return lease.Lease{}, err
	}
	return out, nil
}

// RunAsync checks what PutAsync adds to Put: writes queued back to back,
// without waiting, are applied in order, and done is called once for each.
func RunAsync(t *testing.T, open func(t *testing.T) lease.AsyncStore) {
	t.Run("QueuedInOrder", func(t *testing.T) {
		s := open(t)
		const n = 50
		results := make(chan putResult, 2*n)
		done := func(l lease.Lease, err error) { results <- putResult{l, err} }
		for i := range n {
			l := sample(i + 1)
			s.PutAsync(context.Background(), l, done) // insert: version 1
			l.Hostname, l.Version = "renamed", 1
			s.PutAsync(context.Background(), l, done) // over the insert not yet committed
		}
		for range 2 * n {
			if r := <-results; r.err != nil {
				t.Fatalf("queued Put failed: %v", r.err)
			}
		}
		for i := range n {
			if got := mustGet(t, s, addr(i+1)); got.Version != 2 || got.Hostname != "renamed" {
				t.Fatalf("%v: v%d %q, want v2 %q: queued writes applied out of order", got.Addr, got.Version, got.Hostname, "renamed")
			}
		}
	})
	t.Run("ConflictReported", func(t *testing.T) {
		s := open(t)
		put(t, s, sample(1))
		ch := make(chan error, 1)
		s.PutAsync(context.Background(), sample(1), func(_ lease.Lease, err error) { ch <- err }) // version 0 again
		if err := <-ch; !errors.Is(err, lease.ErrConflict) {
			t.Fatalf("second insert: err = %v, want ErrConflict", err)
		}
	})
}
