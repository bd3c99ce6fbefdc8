package httpboot

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// UEFI HTTP boot clients are offered /files/NBP; the default NBPs live in the
// iPXE directory, so /files/ falls back to it after the boot directory.
func TestFilesFallBackToIPXEDir(t *testing.T) {
	bootDir, ipxeDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ipxeDir, "snponly.efi"), []byte("nbp"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bootDir, "snponly.efi.local"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := &Handler{Dirs: []string{bootDir, ipxeDir}}
	mux := http.NewServeMux()
	h.Register(mux)
	for path, want := range map[string]int{"/files/snponly.efi": 200, "/files/missing.efi": 404, "/files/../../etc/passwd": 404} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want && !(want == 404 && rec.Code >= 300 && rec.Code < 500) {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
		}
		if want == 200 && rec.Body.String() != "nbp" {
			t.Errorf("GET %s body %q, want the iPXE dir's file", path, rec.Body.String())
		}
	}
}
