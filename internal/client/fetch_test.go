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
