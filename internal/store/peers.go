package store

import (
	"context"
	"fmt"
	"time"

	"pxed/internal/cluster"
)

var _ cluster.PeerStore = (*SQLite)(nil)

// Heartbeat implements cluster.PeerStore: p's row, stamped now.
func (s *SQLite) Heartbeat(ctx context.Context, p cluster.Peer) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO peers (id, addr, server_ids, config, heartbeat) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, server_ids = excluded.server_ids, config = excluded.config,
		heartbeat = excluded.heartbeat`,
		p.ID, p.Addr, cluster.FormatServerIDs(p.ServerIDs), p.Config, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("store: heartbeat of %s: %w", p.ID, err)
	}
	return nil
}

// Peers implements cluster.PeerStore. A SQLite file is shared only by
// processes of one host, so the host's clock is the store's clock.
func (s *SQLite) Peers(ctx context.Context) ([]cluster.Peer, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, addr, server_ids, config, heartbeat FROM peers ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: read peers: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	var out []cluster.Peer
	for rows.Next() {
		var p cluster.Peer
		var hb int64
		var ids string
		if err := rows.Scan(&p.ID, &p.Addr, &ids, &p.Config, &hb); err != nil {
			return nil, fmt.Errorf("store: read peers: %w", err)
		}
		p.ServerIDs = cluster.ParseServerIDs(ids)
		p.Age = now.Sub(time.Unix(0, hb))
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: read peers: %w", err)
	}
	return out, nil
}
