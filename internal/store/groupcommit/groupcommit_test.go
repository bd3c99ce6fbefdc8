package groupcommit

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
)

func sample(i int) lease.Lease {
	return lease.Lease{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), Key: "k", State: lease.Bound}
}

// flushRecorder accepts every write and records the batch sizes.
type flushRecorder struct {
	mu      sync.Mutex
	batches []int
}

func (f *flushRecorder) flush(batch []*Req) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range batch {
		if r.Err == nil {
			r.Out = r.Lease
			r.Out.Version++
			n++
		}
	}
	f.batches = append(f.batches, n)
	return nil
}

// Puts queued while the committer is busy go out in batches of at most
// MaxBatch, and none returns before its batch is flushed.
func TestQueuedPutsShareBatches(t *testing.T) {
	f := &flushRecorder{}
	c := New(f.flush, Options{MaxBatch: 64})
	const writers = 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			l, err := c.Put(context.Background(), sample(w))
			if err != nil || l.Version != 1 {
				t.Errorf("Put = %+v, %v", l, err)
			}
		})
	}
	for deadline := time.Now().Add(10 * time.Second); c.Queued() < writers; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d Puts queued", c.Queued())
		}
	}
	c.Start()
	wg.Wait()
	c.Close()
	if len(f.batches) != 2 || f.batches[0] != 64 || f.batches[1] != 36 {
		t.Fatalf("batches %v, want [64 36]", f.batches)
	}
	if st := c.Stats(); st.Puts != writers || st.Batches != 2 {
		t.Fatalf("Stats = %+v", st)
	}
}

// A failed transaction fails every Put of its batch; Close fails the
// Puts still queued with ErrClosed.
func TestFailures(t *testing.T) {
	boom := errors.New("disk on fire")
	c := New(func([]*Req) error { return boom }, Options{})
	c.Start()
	if _, err := c.Put(context.Background(), sample(1)); !errors.Is(err, boom) {
		t.Fatalf("Put in a failed batch: err = %v", err)
	}
	c.Close()
	if _, err := c.Put(context.Background(), sample(2)); !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Put after Close: err = %v", err)
	}
	never := New(func([]*Req) error { t.Error("flushed after Close"); return nil }, Options{})
	done := make(chan error, 1)
	never.PutAsync(context.Background(), sample(3), func(_ lease.Lease, err error) { done <- err })
	never.Close()
	if err := <-done; !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("queued PutAsync at Close: err = %v", err)
	}
}

// A store's options: 0 is the default, a negative interval none.
func TestStoreOptions(t *testing.T) {
	for _, c := range []struct {
		maxBatch, wantBatch int
		interval, wantIntvl time.Duration
	}{
		{0, DefaultMaxBatch, 0, DefaultInterval},
		{1, 1, -1, 0},
		{500, 500, time.Second, time.Second},
	} {
		o := StoreOptions(c.maxBatch, c.interval, nil)
		if o.MaxBatch != c.wantBatch || o.Interval != c.wantIntvl {
			t.Errorf("StoreOptions(%d, %v) = %d, %v; want %d, %v", c.maxBatch, c.interval, o.MaxBatch, o.Interval, c.wantBatch, c.wantIntvl)
		}
	}
}

// Under load a commit waits for the interval to gather Puts, but a batch
// that fills starts at once, and Close fails the Puts still gathering.
func TestGatherEndsWhenTheBatchFills(t *testing.T) {
	f := &flushRecorder{}
	c := New(f.flush, Options{MaxBatch: 4, Interval: time.Hour})
	c.Start()
	// The first Put after a quiet spell is committed at once.
	if _, err := c.Put(context.Background(), sample(1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	cb := func(_ lease.Lease, err error) { done <- err }
	for i := range 4 {
		c.PutAsync(context.Background(), sample(10+i), cb)
	}
	for range 4 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("PutAsync: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a full batch waited for the interval (an hour)")
		}
	}
	// One Put now waits for the interval; Close fails it.
	c.PutAsync(context.Background(), sample(20), cb)
	c.Close()
	if err := <-done; !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Put gathering at Close: %v, want lease.ErrClosed", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.batches) != 2 || f.batches[0] != 1 || f.batches[1] != 4 {
		t.Fatalf("batches %v, want [1 4]", f.batches)
	}
	c.PutAsync(context.Background(), sample(21), cb)
	if err := <-done; !errors.Is(err, lease.ErrClosed) {
		t.Fatalf("Put after Close: %v, want lease.ErrClosed", err)
	}
}

