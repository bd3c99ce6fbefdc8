package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString: the hand JSON encoder's strings decode back to what
// was encoded (valid UTF-8; invalid bytes become U+FFFD as encoding/json
// makes them).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s", "<&>", "\x00\x1f\x7f", "é中\u2028\u2029", "bad\xff\xfe", "\t\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not JSON: %v", s, b, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; compare with it.
			wb, _ := json.Marshal(s)
			_ = json.Unmarshal(wb, &want)
		}
		if got != want {
			t.Fatalf("round trip of %q: got %q, want %q", s, got, want)
		}
		if wb, _ := json.Marshal(s); string(wb) != string(b) {
			t.Fatalf("appendString(%q) = %s, encoding/json %s", s, b, wb)
		}
	})
}

// FuzzFleetBodies sends arbitrary bodies to every endpoint that reads
// one: the answer is a success or a JSON 4xx, never a 5xx or a panic.
func FuzzFleetBodies(f *testing.F) {
	for _, s := range []string{`{"profile":"install"}`, `{"profile":null,"labels":{"a":"b"}}`, `{"labels":{"":"x"}}`,
		`{"profile":"install","then":"local"}`, `{"kernel":"vmlinuz","cmdline":"{{.MAC}}"}`, `{"kernel":"../x"}`,
		`{"kernel":"vmlinuz","initrds":["a","a"]}`, `{"boot_files":{"bios":"/etc/x"}}`, `[]`, `null`, `{`, `{"profile":1}`, ``} {
		f.Add(s)
	}
	mux, _ := newFleetAPI(f, 2)
	f.Fuzz(func(t *testing.T, body string) {
		for _, r := range []struct{ method, path string }{
			{"PATCH", "/api/machines/52:54:00:00:00:01"},
			{"POST", "/api/machines/52:54:00:00:00:01/boot-once"},
			{"PUT", "/api/profiles/fz"},
		} {
			w := do(t, mux, r.method, r.path, body)
			if w.Code >= 500 {
				t.Fatalf("%s %s %q: %d %s", r.method, r.path, body, w.Code, w.Body.String())
			}
			if w.Code >= 400 && !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s %q: %d, error not JSON: %s", r.method, r.path, body, w.Code, w.Body.String())
			}
			if w.Code == http.StatusOK && !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s %s: answer not JSON", r.method, r.path)
			}
		}
	})
}
