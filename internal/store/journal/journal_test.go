package journal

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pxed/internal/lease"
)

func sample(i int) lease.Lease {
	return lease.Lease{Addr: netip.MustParseAddr("2001:db8::1").Next(), Key: lease.ClientKey("duid\x00iaid"), State: lease.Bound,
		Version: uint64(i), Expires: time.Unix(2e9, int64(i)).UTC(), Updated: time.Unix(2e9, 0).UTC(),
		MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}, Hostname: "host"}
}

func TestRoundTrip(t *testing.T) {
	var b []byte
	var err error
	want := []lease.Lease{sample(1), {Addr: netip.MustParseAddr("192.0.2.9"), State: lease.Offered, Expires: time.Unix(0, 0).UTC(), Updated: time.Unix(0, 0).UTC()}}
	for _, l := range want {
		if b, err = AppendLease(b, l); err != nil {
			t.Fatal(err)
		}
	}
	var got []lease.Lease
	good, err := Scan(b, func(l lease.Lease) { got = append(got, l) })
	if err != nil || good != len(b) || len(got) != 2 {
		t.Fatalf("Scan = %d, %v, %d leases; want %d, nil, 2", good, err, len(got), len(b))
	}
	for i := range want {
		if got[i].Addr != want[i].Addr || got[i].Key != want[i].Key || got[i].Version != want[i].Version || !got[i].Expires.Equal(want[i].Expires) ||
			got[i].MAC.String() != want[i].MAC.String() || got[i].Hostname != want[i].Hostname || got[i].State != want[i].State {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Every cut short of the end is a torn tail after the whole records.
	first, _ := AppendLease(nil, want[0])
	for cut := len(first) + 1; cut < len(b); cut++ {
		n := 0
		good, err := Scan(b[:cut], func(lease.Lease) { n++ })
		if err != nil || good != len(first) || n != 1 {
			t.Fatalf("cut at %d: Scan = %d, %v, %d leases; want %d, nil, 1", cut, good, err, n, len(first))
		}
	}
}

func TestAppendSyncsAndCutsBack(t *testing.T) {
	base := filepath.Join(t.TempDir(), "leases.db")
	j, err := Create(base, 3, 4096)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := AppendLease(nil, sample(1))
	if err := j.Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(FileName(base, 3))
	two := append(append([]byte{}, rec...), rec...)
	if err != nil || len(b) != 4096 || !bytes.Equal(b[:len(two)], two) || !bytes.Equal(b[len(two):], make([]byte, 4096-len(two))) {
		t.Fatalf("file = %x, %v; want two records, then zeros to 4096 bytes", b, err)
	}
	n := 0
	if good, err := Scan(b, func(lease.Lease) { n++ }); err != nil || good != len(two) || n != 2 {
		t.Fatalf("Scan = %d, %v, %d records; want %d, nil, 2", good, err, n, len(two))
	}
	names, gens, err := Files(base)
	if err != nil || len(names) != 1 || gens[0] != 3 {
		t.Fatalf("Files = %v %v %v", names, gens, err)
	}
	// A write to a closed descriptor fails and changes nothing.
	if err := j.Append(rec); err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

// FuzzDecode: Decode never panics on any bytes; what it accepts encodes
// back to the same bytes, and Scan stops exactly where Decode fails.
func FuzzDecode(f *testing.F) {
	one, _ := AppendLease(nil, sample(1))
	two, _ := AppendLease(append([]byte{}, one...), lease.Lease{Addr: netip.MustParseAddr("198.51.100.7"), State: lease.Released, Version: 9})
	f.Add(one)
	f.Add(two)
	f.Add(one[:len(one)-1])
	f.Add([]byte{})
	f.Add(make([]byte, 12))
	bad := append([]byte{}, one...)
	bad[len(bad)-1] ^= 0x80
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, n, err := Decode(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("Decode failed (%v) but consumed %d bytes", err, n)
			}
		} else {
			if n < HeaderLen || n > len(b) {
				t.Fatalf("Decode consumed %d of %d bytes", n, len(b))
			}
			again, err := AppendLease(nil, l)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", l, err)
			}
			if !bytes.Equal(again, b[:n]) {
				t.Fatalf("re-encoded %x, read %x", again, b[:n])
			}
		}
		good, err := Scan(b, func(lease.Lease) {})
		if good > len(b) {
			t.Fatalf("Scan good = %d > %d", good, len(b))
		}
		if err != nil && errors.Is(err, ErrTorn) {
			t.Fatalf("Scan returned ErrTorn: %v", err)
		}
	})
}
