package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"pxed/internal/store/schema"
)

// A lease file a newer pxed migrated is refused, saying what to do.
func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "leases.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (999, '0999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(context.Background(), path, Options{})
	var tn *schema.TooNewError
	if !errors.As(err, &tn) || tn.Version != 999 {
		t.Fatalf("Open of a newer schema: err = %v, want a TooNewError for version 999", err)
	}
	if !strings.Contains(err.Error(), "newer than this pxed knows") {
		t.Errorf("error %q does not explain", err)
	}
}
