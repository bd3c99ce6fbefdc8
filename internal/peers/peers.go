// Package peers describes the pxed servers that share one lease database:
// each writes a heartbeat row (its id, the address its peers reach it at,
// the time) every few seconds, and reads which peers are alive. It is the
// groundwork of splitting the clients between servers and taking over a
// dead server's share; the store backends (SQLite, PostgreSQL) implement
// Store, checked by storetest.RunPeers.
package peers

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// Peer is one server's heartbeat row.
type Peer struct {
	ID        string    // the server's id, unique among the servers of one database
	Addr      string    // where its peers reach it (e.g. its API, host:port); may be empty
	Heartbeat time.Time // its last heartbeat, by the database's clock
	// Config is a hash of the server's lease configuration (subnets,
	// ranges, reservations): the servers of one cluster must agree.
	Config string
	// ServerIDs are its DHCPv4 server identifiers (option 54: its
	// address on each subnet), so that the others recognise a client
	// still asking for it after it died.
	ServerIDs []netip.Addr
	// Age is how long ago Heartbeat was when the row was read, by the
	// database's clock (so the servers' clocks need not agree).
	Age time.Duration
}

// Store keeps the heartbeat rows.
type Store interface {
	// Heartbeat records that server id (reached at addr) is alive now,
	// creating its row or updating it.
	Heartbeat(ctx context.Context, id, addr string) error
	// Announce is Heartbeat with the whole row: p's ID, Addr, Config and
	// ServerIDs (its Heartbeat and Age are the database's to set).
	Announce(ctx context.Context, p Peer) error
	// Peers returns every row, by id.
	Peers(ctx context.Context) ([]Peer, error)
	// Alive returns the rows whose heartbeat is less than within old, by
	// id.
	Alive(ctx context.Context, within time.Duration) ([]Peer, error)
	// RemovePeer deletes server id's row (a server leaving for good).
	RemovePeer(ctx context.Context, id string) error
}

// FormatServerIDs and ParseServerIDs keep Peer.ServerIDs in one text
// column: comma-separated addresses.
func FormatServerIDs(ids []netip.Addr) string {
	ss := make([]string, len(ids))
	for i, a := range ids {
		ss[i] = a.String()
	}
	return strings.Join(ss, ",")
}

// ParseServerIDs: see FormatServerIDs. Entries that are not addresses are
// skipped.
func ParseServerIDs(s string) []netip.Addr {
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(f)); err == nil {
			out = append(out, a)
		}
	}
	return out
}
