package storetest

import (
	"testing"

	"pxed/internal/lease"
)

func TestMemStoreLifecycle(t *testing.T) {
	RunLifecycle(t, func(*testing.T) lease.Store { return lease.NewMemStore() })
}
