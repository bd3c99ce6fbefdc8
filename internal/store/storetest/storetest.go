// Package storetest is the conformance suite every lease.Store backend
// must pass (memory, SQLite, later PostgreSQL): round trips, the
// compare-and-swap contract of Put, and that concurrent writers can never
// leave one address with two holders.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"pxed/internal/lease"
)

// Run runs the suite; open returns a new, empty store for each subtest
// (use t.TempDir and t.Cleanup for files and closing).
func Run(t *testing.T, open func(t *testing.T) lease.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, lease.Store)
	}{
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"InsertTakenAddressConflicts", testInsertTaken},
		{"StaleVersionConflicts", testStaleVersion},
		{"UpdateBumpsVersion", testUpdate},
		{"ByKey", testByKey},
		{"FindRangeStatesExpiryLimit", testFind},
		{"ConcurrentClaimsOneHolderPerAddress", testConcurrentClaims},
		{"ConcurrentReadModifyWriteLosesNothing", testConcurrentRMW},
		{"CanceledContext", testCanceled},
		{"BothFamilies", testBothFamilies},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// t0 has microseconds (the precision lease.Store promises) so a store that
// truncates to milliseconds or seconds is caught.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

func addr(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }

func mac(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)} }

func sample(i int) lease.Lease {
	return lease.Lease{
		Addr: addr(i), Key: lease.MACKey(mac(i)), MAC: mac(i), Hostname: "host-" + strconv.Itoa(i),
		State: lease.Bound, Expires: t0.Add(time.Duration(i) * time.Minute), Updated: t0,
	}
}

func put(t *testing.T, s lease.Store, l lease.Lease) lease.Lease {
	t.Helper()
	out, err := s.Put(context.Background(), l)
	if err != nil {
		t.Fatalf("Put(%v v%d): %v", l.Addr, l.Version, err)
	}
	return out
}

// equal compares leases field by field, times with Equal.
func equal(a, b lease.Lease) bool {
	return a.Addr == b.Addr && a.Key == b.Key && slices.Equal(a.MAC, b.MAC) && a.Hostname == b.Hostname &&
		a.State == b.State && a.Expires.Equal(b.Expires) && a.Updated.Equal(b.Updated) && a.Version == b.Version
}

func mustGet(t *testing.T, s lease.Store, a netip.Addr) lease.Lease {
	t.Helper()
	l, err := s.Get(context.Background(), a)
	if err != nil {
		t.Fatalf("Get(%v): %v", a, err)
	}
	return l
}

func testGetMissing(t *testing.T, s lease.Store) {
	if _, err := s.Get(context.Background(), addr(9)); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
}

func testRoundTrip(t *testing.T, s lease.Store) {
	cases := []lease.Lease{
		sample(1),
		{Addr: addr(2), Key: lease.ClientKey("\x00opaque-id\xff"), Hostname: "ünïcode", State: lease.Offered, Expires: t0, Updated: t0},
		{Addr: addr(3), Key: "", State: lease.Declined, Expires: t0.Add(time.Hour), Updated: t0}, // probe quarantine: no key, no MAC
		{Addr: netip.MustParseAddr("2001:db8::1"), Key: "k6", State: lease.Released, Expires: t0, Updated: t0},
		// A hostname is a client's option 12 or FQDN as sent: any bytes.
		{Addr: addr(4), Key: "k4", Hostname: "nul\x00and\xffnot-utf8", State: lease.Bound, Expires: t0, Updated: t0},
	}
	for _, want := range cases {
		got := put(t, s, want)
		want.Version = 1
		if !equal(got, want) {
			t.Errorf("Put returned %+v, want %+v", got, want)
		}
		if got := mustGet(t, s, want.Addr); !equal(got, want) {
			t.Errorf("Get(%v) = %+v, want %+v", want.Addr, got, want)
		}
	}
}

func testInsertTaken(t *testing.T, s lease.Store) {
	first := put(t, s, sample(1))
	other := sample(1)
	other.Key, other.MAC = lease.MACKey(mac(99)), mac(99)
	if _, err := s.Put(context.Background(), other); !errors.Is(err, lease.ErrConflict) {
		t.Fatalf("second holder Put error = %v, want ErrConflict", err)
	}
	if got := mustGet(t, s, first.Addr); !equal(got, first) {
		t.Fatalf("after refused Put, Get = %+v, want first holder %+v", got, first)
	}
}

