package tftp

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkAdmission is BenchmarkConcurrent (256 KiB, blksize 1456, all
// transfers from 127.0.0.1 at once) with the default limits, where all but
// 64 transfers wait in the queue, and with no limits, the admission path's
// cost alone; transfers=1000 is a boot storm behind one address. It reports
// the aggregate MB/s.
func BenchmarkAdmission(b *testing.B) {
	dir := b.TempDir()
	const size = 256 << 10
	testFile(b, dir, "f", size)
	for _, lim := range []struct {
		name string
		srv  *Server
	}{
		{"limits=default", &Server{Handler: Dir(dir)}},
		{"limits=off", &Server{Handler: Dir(dir), MaxTransfers: -1, MaxPerClient: -1}},
	} {
		addr := startServer(b, lim.srv)
		for _, tc := range []struct{ transfers, win int }{{200, 1}, {200, 4}, {1000, 4}} {
			b.Run(fmt.Sprintf("%s/transfers=%d/windowsize=%d", lim.name, tc.transfers, tc.win), func(b *testing.B) {
				b.SetBytes(size * int64(tc.transfers))
				start := time.Now()
				for b.Loop() {
					if err := storm(addr, tc.transfers, size, tc.win); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)*size*float64(tc.transfers)/1e6/time.Since(start).Seconds(), "MB/s")
			})
		}
	}
}
