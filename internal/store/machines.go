package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

// The machines inventory, runtime profiles and kept timelines
// (fleet.Store), in the tables of migration 0002. A PostgreSQL backend
// implements the same interface with the same tables.

var _ fleet.Store = (*SQLite)(nil)

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// LoadMachines implements fleet.Store.
func (s *SQLite) LoadMachines(ctx context.Context) ([]fleet.Machine, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT mac, uuid, arch, firmware, first_seen, last_seen, address, hostname,
		labels, profile, state, boot_once, last_stage, last_event FROM machines`)
	if err != nil {
		return nil, fmt.Errorf("store: load machines: %w", err)
	}
	defer rows.Close()
	var out []fleet.Machine
	for rows.Next() {
		var m fleet.Machine
		var first, last, lastEv int64
		var labels, once, state string
		if err := rows.Scan(&m.MAC, &m.UUID, &m.Arch, &m.Firmware, &first, &last, &m.Address, &m.Hostname,
			&labels, &m.Profile, &state, &once, &m.LastStage, &lastEv); err != nil {
			return nil, fmt.Errorf("store: load machines: %w", err)
		}
		m.FirstSeen, m.LastSeen, m.LastEvent, m.State = fromNano(first), fromNano(last), fromNano(lastEv), boot.State(state)
		if err := fleet.SetStoredColumns(&m, labels, once); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// SaveMachines implements fleet.Store: one transaction for the batch.
func (s *SQLite) SaveMachines(ctx context.Context, ms []fleet.Machine) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO machines (mac, uuid, arch, firmware, first_seen, last_seen, address, hostname,
			labels, profile, state, boot_once, last_stage, last_event) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (mac) DO UPDATE SET uuid = excluded.uuid, arch = excluded.arch, firmware = excluded.firmware,
			first_seen = excluded.first_seen, last_seen = excluded.last_seen, address = excluded.address, hostname = excluded.hostname,
			labels = excluded.labels, profile = excluded.profile, state = excluded.state, boot_once = excluded.boot_once,
			last_stage = excluded.last_stage, last_event = excluded.last_event`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, m := range ms {
			labels, once := fleet.StoredColumns(m)
			if _, err := st.ExecContext(ctx, m.MAC, m.UUID, m.Arch, m.Firmware, unixNano(m.FirstSeen), unixNano(m.LastSeen), m.Address,
				m.Hostname, labels, m.Profile, string(m.State), once, m.LastStage, unixNano(m.LastEvent)); err != nil {
				return fmt.Errorf("machine %s: %w", m.MAC, err)
			}
		}
		return nil
	})
}

// DeleteMachine implements fleet.Store; its kept events go too.
func (s *SQLite) DeleteMachine(ctx context.Context, mac string) error {
	s.evMu.Lock()
	delete(s.evCount, mac)
	s.evMu.Unlock()
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM machines WHERE mac = ?`, mac); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM machine_events WHERE mac = ?`, mac)
		return err
	})
}

// LoadProfiles implements fleet.Store.
func (s *SQLite) LoadProfiles(ctx context.Context) ([]fleet.Profile, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, body FROM profiles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: load profiles: %w", err)
	}
	defer rows.Close()
	var out []fleet.Profile
	for rows.Next() {
		var name, body string
		if err := rows.Scan(&name, &body); err != nil {
			return nil, fmt.Errorf("store: load profiles: %w", err)
		}
		var p fleet.Profile
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			return nil, fmt.Errorf("store: profile %s: %w", name, err)
		}
		p.Name = name
		out = append(out, p)
	}
	return out, rows.Err()
}

// SaveProfile implements fleet.Store.
func (s *SQLite) SaveProfile(ctx context.Context, p fleet.Profile) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO profiles (name, body, updated) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated = excluded.updated`, p.Name, string(b), time.Now().UnixNano())
		return err
	})
}

// DeleteProfile implements fleet.Store.
func (s *SQLite) DeleteProfile(ctx context.Context, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM profiles WHERE name = ?`, name)
		return err
	})
}

// AppendEvents implements fleet.Store: the events, and the machines that
// have gathered twice keep cut to their newest keep, in one transaction
// (cutting every machine at every flush cost a query per machine).
func (s *SQLite) AppendEvents(ctx context.Context, evs []events.Event, keep int) error {
	s.evMu.Lock()
	defer s.evMu.Unlock()
	if s.evCount == nil {
		s.evCount = map[string]int{}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO machine_events (mac, time, stage, detail, ip, bytes, duration) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, e := range evs {
			ip := ""
			if e.IP.IsValid() {
				ip = e.IP.String()
			}
			if _, err := st.ExecContext(ctx, e.MAC, unixNano(e.Time), string(e.Stage), e.Detail, ip, e.Bytes, int64(e.Dur)); err != nil {
				return err
			}
			s.evCount[e.MAC]++
		}
		for mac, n := range s.evCount {
			if n < 2*keep {
				continue
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM machine_events WHERE mac = ? AND id <= (
				SELECT id FROM machine_events WHERE mac = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`, mac, mac, keep); err != nil {
				return err
			}
			s.evCount[mac] = keep
		}
		return nil
	})
}

// LoadEvents implements fleet.Store: every kept event, a machine's
// between keep and three times keep (AppendEvents cuts them in steps).
func (s *SQLite) LoadEvents(ctx context.Context) ([]events.Event, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT mac, time, stage, detail, ip, bytes, duration FROM machine_events ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: load events: %w", err)
	}
	defer rows.Close()
	var out []events.Event
	for rows.Next() {
		var e events.Event
		var t, dur int64
		var stage, ip string
		if err := rows.Scan(&e.MAC, &t, &stage, &e.Detail, &ip, &e.Bytes, &dur); err != nil {
			return nil, fmt.Errorf("store: load events: %w", err)
		}
		e.Time, e.Stage, e.Dur = fromNano(t), events.Stage(stage), time.Duration(dur)
		if a, err := netip.ParseAddr(ip); err == nil {
			e.IP = a
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// tx runs f in one write transaction.
func (s *SQLite) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := f(tx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	return nil
}
