package postgres

import (
	"context"
	"testing"

	"pxed/internal/fleet"
	"pxed/internal/store/pgtest"
	"pxed/internal/store/storetest"
)

func openMachines(t *testing.T, dsn string) *Machines {
	t.Helper()
	s, err := OpenMachines(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgresFleetConformance: the machines inventory on PostgreSQL.
func TestPostgresFleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetOpener {
		dsn := pgtest.DB(t)
		return func(t *testing.T) (fleet.Store, func()) {
			s := openMachines(t, dsn)
			return s, func() { s.Close() }
		}
	})
}
