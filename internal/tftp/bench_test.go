package tftp

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"pxed/internal/tftp/lossy"
)

// BenchmarkLossy downloads 1 MiB at blksize 1468 through a client socket that
// adds 1 ms RTT and drops 1% of datagrams each way, lockstep against RFC 7440
// windows. It reports MB/s; compare the sub-benchmarks with each other.
func BenchmarkLossy(b *testing.B) {
	dir := b.TempDir()
	const size = 1 << 20
	testFile(b, dir, "f", size)
	addr := startServer(b, &Server{Handler: Dir(dir), Timeout: 20 * time.Millisecond, Retries: 20})
	for _, win := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("windowsize=%d", win), func(b *testing.B) {
			seed := uint64(0)
			c := &Client{Blksize: 1468, Windowsize: win, Timeout: 20 * time.Millisecond, Retries: 20,
				Dial: func() (net.PacketConn, error) {
					pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
					if err != nil {
						return nil, err
					}
					seed++
					return lossy.New(pc, 0.01, time.Millisecond, seed), nil
				}}
			b.SetBytes(size)
			start := time.Now()
			for b.Loop() {
				tr, err := c.Get(context.Background(), addr, "f", io.Discard)
				if err != nil || tr.Bytes != size {
					b.Fatalf("%+v: %v", tr, err)
				}
			}
			b.ReportMetric(float64(b.N)*size/1e6/time.Since(start).Seconds(), "MB/s")
		})
	}
}
