package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"pxed/internal/peers"
)

var _ peers.Store = (*Store)(nil)

// Heartbeat implements peers.Store, with the database's clock.
func (s *Store) Heartbeat(ctx context.Context, id, addr string) error {
	_, err := s.rpool.Exec(ctx, `INSERT INTO peers (id, addr, heartbeat) VALUES ($1, $2, clock_timestamp())
		ON CONFLICT (id) DO UPDATE SET addr = EXCLUDED.addr, heartbeat = EXCLUDED.heartbeat`, id, addr)
	if err != nil {
		return fmt.Errorf("store: heartbeat of %q: %w", id, err)
	}
	return nil
}

// Announce implements peers.Store, with the database's clock.
func (s *Store) Announce(ctx context.Context, p peers.Peer) error {
	_, err := s.rpool.Exec(ctx, `INSERT INTO peers (id, addr, config, server_ids, heartbeat) VALUES ($1, $2, $3, $4, clock_timestamp())
		ON CONFLICT (id) DO UPDATE SET addr = EXCLUDED.addr, config = EXCLUDED.config, server_ids = EXCLUDED.server_ids,
		heartbeat = EXCLUDED.heartbeat`, p.ID, p.Addr, p.Config, peers.FormatServerIDs(p.ServerIDs))
	if err != nil {
		return fmt.Errorf("store: heartbeat of %q: %w", p.ID, err)
	}
	return nil
}

const peerColumns = `id, addr, config, server_ids, heartbeat, clock_timestamp() - heartbeat`

func scanPeer(row pgx.CollectableRow) (peers.Peer, error) {
	var p peers.Peer
	var ids string
	if err := row.Scan(&p.ID, &p.Addr, &p.Config, &ids, &p.Heartbeat, &p.Age); err != nil {
		return p, err
	}
	p.ServerIDs = peers.ParseServerIDs(ids)
	p.Heartbeat = p.Heartbeat.UTC()
	return p, nil
}

func (s *Store) peers(ctx context.Context, q string, args ...any) ([]peers.Peer, error) {
	rows, err := s.rpool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: peers: %w", err)
	}
	ps, err := pgx.CollectRows(rows, scanPeer)
	if err != nil {
		return nil, fmt.Errorf("store: peers: %w", err)
	}
	return ps, nil
}

// Peers implements peers.Store.
func (s *Store) Peers(ctx context.Context) ([]peers.Peer, error) {
	return s.peers(ctx, `SELECT `+peerColumns+` FROM peers ORDER BY id`)
}

// Alive implements peers.Store.
func (s *Store) Alive(ctx context.Context, within time.Duration) ([]peers.Peer, error) {
	return s.peers(ctx, `SELECT `+peerColumns+` FROM peers WHERE heartbeat > clock_timestamp() - $1::interval ORDER BY id`, within)
}

// RemovePeer implements peers.Store.
func (s *Store) RemovePeer(ctx context.Context, id string) error {
	if _, err := s.rpool.Exec(ctx, `DELETE FROM peers WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: remove peer %q: %w", id, err)
	}
	return nil
}
