package store

import (
	"testing"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

// The lease state machine over SQLite, directly and through the cache and
// deferred writes the DHCP server uses.
func TestSQLiteLifecycle(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		storetest.RunLifecycle(t, func(t *testing.T) lease.Store { return openTemp(t, Options{}) })
	})
	t.Run("cached", func(t *testing.T) {
		storetest.RunLifecycle(t, func(t *testing.T) lease.Store { return storetest.Cached(t, openTemp(t, Options{})) })
	})
}
