// Package journal is the lease journal of the SQLite store: an append-only
// file of lease records that pxed writes durably itself, one
// O_DIRECT|O_DSYNC write per group commit (a write and an fdatasync where
// the file system has no O_DIRECT), before any reply announcing those
// leases leaves. The SQLite database is brought up to date from it off the
// reply path, and the journal is replayed into the database at open.
//
// File format: a sequence of records, each
//
//	length  uint32, little endian: the payload's length
//	crc     uint32, little endian: CRC-32C (Castagnoli) of the payload
//	payload length bytes (see AppendLease)
//
// A file is created zero-filled (preallocated) and records are written
// one batch at a time after the last, so only the last batch of a file can
// be torn by a crash; Scan stops at the first record whose header, length
// (0: the zeros) or checksum is wrong and reports where the good records
// end, so a torn tail is detected and ignored.
//
// Files: the journal of database DB is a series of files DB.journal-N
// (N a 16-digit hexadecimal generation). Rotate starts the next
// generation; the files before it can be removed once their records are
// durable elsewhere.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"pxed/internal/lease"
)

// HeaderLen is the length of a record's header (length, CRC).
const HeaderLen = 8

// MaxPayload bounds a record's payload: a longer length field is damage,
// not a record.
const MaxPayload = 1 << 16

// format is the payload's first byte: the layout of the rest.
const format = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTorn reports a record cut short or damaged: the end of the good part
// of a file.
var ErrTorn = errors.New("journal: torn or damaged record")

// AppendLease appends the record of l to dst. Payload layout (integers
// little endian): format (1 byte), state (1), version (8), expires and
// updated in Unix nanoseconds (8 each), then the address, MAC, client key
// and hostname, each as a length (1 byte for the address and MAC, 2 for
// the key and hostname) and its bytes. Fields longer than their length
// byte allows are refused.
func AppendLease(dst []byte, l lease.Lease) ([]byte, error) {
	addr := l.Addr.AsSlice()
	if len(l.MAC) > 255 || len(l.Key) > 0xffff || len(l.Hostname) > 0xffff || len(addr) == 0 {
		return dst, fmt.Errorf("journal: lease %v: field too long for a record", l.Addr)
	}
	start := len(dst)
	dst = append(dst, make([]byte, HeaderLen)...)
	dst = append(dst, format, byte(l.State))
	dst = binary.LittleEndian.AppendUint64(dst, l.Version)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(l.Expires.UnixNano()))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(l.Updated.UnixNano()))
	dst = append(dst, byte(len(addr)))
	dst = append(dst, addr...)
	dst = append(dst, byte(len(l.MAC)))
	dst = append(dst, l.MAC...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(l.Key)))
	dst = append(dst, l.Key...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(l.Hostname)))
	dst = append(dst, l.Hostname...)
	payload := dst[start+HeaderLen:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst, nil
}

// Decode reads the record at the start of b: the lease and the record's
// length. It fails with ErrTorn when b holds less than a whole record,
// its length is 0 (a file's preallocated zeros) or the checksum does not
// match, and with another error when the payload
// checks but does not parse (a bug or a newer format, not a crash).
func Decode(b []byte) (lease.Lease, int, error) {
	if len(b) < HeaderLen {
		return lease.Lease{}, 0, ErrTorn
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > MaxPayload || uint64(len(b)-HeaderLen) < uint64(n) {
		return lease.Lease{}, 0, ErrTorn
	}
	payload := b[HeaderLen : HeaderLen+int(n)]
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return lease.Lease{}, 0, ErrTorn
	}
	l, err := decodePayload(payload)
	if err != nil {
		return lease.Lease{}, 0, err
	}
	return l, HeaderLen + int(n), nil
}

// reader walks a payload.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || len(r.b) < n {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() int {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}
func (r *reader) u16() int {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return int(binary.LittleEndian.Uint16(b))
}
func (r *reader) u64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func decodePayload(p []byte) (lease.Lease, error) {
	r := reader{b: p}
	if f := r.u8(); f != format {
		return lease.Lease{}, fmt.Errorf("journal: record format %d, want %d", f, format)
	}
	st := lease.State(r.u8())
	version := r.u64()
	expires, updated := int64(r.u64()), int64(r.u64())
	addr := r.take(r.u8())
	mac := r.take(r.u8())
	key := r.take(r.u16())
	host := r.take(r.u16())
	if r.bad || len(r.b) != 0 {
		return lease.Lease{}, errors.New("journal: record payload has the wrong length")
	}
	a, ok := netip.AddrFromSlice(addr)
	if !ok {
		return lease.Lease{}, fmt.Errorf("journal: bad address %x", addr)
	}
	if st < lease.Offered || st > lease.Declined {
		return lease.Lease{}, fmt.Errorf("journal: lease %v: bad state %d", a, st)
	}
	l := lease.Lease{Addr: a, Key: lease.ClientKey(key), State: st, Version: version,
		Expires: time.Unix(0, expires).UTC(), Updated: time.Unix(0, updated).UTC(), Hostname: string(host)}
	if len(mac) > 0 {
		l.MAC = net.HardwareAddr(slices.Clone(mac))
	}
	return l, nil
}

