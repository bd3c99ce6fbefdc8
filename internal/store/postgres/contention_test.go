package postgres

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"
	"pxed/internal/store/pgtest"
)

// Two servers committing batches over the same 64 addresses in opposite
// orders, at once: every write ends either written or refused as a
// conflict (never failed; were the row locks to deadlock, the database
// would roll one batch back and the store send it again), exactly one
// write per address wins each round, and each address's version counts
// exactly the writes that succeeded.
func TestPostgresOpposedBatchesNeverFail(t *testing.T) {
	dsn := pgtest.DB(t)
	a, b := openDB(t, dsn, Options{}), openDB(t, dsn, Options{})
	ctx := context.Background()
	var addrs []netip.Addr
	for i := range 64 {
		l := storetestLease(byte(i + 1))
		if _, err := a.Put(ctx, l); err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr)
	}
	reversed := slices.Clone(addrs)
	slices.Reverse(reversed)
	written := 0
	for round := range 20 {
		var reqs [2][]*groupcommit.Req
		for side, order := range [][]netip.Addr{addrs, reversed} {
			for _, ad := range order {
				cur, err := a.Get(ctx, ad)
				if err != nil {
					t.Fatal(err)
				}
				cur.Hostname, cur.Updated = "round", time.Unix(2e9+int64(round), 0)
				reqs[side] = append(reqs[side], &groupcommit.Req{Ctx: ctx, Lease: cur})
			}
		}
		var wg sync.WaitGroup
		var errs [2]error
		for side, s := range []*Store{a, b} {
			wg.Go(func() { errs[side] = s.flush(reqs[side]) })
		}
		wg.Wait()
		for side := range 2 {
			if errs[side] != nil {
				t.Fatalf("round %d: batch %d failed: %v", round, side, errs[side])
			}
			for _, r := range reqs[side] {
				switch {
				case r.Err == nil:
					written++
				case !errors.Is(r.Err, lease.ErrConflict):
					t.Fatalf("round %d: %v: %v", round, r.Lease.Addr, r.Err)
				}
			}
		}
	}
	total := 0
	for _, ad := range addrs {
		l, err := a.Get(ctx, ad)
		if err != nil {
			t.Fatal(err)
		}
		total += int(l.Version) - 1
	}
	if total != written {
		t.Fatalf("versions count %d writes, %d reported written", total, written)
	}
	if written != 20*64 {
		t.Fatalf("%d writes of %d: each round, one write per address wins", written, 20*64)
	}
}
