package store

import (
	"context"
	"fmt"
	"time"

	"pxed/internal/peers"
)

var _ peers.Store = (*SQLite)(nil)

// Heartbeat implements peers.Store. The servers sharing a SQLite file run
// on one host: its clock is the database's.
func (s *SQLite) Heartbeat(ctx context.Context, id, addr string) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO peers (id, addr, heartbeat) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, heartbeat = excluded.heartbeat`, id, addr, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("store: heartbeat of %q: %w", id, err)
	}
	return nil
}

// Announce implements peers.Store.
func (s *SQLite) Announce(ctx context.Context, p peers.Peer) error {
	_, err := s.wdb.ExecContext(ctx, `INSERT INTO peers (id, addr, config, server_ids, heartbeat) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, config = excluded.config, server_ids = excluded.server_ids,
		heartbeat = excluded.heartbeat`, p.ID, p.Addr, p.Config, peers.FormatServerIDs(p.ServerIDs), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("store: heartbeat of %q: %w", p.ID, err)
	}
	return nil
}

func (s *SQLite) peers(ctx context.Context, where string, args ...any) ([]peers.Peer, error) {
	now := time.Now()
	rows, err := s.rdb.QueryContext(ctx, `SELECT id, addr, config, server_ids, heartbeat FROM peers`+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: peers: %w", err)
	}
	defer rows.Close()
	var out []peers.Peer
	for rows.Next() {
		var p peers.Peer
		var hb int64
		var ids string
		if err := rows.Scan(&p.ID, &p.Addr, &p.Config, &ids, &hb); err != nil {
			return nil, fmt.Errorf("store: peers: %w", err)
		}
		p.ServerIDs = peers.ParseServerIDs(ids)
		p.Heartbeat = time.Unix(0, hb).UTC()
		p.Age = now.Sub(p.Heartbeat)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: peers: %w", err)
	}
	return out, nil
}

// Peers implements peers.Store.
func (s *SQLite) Peers(ctx context.Context) ([]peers.Peer, error) { return s.peers(ctx, "") }

// Alive implements peers.Store.
func (s *SQLite) Alive(ctx context.Context, within time.Duration) ([]peers.Peer, error) {
	return s.peers(ctx, ` WHERE heartbeat > ?`, time.Now().Add(-within).UnixNano())
}

// RemovePeer implements peers.Store.
func (s *SQLite) RemovePeer(ctx context.Context, id string) error {
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM peers WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: remove peer %q: %w", id, err)
	}
	return nil
}
