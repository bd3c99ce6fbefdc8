package tftp

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// BenchmarkConcurrent downloads a 256 KiB file with many transfers at once
// over loopback, as a boot storm does (lockstep as BIOS PXE ROMs, windowsize
// 4 as EDK II), client and server in this process. It reports the aggregate
// MB/s; compare runs of the same machine with each other.
func BenchmarkConcurrent(b *testing.B) {
	dir := b.TempDir()
	const size = 256 << 10
	testFile(b, dir, "f", size)
	addr := startServer(b, &Server{Handler: Dir(dir)})
	for _, tc := range []struct{ transfers, win int }{{200, 1}, {200, 4}} {
		b.Run(fmt.Sprintf("transfers=%d/windowsize=%d", tc.transfers, tc.win), func(b *testing.B) {
			c := &Client{Blksize: 1456, Windowsize: tc.win, Tsize: true}
			b.SetBytes(size * int64(tc.transfers))
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				errs := make(chan error, tc.transfers)
				for range tc.transfers {
					wg.Go(func() {
						tr, err := c.Get(context.Background(), addr, "f", io.Discard)
						if err == nil && tr.Bytes != size {
							err = fmt.Errorf("%d bytes", tr.Bytes)
						}
						errs <- err
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)*size*float64(tc.transfers)/1e6/time.Since(start).Seconds(), "MB/s")
		})
	}
}
