package apiauth

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStore: a token is shown once and only its hash is kept, in a 0600
// file that a second Store (another process) reads.
func TestStore(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir)
	tok, e, err := s.Create(ScopeRead, "grafana", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, "pxed_") || len(tok) < 40 || !strings.HasPrefix(tok[5:], e.ID) {
		t.Fatalf("token %q id %q", tok, e.ID)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), tok[len(prefix)+8:]) {
		t.Fatalf("the token file holds the token: %q", b)
	}
	st, _ := os.Stat(filepath.Join(dir, FileName))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	other := Open(dir)
	got, ok, any, err := other.Lookup(tok)
	if err != nil || !ok || !any || got.Scope != ScopeRead || got.Name != "grafana" {
		t.Fatalf("lookup: %+v %v %v %v", got, ok, any, err)
	}
	if _, ok, _, _ := other.Lookup(tok + "x"); ok {
		t.Fatal("a longer token matched")
	}
	if n, err := other.Revoke("grafana"); n != 1 || err != nil {
		t.Fatalf("revoke by name: %d %v", n, err)
	}
	if _, ok, any, _ := s.Lookup(tok); ok || any {
		t.Fatal("revoked token still valid in the first store")
	}
}

func TestReadFileErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	for _, bad := range []string{"abc read\n", "abc root 2026-01-01T00:00:00Z " + strings.Repeat("0", 64) + "\n", "abc read yesterday " + strings.Repeat("0", 64) + "\n", "abc read 2026-01-01T00:00:00Z xyz\n"} {
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readFile(p); err == nil || !strings.Contains(err.Error(), p+":1") {
			t.Errorf("%q: err %v, want one naming %s:1", bad, err, p)
		}
	}
}

// BenchmarkCheck: the cost the guard adds to an API request (a stat of the
// token file and the hash comparisons) with 100 tokens.
func BenchmarkCheck(b *testing.B) {
	s := Open(b.TempDir())
	var tok string
	for i := 0; i < 100; i++ {
		t, _, err := s.Create(ScopeRead, "", time.Now())
		if err != nil {
			b.Fatal(err)
		}
		tok = t
	}
	g := &Guard{Tokens: s}
	r := httptest.NewRequest("GET", "/api/machines", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if d, msg := g.Check(r); d != Allow {
			b.Fatal(msg)
		}
	}
}
