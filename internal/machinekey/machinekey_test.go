package machinekey

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", st, err)
	}
	k2, err := Load(dir) // a restart
	if err != nil {
		t.Fatal(err)
	}
	a := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}
	b := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}
	if k1.URLToken(a) != k2.URLToken(a) || k1.CheckinToken("52:54:00:00:00:01") != k2.CheckinToken("52-54-00-00-00-01") {
		t.Error("tokens change across a restart or with the MAC's spelling")
	}
	if k1.URLToken(a) == k1.URLToken(b) || k1.URLToken(a) == k1.CheckinToken(a.String()) {
		t.Error("two machines or two purposes share a token")
	}
	if len(k1.URLToken(a)) != 26 {
		t.Errorf("token %q: want 26 characters (128 bits)", k1.URLToken(a))
	}
	other, _ := New()
	if other.URLToken(a) == k1.URLToken(a) {
		t.Error("another key makes the same token")
	}
	if !k1.VerifyCheckin("52-54-00-00-00-01", k1.CheckinToken("52:54:00:00:00:01")) || k1.VerifyCheckin("52:54:00:00:00:02", k1.CheckinToken("52:54:00:00:00:01")) ||
		k1.VerifyCheckin("52:54:00:00:00:01", "") {
		t.Error("VerifyCheckin")
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Error("a short key file was accepted")
	}
}

// TestLoadMakesDataDir: a data dir that does not exist yet (a first
// `pxed boot --data-dir /var/lib/pxed/new`) is made, not an error.
func TestLoadMakesDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	k, err := Load(dir)
	if err != nil {
		t.Fatalf("Load on a data dir that does not exist: %v", err)
	}
	again, err := Load(dir)
	if err != nil || again.CheckinToken("52:54:00:00:00:01") != k.CheckinToken("52:54:00:00:00:01") {
		t.Fatalf("Load again: %v, or another key", err)
	}
}
