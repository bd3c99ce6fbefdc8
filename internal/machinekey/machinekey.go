// Package machinekey derives each machine's secrets from one server key:
// the token in the URLs pxed gives a machine (/boot/<mac>/<token>/…) and
// the token of its check-in URL. A token is HMAC-SHA256(key, purpose and
// MAC), so it is stable across restarts while the key file stays, and
// nobody without the key can compute another machine's.
package machinekey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the key's file in the data directory.
const FileName = "secret"

// keyLen is the size of the server key in bytes.
const keyLen = 32

// Key is the server key. The zero value is not usable: use Load or New.
type Key struct{ k []byte }

// New returns a random key (not saved: tokens change when pxed restarts).
func New() (*Key, error) {
	k := make([]byte, keyLen)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("machinekey: random key: %w", err)
	}
	return &Key{k: k}, nil
}

// Load reads the key from dir/secret, creating it (mode 0600, and dir,
// mode 0750) when it does not exist yet.
func Load(dir string) (*Key, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("machinekey: data dir: %w", err)
	}
	p := filepath.Join(dir, FileName)
	b, err := os.ReadFile(p)
	if err == nil {
		if len(b) < keyLen {
			return nil, fmt.Errorf("machinekey: %s holds %d bytes, want %d: remove it and restart pxed to make a new one (machines' URLs change)", p, len(b), keyLen)
		}
		return &Key{k: b[:keyLen]}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("machinekey: %w", err)
	}
	k, err := New()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return Load(dir) // another pxed made it first
	}
	if err != nil {
		return nil, fmt.Errorf("machinekey: create %s: %w", p, err)
	}
	if _, err := f.Write(k.k); err != nil {
		f.Close()
		return nil, fmt.Errorf("machinekey: write %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("machinekey: sync %s: %w", p, err)
	}
	return k, f.Close()
}

var enc = base32.StdEncoding.WithPadding(base32.NoPadding)

// token is the first 128 bits of HMAC-SHA256(key, purpose "\x00" mac),
// lower-case base32 (26 characters: URL- and file-name-safe).
func (k *Key) token(purpose, mac string) string {
	m := hmac.New(sha256.New, k.k)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(mac))
	return strings.ToLower(enc.EncodeToString(m.Sum(nil)[:16]))
}

// normalize is a MAC as boot.Normalize writes it; s unchanged when it is
// not a MAC.
func normalize(s string) string {
	hw, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err != nil {
		return s
	}
	return strings.ToLower(hw.String())
}

// URLToken is the token in the URLs of machine mac's files (for
// boot.Config.MachineToken).
func (k *Key) URLToken(mac net.HardwareAddr) string {
	return k.token("url", strings.ToLower(mac.String()))
}

// CheckinToken is the token of machine mac's check-in URL
// (POST /api/machines/{mac}/checkin?token=T). mac may be written
// aa:bb:… or aa-bb-…; the token is the same.
func (k *Key) CheckinToken(mac string) string { return k.token("checkin", normalize(mac)) }

// VerifyCheckin reports whether token is mac's check-in token, in
// constant time.
func (k *Key) VerifyCheckin(mac, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(k.CheckinToken(mac))) == 1
}
