package tftp

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestReadBatch: a batch read from an *os.File (one preadv) and from any
// other File (ReadAt per block) lays the same bytes into the packet slots,
// and reads short exactly at the end of the file, for sizes around block
// boundaries and batches that start, end or pass the end; from an *os.File
// both with preadv2 RWF_NOWAIT first and with plain preadv only.
func TestReadBatch(t *testing.T) {
	dir := t.TempDir()
	for _, bs := range []int{8, 512, 1468} {
		for _, size := range []int{0, 1, bs - 1, bs, bs + 1, 5 * bs, 5*bs + 7} {
			name := fmt.Sprintf("f%d-%d", bs, size)
			data := testFile(t, dir, name, size)
			of, err := os.Open(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			defer of.Close()
			for _, f := range []File{of, memFile{bytes.NewReader(data)}} {
				for _, sz := range []int64{int64(size), -1} {
					for first := uint64(1); first <= uint64(size/bs)+1; first++ {
						for i, nb := range []int{1, 3, 44} {
							srv := &Server{}
							srv.noNowait.Store(i%2 == 1)
							tr := &transfer{srv: srv, req: Packet{Filename: name}}
							buf := make([]byte, nb*(4+bs))
							got, err := tr.readBatch(f, buf, first, nb, bs, sz)
							if err != nil {
								t.Fatalf("%T bs %d size %d first %d nb %d: %v", f, bs, size, first, nb, err)
							}
							off := int(first-1) * bs
							want := min(nb*bs, size-off)
							if got != want {
								t.Fatalf("%T bs %d size %d(%d) first %d nb %d: read %d bytes, want %d", f, bs, size, sz, first, nb, got, want)
							}
							for i := 0; i*bs < got; i++ {
								n := min(bs, got-i*bs)
								if p := buf[i*(4+bs)+4:][:n]; !bytes.Equal(p, data[off+i*bs:][:n]) {
									t.Fatalf("%T bs %d size %d first %d nb %d: block %d differs", f, bs, size, first, nb, i)
								}
							}
						}
					}
				}
			}
		}
	}
}
