package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
)

// BenchSubnet is 198.18.0.0/16 with one big pool.
func BenchSubnet() lease.Subnet {
	return lease.Subnet{
		Prefix:   netip.MustParsePrefix("198.18.0.0/16"),
		Ranges:   []lease.Range{{First: netip.MustParseAddr("198.18.0.10"), Last: netip.MustParseAddr("198.18.255.250")}},
		ServerID: netip.MustParseAddr("198.18.0.1"),
	}
}

// DORA runs DISCOVER/OFFER + REQUEST/ACK for one client. Like a client, it
// starts over after a DHCPNAK (a server sharing the store bound the
// offered address first), a bounded number of times.
func DORA(ctx context.Context, m *lease.Manager, key lease.ClientKey) (lease.Lease, error) {
	return dora(ctx, m, key, false)
}

// CrashChildHeldDORA is CrashChildDORA through lease.Cached with the DHCP
// socket reader's writes: each Offer and Request under a lease.Deferred
// with Hold set, committed by the caller itself (lease.Deferred.Commit,
// inline, again after the store's pacing says), and "ack" printed once
// the Request's writes are durable, as the reader sends its Reply.
func CrashChildHeldDORA(s lease.Store) error {
	c, err := lease.NewCached(context.Background(), s)
	if err != nil {
		return err
	}
	m, err := lease.New(c, lease.Config{Subnet: BenchSubnet(), Authoritative: true})
	if err != nil {
		return err
	}
	return printAcks(m, heldDORA)
}

// heldDORA is DORA with held writes, each step's committed and waited for
// before the next (the Offer's before the OFFER leaves, the Request's
// before the ACK).
func heldDORA(ctx context.Context, m *lease.Manager, key lease.ClientKey) (lease.Lease, error) {
	return dora(ctx, m, key, true)
}

// dora is DORA; held puts each step's writes under a lease.Deferred with
// Hold set and commits them itself, as the DHCP socket reader does.
func dora(ctx context.Context, m *lease.Manager, key lease.ClientKey, held bool) (lease.Lease, error) {
	const tries = 50
	deferred := func() *lease.Deferred {
		if held {
			return &lease.Deferred{Hold: true}
		}
		return nil // the Manager writes at once
	}
	durable := func(d *lease.Deferred) error {
		if d == nil {
			return nil
		}
		for wait := d.Commit(true); wait > 0; wait = d.Commit(true) {
			time.Sleep(wait)
		}
		return d.Wait(ctx)
	}
	for range tries {
		od := deferred()
		o, err := m.Offer(ctx, od, lease.OfferRequest{Key: key})
		if err == nil {
			err = durable(od)
		}
		if err != nil {
			return lease.Lease{}, err
		}
		rd := deferred()
		d, l, err := m.Request(ctx, rd, lease.RequestRequest{Key: key, ServerID: m.Subnet().ServerID, Requested: o.Addr})
		if err == nil {
			err = durable(rd)
		}
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

// ManagersNeverShare: two Managers (two servers) over two stores of one
// database, 256 clients at once over a pool of 200: every client that is
// acknowledged has its own address, the rest are told the pool is
// exhausted. The Managers do not see each other's offers (they are held
// in memory), so a client may be NAKed when the other server bound its
// offered address first; it then starts over, as a real client does.
// open returns a new store on the shared database each time.
func ManagersNeverShare(t *testing.T, open func() lease.Store) {
	sn := BenchSubnet()
	sn.Ranges = []lease.Range{{First: netip.MustParseAddr("198.18.1.1"), Last: netip.MustParseAddr("198.18.1.200")}}
	var ms []*lease.Manager
	for range 2 {
		m, err := lease.New(open(), lease.Config{Subnet: sn, Authoritative: true})
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
			l, err := DORA(context.Background(), ms[i%2], key)
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

// CrashChildDORA is the child of a Manager crash test: DORA for new
// clients from 32 goroutines, printing "ack ADDR KEY" after each DHCPACK
// decision, until killed.
func CrashChildDORA(s lease.Store) error {
	m, err := lease.New(s, lease.Config{Subnet: BenchSubnet(), Authoritative: true})
	if err != nil {
		return err
	}
	return printAcks(m, DORA)
}

// printAcks runs dora for new clients from 32 goroutines, printing "ack
// ADDR KEY" after each DHCPACK decision (or "err ..."), until killed.
func printAcks(m *lease.Manager, dora func(context.Context, *lease.Manager, lease.ClientKey) (lease.Lease, error)) error {
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
	return nil
}
