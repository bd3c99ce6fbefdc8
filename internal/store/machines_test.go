package store

import (
	"context"
	"path/filepath"
	"testing"

	"pxed/internal/fleet"
	"pxed/internal/store/storetest"
)

// TestSQLiteFleetConformance: the machines inventory on SQLite.
func TestSQLiteFleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetOpener {
		path := filepath.Join(t.TempDir(), "machines.db")
		return func(t *testing.T) (fleet.Store, func()) {
			s, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s, func() { s.Close() }
		}
	})
}
