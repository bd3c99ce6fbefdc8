// Package apiauth guards pxed's API with bearer tokens: read scope for
// GET and HEAD, admin scope for every other method. Tokens are created
// once (`pxed tokens create`), shown once, and kept only as SHA-256
// hashes in the data directory's file "tokens" (mode 0600). A token is
// 32 random bytes, so a plain hash is as hard to reverse as the token is
// to guess.
package apiauth

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Scope is what a token may do.
type Scope string

// Scopes.
const (
	ScopeRead  Scope = "read"  // GET and HEAD
	ScopeAdmin Scope = "admin" // everything
)

// ParseScope parses "read" or "admin".
func ParseScope(s string) (Scope, error) {
	switch Scope(s) {
	case ScopeRead, ScopeAdmin:
		return Scope(s), nil
	}
	return "", fmt.Errorf("scope %q: write read or admin", s)
}

// FileName is the token file in the data directory.
const FileName = "tokens"

// Token is one stored token: its hash, never the token itself.
type Token struct {
	ID      string    // first characters of the token, to name it (list, revoke)
	Scope   Scope     //
	Name    string    // the operator's label; may be empty
	Created time.Time //
	Hash    [32]byte  // SHA-256 of the whole token
}

// prefix starts every token, so a leaked one is recognisable.
const prefix = "pxed_"

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// newToken returns a fresh token and its ID.
func newToken() (tok, id string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("apiauth: random token: %w", err)
	}
	tok = prefix + strings.ToLower(enc.EncodeToString(b))
	return tok, tok[len(prefix) : len(prefix)+8], nil
}

// Store is the token file of a data directory. Its methods reread the
// file when it changed, so tokens created or revoked by `pxed tokens`
// take effect in a running server at once.
type Store struct {
	Path string // the file; see Open

	mu      sync.Mutex
	tokens  []Token
	modTime time.Time
	size    int64
	loaded  bool
}

// Open returns the store of data directory dir (the file need not exist).
func Open(dir string) *Store { return &Store{Path: filepath.Join(dir, FileName)} }

// refresh rereads the file when its size or time changed.
func (s *Store) refresh() error {
	st, err := os.Stat(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		s.tokens, s.loaded, s.modTime, s.size = nil, true, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("apiauth: %w", err)
	}
	if s.loaded && st.ModTime().Equal(s.modTime) && st.Size() == s.size {
		return nil
	}
	ts, err := readFile(s.Path)
	if err != nil {
		return err
	}
	s.tokens, s.loaded, s.modTime, s.size = ts, true, st.ModTime(), st.Size()
	return nil
}

// readFile parses the token file: one token a line,
// "ID SCOPE CREATED SHA256HEX NAME…"; # starts a comment.
func readFile(path string) ([]Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apiauth: %w", err)
	}
	defer f.Close()
	var out []Token
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, " ", 5)
		if len(fields) < 4 {
			return nil, fmt.Errorf("apiauth: %s:%d: want \"ID SCOPE CREATED SHA256 [NAME]\"", path, n)
		}
		t := Token{ID: fields[0]}
		if t.Scope, err = ParseScope(fields[1]); err != nil {
			return nil, fmt.Errorf("apiauth: %s:%d: %v", path, n, err)
		}
		if t.Created, err = time.Parse(time.RFC3339, fields[2]); err != nil {
			return nil, fmt.Errorf("apiauth: %s:%d: created: %v", path, n, err)
		}
		h, err := hex.DecodeString(fields[3])
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("apiauth: %s:%d: the hash is not 64 hex digits", path, n)
		}
		copy(t.Hash[:], h)
		if len(fields) == 5 {
			t.Name = fields[4]
		}
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("apiauth: %s: %w", path, err)
	}
	return out, nil
}

// write replaces the file with ts (mode 0600, renamed into place).
func (s *Store) write(ts []Token) error {
	var sb strings.Builder
	sb.WriteString("# pxed API tokens (SHA-256 hashes; `pxed tokens list|create|revoke`)\n")
	for _, t := range ts {
		fmt.Fprintf(&sb, "%s %s %s %s %s\n", t.ID, t.Scope, t.Created.UTC().Format(time.RFC3339), hex.EncodeToString(t.Hash[:]), t.Name)
	}
	tmp := s.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("apiauth: %w", err)
	}
	if _, err := f.WriteString(sb.String()); err != nil {
		f.Close()
		return fmt.Errorf("apiauth: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("apiauth: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("apiauth: %w", err)
	}
	if err := os.Rename(tmp, s.Path); err != nil {
		return fmt.Errorf("apiauth: %w", err)
	}
	s.loaded = false
	return nil
}

// Create makes a new token of scope, stores its hash and returns the
// token (the only time it is seen) and its entry.
func (s *Store) Create(scope Scope, name string, now time.Time) (string, Token, error) {
	if strings.ContainsAny(name, "\r\n") {
		return "", Token{}, errors.New("apiauth: a token name is one line")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return "", Token{}, err
	}
	tok, id, err := newToken()
	if err != nil {
		return "", Token{}, err
	}
	t := Token{ID: id, Scope: scope, Name: name, Created: now.UTC().Truncate(time.Second), Hash: sha256.Sum256([]byte(tok))}
	if err := s.write(append(append([]Token(nil), s.tokens...), t)); err != nil {
		return "", Token{}, err
	}
	return tok, t, nil
}

// List returns the stored tokens.
func (s *Store) List() ([]Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return nil, err
	}
	return append([]Token(nil), s.tokens...), nil
}

// Revoke removes the tokens whose ID or name is idOrName and returns how
// many it removed.
func (s *Store) Revoke(idOrName string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return 0, err
	}
	var keep []Token
	for _, t := range s.tokens {
		if t.ID != idOrName && (t.Name == "" || t.Name != idOrName) {
			keep = append(keep, t)
		}
	}
	n := len(s.tokens) - len(keep)
	if n == 0 {
		return 0, nil
	}
	return n, s.write(keep)
}

// Lookup returns the stored token tok is, comparing hashes in constant
// time with every stored one; ok false when none matches. any reports
// whether any token exists at all.
func (s *Store) Lookup(tok string) (t Token, ok, any bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return Token{}, false, false, err
	}
	h := sha256.Sum256([]byte(tok))
	for _, c := range s.tokens {
		if subtle.ConstantTimeCompare(h[:], c.Hash[:]) == 1 {
			t, ok = c, true
		}
	}
	return t, ok, len(s.tokens) > 0, nil
}
