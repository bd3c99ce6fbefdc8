package store

import (
	"testing"
	"time"

	"pxed/internal/store/storetest"
)

func TestSQLitePeers(t *testing.T) {
	storetest.RunPeers(t, func(t *testing.T) storetest.PeerStore {
		s := openTemp(t, Options{})
		return storetest.PeerStore{Store: s, Age: func(t *testing.T, id string, d time.Duration) {
			if _, err := s.wdb.Exec(`UPDATE peers SET heartbeat = heartbeat - ? WHERE id = ?`, d.Nanoseconds(), id); err != nil {
				t.Fatal(err)
			}
		}}
	})
}