func testStaleVersion(t *testing.T, s lease.Store) {
	v1 := put(t, s, sample(1))
	v2 := v1
	v2.State = lease.Released
	v2 = put(t, s, v2)
	stale := v1
	stale.Key = "thief"
	if _, err := s.Put(context.Background(), stale); !errors.Is(err, lease.ErrConflict) {
		t.Fatalf("stale Put error = %v, want ErrConflict", err)
	}
	if got := mustGet(t, s, v1.Addr); !equal(got, v2) {
		t.Fatalf("after stale Put, Get = %+v, want %+v", got, v2)
	}
	ghost := sample(7)
	ghost.Version = 3
	if _, err := s.Put(context.Background(), ghost); !errors.Is(err, lease.ErrConflict) {
		t.Fatalf("update of a missing row error = %v, want ErrConflict", err)
	}
	if _, err := s.Get(context.Background(), ghost.Addr); !errors.Is(err, lease.ErrNotFound) {
		t.Fatalf("refused update created a row: Get error = %v", err)
	}
}

func testUpdate(t *testing.T, s lease.Store) {
	l := put(t, s, sample(1))
	for want := uint64(2); want <= 4; want++ {
		l.Expires = l.Expires.Add(time.Hour)
		l.MAC = nil
		l = put(t, s, l)
		if l.Version != want {
			t.Fatalf("Version after update = %d, want %d", l.Version, want)
		}
	}
	if got := mustGet(t, s, l.Addr); !equal(got, l) {
		t.Fatalf("Get = %+v, want %+v", got, l)
	}
}

