package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"pxed/internal/tftp"
)

// loopbackTFTP serves dir on 127.0.0.1 with at most maxBlksize.
func loopbackTFTP(t *testing.T, dir string, maxBlksize int) uint16 {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tftp.Server{Handler: tftp.Dir(dir), MaxBlksize: maxBlksize}
	go s.Serve(conn)
	t.Cleanup(func() { s.Close() })
	return uint16(conn.LocalAddr().(*net.UDPAddr).Port)
}

func TestFetchTFTP(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "snponly.efi"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	lo := netip.MustParseAddr("127.0.0.1")
	p, _ := ParseProfile("efi-x64")
	for _, tc := range []struct {
		name      string
		maxBlk    int
		file      string
		check     bool
		ok        bool
		warn      string
		wantBlk   int
		wantBytes int64
	}{
		{"full", 0, "snponly.efi", false, true, "", 1468, 100_000},
		{"blksize down", 512, "snponly.efi", false, true, WarnBlksizeDown, 512, 100_000},
		{"check only", 0, "snponly.efi", true, true, "", 1468, 0},
		{"missing", 0, "nope.efi", false, false, WarnBootFileMissing, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &Fetcher{Profile: p, TFTPPort: loopbackTFTP(t, dir, tc.maxBlk)}
			var calls int
			f.Progress = func(d *Download, done, total int64) { calls++ }
			d, warns := f.TFTP(context.Background(), "nbp", lo, tc.file, tc.check)
			if d.OK() != tc.ok {
				t.Fatalf("download %+v: ok=%v, want %v", d, d.OK(), tc.ok)
			}
			var codes []string
			for _, w := range warns {
				codes = append(codes, w.Code)
			}
			if (tc.warn == "" && len(codes) > 0) || (tc.warn != "" && (len(codes) != 1 || codes[0] != tc.warn)) {
				t.Errorf("warnings = %v, want %q", codes, tc.warn)
			}
			if !tc.ok {
				return
			}
			if d.Blksize != tc.wantBlk || d.AskedBlk != 1468 || d.Windowsize != 4 {
				t.Errorf("blksize %d (asked %d) windowsize %d, want %d of 1468 and 4", d.Blksize, d.AskedBlk, d.Windowsize, tc.wantBlk)
			}
			if tc.check {
				if !d.CheckOnly || d.SHA256 != "" {
					t.Errorf("check-only download = %+v", d)
				}
				return
			}
			if d.Bytes != tc.wantBytes || d.Size != tc.wantBytes || d.SHA256 != hex.EncodeToString(sum[:]) || calls < 2 {
				t.Errorf("download = %+v (progress calls %d), want %d bytes with the file's sha256", d, calls, tc.wantBytes)
			}
		})
	}
}

func TestFetchHTTP(t *testing.T) {
	body := []byte("#!ipxe\nkernel vmlinuz\nboot\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/script.ipxe" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	sum := sha256.Sum256(body)
	p, _ := ParseProfile("ipxe-efi")
	f := &Fetcher{Profile: p}
	ctx := context.Background()

	d, warns := f.HTTP(ctx, "script", srv.URL+"/script.ipxe", false)
	if !d.OK() || len(warns) != 0 || d.SHA256 != hex.EncodeToString(sum[:]) || string(d.content) != string(body) || d.HTTPStatus != 200 {
		t.Errorf("GET script: %+v %v", d, warns)
	}
	d, warns = f.HTTP(ctx, "kernel", srv.URL+"/script.ipxe", true)
	if !d.OK() || !d.CheckOnly || len(warns) != 0 {
		t.Errorf("HEAD: %+v %v", d, warns)
	}
	d, warns = f.HTTP(ctx, "kernel", srv.URL+"/vmlinuz", true)
	if d.OK() || d.HTTPStatus != 404 || len(warns) != 1 || warns[0].Code != WarnHTTPStatus {
		t.Errorf("404: %+v %v", d, warns)
	}
	// A load test counts the bytes and does not hash them; a script is
	// still kept for parsing.
	f.SkipHash = true
	d, _ = f.HTTP(ctx, "script", srv.URL+"/script.ipxe", false)
	if !d.OK() || d.Bytes != int64(len(body)) || d.SHA256 != "" || string(d.content) != string(body) {
		t.Errorf("GET without hashing: %+v", d)
	}
}

// TestFetchHTTPCount: a load test (SkipHash) counts bodies without
// reading them into the process (the kernel drops them), and still tells a
// short body, a 404 and a chunked body apart, and follows redirects.
func TestFetchHTTPCount(t *testing.T) {
	kernel := make([]byte, 3<<20+17)
	for i := range kernel {
		kernel[i] = byte(i * 13)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/vmlinuz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(kernel)))
		w.Write(kernel)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for range 3 {
			w.Write(kernel[:100_000])
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
		bw.Write(kernel[:10_000])
		bw.Flush()
	})
	mux.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/vmlinuz", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	p, _ := ParseProfile("ipxe-efi")
	f := &Fetcher{Profile: p, SkipHash: true}
	ctx := context.Background()
	for _, tc := range []struct {
		path      string
		ok        bool
		bytes     int64
		status    int
		errSubstr string
		warn      bool
	}{
		{"/vmlinuz", true, int64(len(kernel)), 200, "", false},
		{"/chunked", true, 300_000, 200, "", false},
		{"/old", true, int64(len(kernel)), 200, "", false},
		{"/short", false, 10_000, 200, "after 10000 bytes: unexpected EOF", false},
		{"/missing", false, 0, 404, "404 Not Found", true},
	} {
		d, warns := f.HTTP(ctx, "kernel", srv.URL+tc.path, false)
		if d.OK() != tc.ok || d.Bytes != tc.bytes || d.HTTPStatus != tc.status || d.SHA256 != "" ||
			!strings.Contains(d.Err, tc.errSubstr) || (len(warns) == 1) != tc.warn {
			t.Errorf("GET %s: %+v, warnings %v; want ok %v, %d bytes, status %d, error with %q",
				tc.path, d, warns, tc.ok, tc.bytes, tc.status, tc.errSubstr)
		}
	}
	// A machine whose boot is given up on stops waiting for its kernel.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if d, _ := f.HTTP(cctx, "kernel", srv.URL+"/vmlinuz", false); d.OK() {
		t.Errorf("GET with a canceled context: %+v", d)
	}
}
