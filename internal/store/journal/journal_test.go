package journal

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
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

// TestAppendsAcrossBlocks: appends of every size, across block
// boundaries and past the preallocated part, read back as the records
// in order followed by zeros only, through the O_DIRECT path (where the
// file system has it) and the buffered one.
func TestAppendsAcrossBlocks(t *testing.T) {
	for _, c := range []struct {
		name     string
		buffered bool
		prealloc int64
	}{{"direct", false, 3 * 4096}, {"direct-unaligned-prealloc", false, 2048}, {"buffered", true, 3 * 4096}} {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "leases.db")
			j, err := Create(base, 1, c.prealloc)
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			if c.buffered {
				if err := j.useBuffered(); err != nil {
					t.Fatal(err)
				}
			} else if !j.direct {
				t.Logf("%s: no O_DIRECT here, the buffered path is tested", filepath.Dir(base))
			}
			var want []byte
			for i := 1; i <= 60; i++ {
				var batch []byte
				for k := 0; k < i%7+1; k++ {
					l := sample(i*10 + k)
					l.Hostname = string(bytes.Repeat([]byte{'h'}, (i*37+k*11)%300))
					batch, _ = AppendLease(batch, l)
				}
				if err := j.Append(batch); err != nil {
					t.Fatal(err)
				}
				want = append(want, batch...)
				if j.Size() != int64(len(want)) {
					t.Fatalf("after append %d: Size = %d, want %d", i, j.Size(), len(want))
				}
			}
			b, err := os.ReadFile(FileName(base, 1))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) < len(want) || !bytes.Equal(b[:len(want)], want) || !bytes.Equal(b[len(want):], make([]byte, len(b)-len(want))) {
				t.Fatalf("file (%d bytes) is not the %d bytes of records followed by zeros", len(b), len(want))
			}
			n := 0
			if good, err := Scan(b, func(lease.Lease) { n++ }); err != nil || good != len(want) {
				t.Fatalf("Scan = %d, %v (%d records); want %d", good, err, n, len(want))
			}
		})
	}
}

// BenchmarkAppend: CPU time (getrusage of this thread) and wall time per
// durable append of one lease record every 10 ms, as a quiet server's
// group commits come: O_DIRECT|O_DSYNC against a buffered pwrite and
// fdatasync.
func BenchmarkAppend(b *testing.B) {
	for _, buffered := range []bool{false, true} {
		name := "direct"
		if buffered {
			name = "buffered"
		}
		b.Run(name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			j, err := Create(filepath.Join(b.TempDir(), "leases.db"), 1, 4<<20)
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			if buffered {
				if err := j.useBuffered(); err != nil {
					b.Fatal(err)
				}
			} else if !j.direct {
				b.Skip("no O_DIRECT on this file system")
			}
			rec, _ := AppendLease(nil, sample(1))
			cpu := func() time.Duration {
				var ru syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			var used, wall time.Duration
			for b.Loop() {
				time.Sleep(10 * time.Millisecond)
				c0, w0 := cpu(), time.Now()
				if err := j.Append(rec); err != nil {
					b.Fatal(err)
				}
				used += cpu() - c0
				wall += time.Since(w0)
			}
			b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/append")
			b.ReportMetric(float64(wall.Microseconds())/float64(b.N), "wall-µs/append")
		})
	}
}
