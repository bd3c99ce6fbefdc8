package lease_test

import (
	"testing"

	"pxed/internal/lease"
	"pxed/internal/store/storetest"
)

func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) lease.Store { return lease.NewMemStore() })
}

func TestMemStoreAsyncConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) lease.Store { return storetest.AsyncPuts(lease.NewMemStore()) })
	storetest.RunAsync(t, func(*testing.T) lease.AsyncStore { return lease.NewMemStore() })
}