// When the committer is behind (a full batch waits), the outcomes of a
// commit are reported by another goroutine while the next commit runs:
// callbacks that take their time (the DHCP loop sends replies from them)
// do not hold back committing. Close waits for every report.
func TestBehindReportsWhileCommitting(t *testing.T) {
	f := &flushRecorder{}
	c := New(f.flush, Options{MaxBatch: 2})
	release := make(chan struct{})
	var called sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	cb := func(_ lease.Lease, err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		called.Done()
		<-release
	}
	called.Add(4)
	for i := range 4 {
		c.PutAsync(context.Background(), sample(i), cb)
	}
	c.Start()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		n := len(f.batches)
		f.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d batches committed while the first one's callbacks were blocked, want 2", n)
		}
	}
	close(release)
	called.Wait()
	c.Close()
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("PutAsync: %v", err)
		}
	}
}

// TestCommitHeld: a held Put waits in the queue (the committer is not
// woken) until CommitHeld, which flushes it on the caller and reports
// before it returns; within the interval of that commit the next
// CommitHeld commits nothing and says how long to wait; Kick hands a held
// Put to the committer.
func TestCommitHeld(t *testing.T) {
	f := &flushRecorder{}
	c := New(f.flush, Options{MaxBatch: 64, Interval: time.Hour})
	c.Start()
	defer c.Close()
	var got []lease.Lease
	done := func(l lease.Lease, err error) {
		if errors.Is(err, lease.ErrClosed) {
			return // the last one, failed by Close
		}
		if err != nil {
			t.Errorf("held Put: %v", err)
		}
		got = append(got, l) // the caller's goroutine: no lock needed
	}
	c.PutHeld(context.Background(), sample(1), done)
	c.PutHeld(context.Background(), sample(2), done)
	if n := c.Queued(); n != 2 {
		t.Fatalf("%d Puts queued, want the 2 held ones", n)
	}
	if wait := c.CommitHeld(); wait != 0 || len(got) != 2 || got[0].Version != 1 {
		t.Fatalf("CommitHeld = %v, reported %+v: want both committed and reported before it returned", wait, got)
	}
	c.PutHeld(context.Background(), sample(3), done)
	wait := c.CommitHeld()
	if wait <= 0 || wait > time.Hour || len(got) != 2 || c.Queued() != 1 {
		t.Fatalf("CommitHeld within the interval = %v, %d reported, %d queued: want a wait and nothing committed", wait, len(got), c.Queued())
	}
	f.mu.Lock()
	if len(f.batches) != 1 {
		t.Errorf("batches %v, want one", f.batches)
	}
	f.mu.Unlock()
	if wait := c.CommitHeld(); wait <= 0 {
		t.Fatalf("CommitHeld = %v: the committer's pacing ignored", wait)
	}
	// Kick: the committer commits it (after its interval: a test's hour,
	// so the committer is not waited for here; Close fails it).
	c.Kick()
}

// TestHeldPutsDoNotBlock: held Puts that fill the queue wake the
// committer, which makes room; nobody else commits them.
func TestHeldPutsDoNotBlock(t *testing.T) {
	f := &flushRecorder{}
	c := New(f.flush, Options{MaxBatch: 64})
	c.Start()
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(QueueLen + 10)
	for i := range QueueLen + 10 {
		c.PutHeld(context.Background(), sample(i%250), func(_ lease.Lease, err error) {
			if err != nil && !errors.Is(err, lease.ErrConflict) {
				t.Errorf("held Put: %v", err)
			}
			wg.Done()
		})
	}
	c.CommitHeld()
	wg.Wait()
}
