package lease_test

import (
	"testing"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) lease.Store { return lease.NewMemStore() })
}