// Scan decodes the records of b in order, calling fn for each, and
// returns the length of the good part: b's length when every record
// decodes, else where the first torn record (or the preallocated zeros)
// starts.
func Scan(b []byte, fn func(lease.Lease)) (int, error) {
	off := 0
	for off < len(b) {
		l, n, err := Decode(b[off:])
		if errors.Is(err, ErrTorn) {
			return off, nil
		}
		if err != nil {
			return off, fmt.Errorf("at offset %d: %w", off, err)
		}
		fn(l)
		off += n
	}
	return off, nil
}

// Journal is the open journal of one database: the current generation's
// file, appended to with raw system calls.
type Journal struct {
	base string // DB path; files are base.journal-N
	gen  uint64
	fd   int
	size int64 // where the next record goes
	// prealloc is the zero-filled length the file was created with:
	// appends past it grow the file.
	prealloc int64
	// direct: fd was opened O_DIRECT|O_DSYNC, so an append is one pwrite
	// of whole blocks (the last partial block rewritten with the new
	// records after it) that returns once they are on disk. Otherwise
	// (a file system without O_DIRECT, such as tmpfs) a buffered pwrite
	// and an fdatasync.
	direct bool
	// wbuf is the block-aligned buffer of direct appends: its start holds
	// the bytes of the current partial block (size rounded down to
	// blockSize up to size).
	wbuf []byte
}

// blockSize is the alignment of direct writes: the file system's block
// on the usual systems (a device whose logical block is larger refuses
// the O_DIRECT write with EINVAL, and Append falls back to buffered
// writes).
const blockSize = 4096

// FileName is the file of generation gen.
func FileName(base string, gen uint64) string {
	return fmt.Sprintf("%s.journal-%016x", base, gen)
}

// Files lists the journal files of base, oldest first, with their
// generations.
func Files(base string) ([]string, []uint64, error) {
	matches, err := filepath.Glob(base + ".journal-*")
	if err != nil {
		return nil, nil, fmt.Errorf("journal: list %s.journal-*: %w", base, err)
	}
	type file struct {
		name string
		gen  uint64
	}
	var fs []file
	for _, m := range matches {
		g, err := strconv.ParseUint(strings.TrimPrefix(m, base+".journal-"), 16, 64)
		if err != nil {
			continue // not ours
		}
		fs = append(fs, file{m, g})
	}
	slices.SortFunc(fs, func(a, b file) int { return cmpU64(a.gen, b.gen) })
	names, gens := make([]string, len(fs)), make([]uint64, len(fs))
	for i, f := range fs {
		names[i], gens[i] = f.name, f.gen
	}
	return names, gens, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Create starts generation gen of base's journal: a file of prealloc
// zero bytes (written and synced, so that an append inside it changes no
// block allocation or size, only data and the file's times), its
// directory entry synced. The records go at its start; Scan stops at the
// zeros.
func Create(base string, gen uint64, prealloc int64) (*Journal, error) {
	name := FileName(base, gen)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", name, err)
	}
	if prealloc > 0 {
		zero := make([]byte, 1<<20)
		for off := int64(0); off < prealloc && err == nil; off += int64(len(zero)) {
			_, err = f.Write(zero[:min(int64(len(zero)), prealloc-off)])
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			os.Remove(name)
			return nil, fmt.Errorf("journal: create %s: %w", name, err)
		}
	}
	// Appends go through a descriptor of its own, O_DIRECT|O_DSYNC where
	// the file system allows it (see Journal.direct).
	direct := true
	fd, err := syscall.Open(name, syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_DIRECT|syscall.O_DSYNC, 0)
	if err == syscall.EINVAL {
		direct = false
		// The Journal owns the descriptor from here: dup it out of the
		// os.File, whose finalizer would otherwise close it.
		fd, err = syscall.Dup(int(f.Fd()))
		if err == nil {
			syscall.CloseOnExec(fd)
		}
	}
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", name, err)
	}
	if err := SyncDir(filepath.Dir(name)); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &Journal{base: base, gen: gen, fd: fd, prealloc: prealloc, direct: direct}, nil
}

// SyncDir fsyncs directory dir, making the files created or removed in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}

// Gen is the current generation.
func (j *Journal) Gen() uint64 { return j.gen }

// Size is the length of the current file.
func (j *Journal) Size() int64 { return j.size }

