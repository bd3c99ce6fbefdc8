package postgres

import (
	"context"
	"testing"
	"time"

	"pxed/internal/store/storetest"
)

func TestPostgresPeers(t *testing.T) {
	storetest.RunPeers(t, func(t *testing.T) storetest.PeerStore {
		s := openTemp(t, Options{})
		return storetest.PeerStore{Store: s, Age: func(t *testing.T, id string, d time.Duration) {
			if _, err := s.rpool.Exec(context.Background(), `UPDATE peers SET heartbeat = heartbeat - $1::interval WHERE id = $2`, d, id); err != nil {
				t.Fatal(err)
			}
		}}
	})
}
