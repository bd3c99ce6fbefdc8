package tftp

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// DefaultCacheMax is the largest file Server shares in memory between its
// transfers when Server.CacheMax is 0: boot programs (iPXE, shim, GRUB,
// pxelinux) are well below it; initrds and images are not cached.
const DefaultCacheMax = 16 << 20

// fileKey identifies one version of a file: a file replaced (renamed over)
// or rewritten in place gets a new key, so a transfer never mixes two
// versions. Only a rewrite to the same size within the file system's
// timestamp granularity keeps the key: transfers starting while one of the
// old version still runs would then get the old content.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// cachedFile is the content of one file version while transfers use it.
type cachedFile struct {
	refs  int           // transfers holding it; guarded by fileCache.mu
	ready chan struct{} // closed once data or err is set
	data  []byte
	err   error
}

// fileCache shares the content of small files between concurrent transfers.
// A storm of machines loading one NBP reads it once, instead of one pread
// per block per machine (a tenth of the server's CPU with 500 machines
// in lockstep). An entry lives while a transfer uses it, so memory is
// bounded by the distinct files being served at once.
type fileCache struct {
	mu      sync.Mutex
	entries map[fileKey]*cachedFile
}

// memFile serves a transfer from a shared, read-only copy.
type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// open returns a File reading f's content from memory and a function that
// releases it, or ok false when f is not a regular *os.File of known size at
// most max bytes or cannot be read whole (the transfer then reads f).
func (c *fileCache) open(f File, size, max int64) (mf File, release func(), ok bool) {
	of, isOS := f.(*os.File)
	if !isOS || size < 0 || size > max {
		return nil, nil, false
	}
	st, err := of.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != size {
		return nil, nil, false
	}
	sys, isStat := st.Sys().(*syscall.Stat_t)
	if !isStat {
		return nil, nil, false
	}
	key := fileKey{dev: uint64(sys.Dev), ino: sys.Ino, size: size, mtime: sys.Mtim, ctime: sys.Ctim}

	c.mu.Lock()
	if c.entries == nil {
		c.entries = make(map[fileKey]*cachedFile)
	}
	e := c.entries[key]
	load := e == nil
	if load {
		e = &cachedFile{ready: make(chan struct{})}
		c.entries[key] = e
	}
	e.refs++
	c.mu.Unlock()

	release = func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if e.refs--; e.refs == 0 && c.entries[key] == e {
			delete(c.entries, key)
		}
	}
	if load {
		e.data, e.err = readWhole(of, size)
		close(e.ready)
	} else {
		<-e.ready
	}
	if e.err != nil {
		release()
		return nil, nil, false
	}
	return memFile{bytes.NewReader(e.data)}, release, true
}

// readWhole reads the size bytes of f from offset 0.
func readWhole(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return nil, fmt.Errorf("tftp: read %s whole: %w", f.Name(), err)
	}
	return b, nil
}
