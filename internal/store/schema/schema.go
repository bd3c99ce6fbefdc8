// Package schema reads a store backend's embedded SQL migrations (one file
// per version, NNNN_name.sql) and decides which of them a database still
// needs, refusing a database whose schema is newer than this binary knows.
package schema

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Migration is one schema step.
type Migration struct {
	Version int
	Name    string // the file name, e.g. 0001_leases.sql
	SQL     string
}

// Load returns the migrations NNNN_name.sql in dir of fsys, in version
// order. Versions must be positive and distinct.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("store: list migrations: %w", err)
	}
	var ms []Migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %q: want NNNN_name.sql", n)
		}
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("store: read migration %q: %w", n, err)
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("store: migrations %s and %s have one version", ms[i-1].Name, ms[i].Name)
		}
	}
	return ms, nil
}

// Latest is the newest version in ms (0 when empty).
func Latest(ms []Migration) int {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// TooNewError is a database whose schema has a version this binary does
// not know: a newer pxed migrated it. Writing to it could break what the
// newer version relies on, so the store refuses to open it.
type TooNewError struct {
	Database string // what the user pointed pxed at, for the message
	Version  int    // newest version recorded in the database
	Known    int    // newest version this binary has
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("store: %s has schema version %d, newer than this pxed knows (%d): a newer pxed has used it; "+
		"run that newer pxed (or a newer release of this one), or point this one at another database", e.Database, e.Version, e.Known)
}

// Pending returns the migrations of ms not yet in applied (the versions a
// database records), or a *TooNewError when applied holds a version newer
// than every one in ms.
func Pending(database string, ms []Migration, applied []int) ([]Migration, error) {
	newest := slices.Max(append([]int{0}, applied...))
	if known := Latest(ms); newest > known {
		return nil, &TooNewError{Database: database, Version: newest, Known: known}
	}
	var out []Migration
	for _, m := range ms {
		if !slices.Contains(applied, m.Version) {
			out = append(out, m)
		}
	}
	return out, nil
}
