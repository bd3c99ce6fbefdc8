package tftp

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func readAll(t *testing.T, f File, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b[:n]
}

func openFile(t *testing.T, p string) (*os.File, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return f, st.Size()
}

// TestFileCache: concurrent transfers of one file share one copy while any
// of them runs; a file rewritten meanwhile is a new version, never mixed
// with the old one; the entry goes with its last transfer.
func TestFileCache(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "snponly.efi")
	v1 := testFile(t, dir, "snponly.efi", 100_000)
	var c fileCache

	f1, size := openFile(t, p)
	m1, rel1, ok := c.open(f1, size, DefaultCacheMax)
	if !ok {
		t.Fatal("a small regular file is not cached")
	}
	f2, _ := openFile(t, p)
	m2, rel2, ok := c.open(f2, size, DefaultCacheMax)
	if !ok || len(c.entries) != 1 {
		t.Fatalf("second transfer: ok %v, %d entries, want one shared", ok, len(c.entries))
	}
	sameBytes(t, readAll(t, m1, len(v1)), v1)
	sameBytes(t, readAll(t, m2, len(v1)), v1)

	// The file is replaced by a longer one while both transfers run.
	v2 := append(bytes.Repeat([]byte{0xa5}, 1000), v1...)
	if err := os.WriteFile(p, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	f3, size3 := openFile(t, p)
	m3, rel3, ok := c.open(f3, size3, DefaultCacheMax)
	if !ok || len(c.entries) != 2 {
		t.Fatalf("new version: ok %v, %d entries, want 2", ok, len(c.entries))
	}
	sameBytes(t, readAll(t, m3, len(v2)), v2)
	sameBytes(t, readAll(t, m1, len(v1)), v1)

	rel1()
	rel2()
	if len(c.entries) != 1 {
		t.Errorf("after the old version's transfers: %d entries, want 1", len(c.entries))
	}
	rel3()
	if len(c.entries) != 0 {
		t.Errorf("after every transfer: %d entries, want 0", len(c.entries))
	}
}

func TestFileCacheRefuses(t *testing.T) {
	dir := t.TempDir()
	testFile(t, dir, "big", 4096)
	f, size := openFile(t, filepath.Join(dir, "big"))
	var c fileCache
	for name, tc := range map[string]struct {
		f         File
		size, max int64
	}{
		"larger than max":        {f, size, size - 1},
		"unknown size":           {f, -1, DefaultCacheMax},
		"size is not the file's": {f, size + 1, DefaultCacheMax},
		"not an *os.File":        {memFile{bytes.NewReader(nil)}, 0, DefaultCacheMax},
	} {
		if _, _, ok := c.open(tc.f, tc.size, tc.max); ok {
			t.Errorf("%s: cached", name)
		}
	}
	if len(c.entries) != 0 {
		t.Errorf("%d entries left", len(c.entries))
	}
}

// TestServerCacheOff: with CacheMax < 0 every block is read from the file;
// both ways serve the same bytes, and a file replaced between two boots is
// served new.
func TestServerCacheOff(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "undionly.kpxe", 300_000)
	for _, max := range []int64{0, -1} {
		addr := startServer(t, &Server{Handler: Dir(dir), CacheMax: max})
		c := &Client{Blksize: 1456, Tsize: true}
		got, _, err := get(t, c, addr, "undionly.kpxe")
		if err != nil {
			t.Fatalf("CacheMax %d: %v", max, err)
		}
		sameBytes(t, got, want)
	}
	addr := startServer(t, &Server{Handler: Dir(dir)})
	c := &Client{Blksize: 1456, Windowsize: 4}
	if _, _, err := get(t, c, addr, "undionly.kpxe"); err != nil {
		t.Fatal(err)
	}
	want = bytes.Repeat([]byte("new NBP "), 40_000)
	if err := os.WriteFile(filepath.Join(dir, "undionly.kpxe"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	got, _, err := get(t, c, addr, "undionly.kpxe")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, want)
}
