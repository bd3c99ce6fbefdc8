package httpboot

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"pxed/internal/events"
)

func TestContentType(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		// UEFI 2.10 §24.7.2: what UEFI HTTP Boot does with the download.
		{"snponly.efi", "application/efi"},
		{"sub/GRUBX64.EFI", "application/efi"},
		{"live.iso", "application/vnd.efi-iso"},
		{"images/Live.ISO", "application/vnd.efi-iso"},
		{"disk.img", "application/vnd.efi-img"},
		{"vmlinuz", "application/octet-stream"},
		{"undionly.kpxe", "application/octet-stream"},
		{"iso", "application/octet-stream"},
	} {
		if got := ContentType(tc.name); got != tc.want {
			t.Errorf("ContentType(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// imageFixture serves a profile whose image is a small ISO beside a
// kernel and an initrd named initrd.img.
func imageFixture(t *testing.T, image string, content []byte) (*fixture, string) {
	t.Helper()
	f := newFixture(t, false)
	file := filepath.Join(f.dir, image)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	p := f.h.Boot.Snapshot().Profiles["linux"]
	p.Image = file
	f.h.Boot.Snapshot().Profiles["linux"] = p
	return f, knownPath + "/" + image
}

func TestImage(t *testing.T) {
	iso := bytes.Repeat([]byte("CD001 iso bytes "), 2048) // 32 KiB
	f, url := imageFixture(t, "live.iso", iso)
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		code   int
		body   []byte
		ctype  string
		stage  events.Stage
	}{
		{"image GET: the RAM disk type of an ISO", "GET", url, nil, 200, iso, "application/vnd.efi-iso", events.StageImage},
		// EDK II asks HEAD first for the size and the type.
		{"image HEAD: type and length, no body", "HEAD", url, nil, 200, []byte{}, "application/vnd.efi-iso", events.StageImage},
		// EDK II resumes a broken download with a Range request.
		{"image Range", "GET", url, map[string]string{"Range": "bytes=100-199"}, 206, iso[100:200], "application/vnd.efi-iso", events.StageImage},
		{"initrd.img is an initrd, not a disk image", "GET", knownPath + "/initrd.img", nil, 200, f.initrd, "application/octet-stream", events.StageInitrd},
		{"kernel is bytes", "HEAD", knownPath + "/vmlinuz", nil, 200, []byte{}, "application/octet-stream", events.StageKernel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, tc.method, tc.path, tc.hdr)
			if w.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.code, w.Body)
			}
			if !bytes.Equal(w.Body.Bytes(), tc.body) {
				t.Fatalf("body %d bytes, want %d", w.Body.Len(), len(tc.body))
			}
			if ct := w.Header().Get("Content-Type"); ct != tc.ctype {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if tc.method == "HEAD" && w.Header().Get("Content-Length") == "" {
				t.Errorf("HEAD without Content-Length")
			}
			if e := lastEvent(t, f.log, knownMAC); e.Stage != tc.stage {
				t.Errorf("event %+v, want stage %s", e, tc.stage)
			}
		})
	}
}

func TestImageDiskType(t *testing.T) {
	f, url := imageFixture(t, "disk.img", []byte("disk"))
	w := f.do(t, "GET", url, nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/vnd.efi-img" {
		t.Fatalf("status %d Content-Type %q, want 200 application/vnd.efi-img", w.Code, w.Header().Get("Content-Type"))
	}
}

func TestFilesEFIType(t *testing.T) {
	f := newFixture(t, false)
	w := f.do(t, "GET", "/files/snponly.efi", nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/efi" {
		t.Fatalf("status %d Content-Type %q, want 200 application/efi (UEFI HTTP Boot runs it)", w.Code, w.Header().Get("Content-Type"))
	}
}

// TestLargeImageRange serves a sparse image larger than 4 GiB over a real
// connection (sendfile) and reads ranges past and across the 4 GiB mark:
// offsets and lengths must not be cut to 32 bits anywhere.
func TestLargeImageRange(t *testing.T) {
	const size = 5<<30 + 12345 // 5 GiB and a bit: no 32-bit size fits
	f := newFixture(t, false)
	file := filepath.Join(f.dir, "big.iso")
	fh, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := fh.Truncate(size); err != nil {
		fh.Close()
		t.Skipf("no sparse file of %d bytes here: %v", int64(size), err)
	}
	marks := map[int64][]byte{
		1<<32 - 8: []byte("ACROSS-4GiB-MARK"), // straddles 2^32
		size - 16: []byte("THE-LAST-16-BYTE"),
	}
	for off, b := range marks {
		if _, err := fh.WriteAt(b, off); err != nil {
			fh.Close()
			t.Fatal(err)
		}
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	p := f.h.Boot.Snapshot().Profiles["linux"]
	p.Image = file
	f.h.Boot.Snapshot().Profiles["linux"] = p
	f.log.Learn(netip.MustParseAddr("127.0.0.1"), knownMAC) // the test server's client
	srv := httptest.NewServer(f.mux)
	defer srv.Close()
	url := srv.URL + knownPath + "/big.iso"

	head, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.ContentLength != size || head.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("HEAD: Content-Length %d Accept-Ranges %q, want %d bytes", head.ContentLength, head.Header.Get("Accept-Ranges"), int64(size))
	}
	for off, want := range marks {
		t.Run(fmt.Sprintf("bytes=%d", off), func(t *testing.T) {
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+int64(len(want))-1))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			wantRange := fmt.Sprintf("bytes %d-%d/%d", off, off+int64(len(want))-1, int64(size))
			if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantRange ||
				resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) || !bytes.Equal(got, want) {
				t.Fatalf("status %d Content-Range %q Content-Length %q body %q; want 206 %q %d %q",
					resp.StatusCode, resp.Header.Get("Content-Range"), resp.Header.Get("Content-Length"), got, wantRange, len(want), want)
			}
		})
	}
	// An open-ended range from near the end: the last 16 bytes.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-", int64(size-16)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, marks[size-16]) {
		t.Fatalf("open-ended range: status %d body %q", resp.StatusCode, got)
	}
	if e := lastEvent(t, f.log, knownMAC); e.Stage != events.StageImage || e.Bytes != 16 {
		t.Errorf("event %+v, want an image event of 16 bytes", e)
	}
}
