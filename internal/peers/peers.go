// Package peers describes the pxed servers that share one lease database:
// each writes a heartbeat row (its id, the address its peers reach it at,
// the time) every few seconds, and reads which peers are alive. It is the
// groundwork of splitting the clients between servers and taking over a
// dead server's share; the store backends (SQLite, PostgreSQL) implement
// Store, checked by storetest.RunPeers.
package peers

import (
	"context"
	"time"
)

// Peer is one server's heartbeat row.
type Peer struct {
	ID        string    // the server's id, unique among the servers of one database
	Addr      string    // where its peers reach it (e.g. its API, host:port); may be empty
	Heartbeat time.Time // its last heartbeat, by the database's clock
	// Age is how long ago Heartbeat was when the row was read, by the
	// database's clock (so the servers' clocks need not agree).
	Age time.Duration
}

// Store keeps the heartbeat rows.
type Store interface {
	// Heartbeat records that server id (reached at addr) is alive now,
	// creating its row or updating it.
	Heartbeat(ctx context.Context, id, addr string) error
	// Peers returns every row, by id.
	Peers(ctx context.Context) ([]Peer, error)
	// Alive returns the rows whose heartbeat is less than within old, by
	// id.
	Alive(ctx context.Context, within time.Duration) ([]Peer, error)
	// RemovePeer deletes server id's row (a server leaving for good).
	RemovePeer(ctx context.Context, id string) error
}
