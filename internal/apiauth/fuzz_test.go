package apiauth

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzCheck: whatever the method, path and Authorization header, a
// guarded path is allowed only with the right token.
func FuzzCheck(f *testing.F) {
	f.Add("GET", "/api/machines", "Bearer pxed_x")
	f.Add("POST", "/api/machines/aa/checkin", "")
	f.Add("DELETE", "/api/machines/aa", "bearer  ")
	f.Add("GET", "/boot/x", "Basic Zm9vOmJhcg==")
	f.Add("PUT", "/api/../boot/", "Bearer")
	s := Open(f.TempDir())
	admin, _, err := s.Create(ScopeAdmin, "", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	g := &Guard{Tokens: s, Exempt: []string{"/boot/"}}
	f.Fuzz(func(t *testing.T, method, path, auth string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Method, r.URL.Path = method, path
		r.Header.Set("Authorization", auth)
		d, _ := g.Check(r)
		if d == Allow && strings.HasPrefix(path, "/api/") && !isCheckin(path) && strings.TrimSpace(strings.TrimPrefix(auth, "Bearer ")) != admin {
			if _, tok, _ := strings.Cut(auth, " "); strings.TrimSpace(tok) != admin {
				t.Fatalf("%s %s with %q allowed", method, path, auth)
			}
		}
	})
}