func testByKey(t *testing.T, s lease.Store) {
	k := lease.MACKey(mac(1))
	for _, i := range []int{5, 1, 3} {
		l := sample(i)
		l.Key = k
		put(t, s, l)
	}
	put(t, s, sample(2))
	got, err := s.ByKey(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []netip.Addr
	for _, l := range got {
		addrs = append(addrs, l.Addr)
	}
	if want := []netip.Addr{addr(1), addr(3), addr(5)}; !slices.Equal(addrs, want) {
		t.Fatalf("ByKey = %v, want %v", addrs, want)
	}
	if got, err := s.ByKey(context.Background(), "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("ByKey(unknown) = %v, %v; want none", got, err)
	}
}

func testFind(t *testing.T, s lease.Store) {
	// Address i expires at t0 + (20-i) minutes: higher addresses expire first.
	for i := 1; i <= 10; i++ {
		l := sample(i)
		l.Expires = t0.Add(time.Duration(20-i) * time.Minute)
		l.State = []lease.State{lease.Offered, lease.Bound, lease.Released, lease.Expired, lease.Declined}[i%5]
		put(t, s, l)
	}
	addrsOf := func(ls []lease.Lease) []int {
		var out []int
		for _, l := range ls {
			out = append(out, int(l.Addr.As4()[3]))
		}
		return out
	}
	cases := []struct {
		name string
		f    lease.Filter
		want []int
	}{
		{"all by address", lease.Filter{}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"inclusive range", lease.Filter{First: addr(3), Last: addr(5)}, []int{3, 4, 5}},
		{"open first", lease.Filter{Last: addr(2)}, []int{1, 2}},
		{"states", lease.Filter{States: []lease.State{lease.Bound, lease.Offered}}, []int{1, 5, 6, 10}},
		{"expired by, oldest first", lease.Filter{ExpiresBy: t0.Add(12 * time.Minute)}, []int{10, 9, 8}},
		{"expiry boundary inclusive", lease.Filter{ExpiresBy: t0.Add(10 * time.Minute)}, []int{10}},
		{"limit", lease.Filter{ExpiresBy: t0.Add(time.Hour), Limit: 2}, []int{10, 9}},
		{"all combined", lease.Filter{First: addr(2), Last: addr(9), States: []lease.State{lease.Released, lease.Expired}, ExpiresBy: t0.Add(time.Hour), Limit: 3}, []int{8, 7, 3}},
	}
	for _, c := range cases {
		got, err := s.Find(context.Background(), c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(addrsOf(got), c.want) {
			t.Errorf("%s: Find = %v, want %v", c.name, addrsOf(got), c.want)
		}
	}
}

func testConcurrentClaims(t *testing.T, s lease.Store) {
	const writers, addrs = 64, 32
	var mu sync.Mutex
	won := make(map[netip.Addr][]lease.ClientKey)
	var wg sync.WaitGroup
	errc := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			key := lease.ClientKey(fmt.Sprintf("client-%d", w))
			for i := range addrs {
				a := addr(1 + (i+w)%addrs)
				l := lease.Lease{Addr: a, Key: key, State: lease.Offered, Expires: t0, Updated: t0}
				_, err := s.Put(context.Background(), l)
				switch {
				case err == nil:
					mu.Lock()
					won[a] = append(won[a], key)
					mu.Unlock()
				case !errors.Is(err, lease.ErrConflict):
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("Put: %v", err)
	}
	for i := range addrs {
		a := addr(1 + i)
		if len(won[a]) != 1 {
			t.Fatalf("address %v: %d successful claims %v, want exactly 1", a, len(won[a]), won[a])
		}
		if got := mustGet(t, s, a); got.Key != won[a][0] {
			t.Fatalf("address %v stored for %q, but the winner was %q", a, got.Key, won[a][0])
		}
	}
}

func testConcurrentRMW(t *testing.T, s lease.Store) {
	const workers, incs = 8, 25
	put(t, s, lease.Lease{Addr: addr(1), Key: "counter", Hostname: "0", State: lease.Bound, Expires: t0, Updated: t0})
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for done := 0; done < incs; {
				l, err := s.Get(context.Background(), addr(1))
				if err != nil {
					errc <- err
					return
				}
				n, _ := strconv.Atoi(l.Hostname)
				l.Hostname = strconv.Itoa(n + 1)
				if _, err := s.Put(context.Background(), l); err == nil {
					done++
				} else if !errors.Is(err, lease.ErrConflict) {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	got := mustGet(t, s, addr(1))
	if want := strconv.Itoa(workers * incs); got.Hostname != want {
		t.Fatalf("counter = %s, want %s: an update was lost", got.Hostname, want)
	}
	if got.Version != workers*incs+1 {
		t.Fatalf("Version = %d, want %d", got.Version, workers*incs+1)
	}
}

func testCanceled(t *testing.T, s lease.Store) {
	put(t, s, sample(2))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, sample(1)); err == nil {
		// A store may have written it before noticing; it must then hold it.
		if _, err := s.Get(context.Background(), addr(1)); err != nil {
			t.Fatalf("Put with canceled ctx returned nil but Get fails: %v", err)
		}
	}
	if _, err := s.Get(ctx, addr(2)); err == nil {
		t.Errorf("Get with canceled ctx: want an error")
	}
}

// testBothFamilies: IPv4 and IPv6 leases share one store; a range of one
// family never returns the other's rows, even where the first bytes of an
// IPv6 address fall inside an IPv4 range (2001:db8:: starts 32.1.13.184).
func testBothFamilies(t *testing.T, s lease.Store) {
	v6 := netip.MustParseAddr("2001:db8::100")
	v4 := netip.MustParseAddr("32.1.13.184")
	for i, a := range []netip.Addr{v4, v6} {
		l := sample(i + 1)
		l.Addr = a
		put(t, s, l)
	}
	if got := mustGet(t, s, v6); got.Addr != v6 {
		t.Fatalf("Get(%v) = %v", v6, got.Addr)
	}
	got, err := s.Find(context.Background(), lease.Filter{First: netip.MustParseAddr("32.0.0.0"), Last: netip.MustParseAddr("33.0.0.0")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Addr != v4 {
		t.Fatalf("Find(IPv4 range) = %v, want only %v", got, v4)
	}
	got, err = s.Find(context.Background(), lease.Filter{First: netip.MustParseAddr("2001:db8::"), Last: netip.MustParseAddr("2001:db8::ffff")})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Addr != v6 {
		t.Fatalf("Find(IPv6 range) = %v, want only %v", got, v6)
	}
}