// Append writes recs (whole records) after the records already in the
// current file, durably: when it returns nil they are on disk. It is one
// O_DIRECT|O_DSYNC pwrite (see appendDirect), or a pwrite and an
// fdatasync where the file system has no O_DIRECT; raw system calls
// either way (the Go scheduler is not told: they cost it no hand-off of
// the thread, and no wake-up of sysmon). On failure the
// bytes written are zeroed again (synced), so that no part of a failed
// append can be read back; when even that fails, the error wraps
// ErrBroken and the journal must not be appended to again.
func (j *Journal) Append(recs []byte) error {
	if len(recs) == 0 {
		return nil
	}
	if j.direct {
		err := j.appendDirect(recs)
		if !errors.Is(err, syscall.EINVAL) {
			return err
		}
		// The device or file system refused the alignment (nothing was
		// written): buffered appends from here.
		if e := j.useBuffered(); e != nil {
			return errors.Join(err, e, ErrBroken)
		}
	}
	err := j.pwrite(recs, j.size)
	if err == nil {
		err = j.datasync()
	}
	if err != nil {
		if e := j.pwrite(make([]byte, len(recs)), j.size); e != nil {
			return errors.Join(err, e, ErrBroken)
		}
		if e := j.datasync(); e != nil {
			return errors.Join(err, e, ErrBroken)
		}
		return err
	}
	j.size += int64(len(recs))
	return nil
}

// appendDirect writes recs after the records in the file through the
// O_DIRECT|O_DSYNC descriptor: the current partial block, then recs, then
// zeros to the end of the last block (the file's preallocated zeros, or
// its new end), in one pwrite that returns when the blocks are on disk:
// the page cache's write-back and the separate fdatasync are skipped.
// On failure the same blocks are written back as they were (the partial
// block, then zeros), so no part of the failed append can be read back.
func (j *Journal) appendDirect(recs []byte) error {
	base := j.size &^ (blockSize - 1)
	head := int(j.size - base) // bytes of the partial block, at wbuf's start
	end := head + len(recs)
	n := (end + blockSize - 1) &^ (blockSize - 1)
	if len(j.wbuf) < n {
		w := alignedBlocks(n + n/2)
		copy(w, j.wbuf[:head])
		j.wbuf = w
	}
	w := j.wbuf[:n]
	copy(w[head:], recs)
	clear(w[end:])
	err := j.pwrite(w, base)
	if errors.Is(err, syscall.EINVAL) {
		return err // the alignment refused: nothing written
	}
	if err != nil {
		clear(w[head:])
		if e := j.pwrite(w, base); e != nil {
			return errors.Join(err, e, ErrBroken)
		}
		return err
	}
	j.size += int64(len(recs))
	// Keep the new partial block at wbuf's start for the next append.
	if last := end &^ (blockSize - 1); last > 0 {
		copy(w, w[last:end])
	}
	return nil
}

// useBuffered replaces the O_DIRECT|O_DSYNC descriptor by a plain one:
// appends are a buffered pwrite and an fdatasync from here.
func (j *Journal) useBuffered() error {
	name := FileName(j.base, j.gen)
	fd, err := syscall.Open(name, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("journal: reopen %s: %w", name, err)
	}
	syscall.Close(j.fd)
	j.fd, j.direct = fd, false
	return nil
}

// alignedBlocks returns a zeroed buffer of at least n bytes, rounded up
// to whole blocks, whose start is block-aligned in memory (O_DIRECT
// requires it).
func alignedBlocks(n int) []byte {
	n = (n + blockSize - 1) &^ (blockSize - 1)
	b := make([]byte, n+blockSize)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (blockSize - 1))
	if off != 0 {
		off = blockSize - off
	}
	return b[off : off+n : off+n]
}

// Full reports whether the records have used up the preallocated part.
func (j *Journal) Full() bool { return j.size >= j.prealloc }

func (j *Journal) datasync() error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_FDATASYNC, uintptr(j.fd), 0, 0); e != 0 {
		return fmt.Errorf("journal: fdatasync %s: %w", FileName(j.base, j.gen), e)
	}
	return nil
}

// ErrBroken marks a journal whose file could not be restored after a
// failed append.
var ErrBroken = errors.New("journal: broken")

// pwrite writes all of b at off with raw pwrite(2)s.
func (j *Journal) pwrite(b []byte, off int64) error {
	for len(b) > 0 {
		n, _, e := syscall.RawSyscall6(syscall.SYS_PWRITE64, uintptr(j.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(off), 0, 0)
		if e == syscall.EINTR || e == syscall.EAGAIN {
			continue
		}
		if e != 0 {
			return fmt.Errorf("journal: write %s: %w", FileName(j.base, j.gen), e)
		}
		if n == 0 {
			return fmt.Errorf("journal: write %s: wrote nothing", FileName(j.base, j.gen))
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

// Close closes the current file (its records stay).
func (j *Journal) Close() error {
	if j.fd < 0 {
		return nil
	}
	err := syscall.Close(j.fd)
	j.fd = -1
	if err != nil {
		return fmt.Errorf("journal: close %s: %w", FileName(j.base, j.gen), err)
	}
	return nil
}
