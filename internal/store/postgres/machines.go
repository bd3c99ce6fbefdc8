package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

// Machines is the machines inventory, the runtime profiles and the
// machines' last events (fleet.SharedStore) in the tables of migration
// 0002, shared by every pxed server on the database. It has connections
// of its own: the inventory's batched writes never wait behind, nor hold
// up, a lease commit.
//
// Peers' changes: every row carries the id of the transaction that wrote
// it (xid8). PeerChanges reads the rows of transactions not yet finished
// at its previous read (at or after that snapshot's xmin): no commit is
// missed, whatever order concurrent transactions commit in, and a row may
// be read twice (applying it is idempotent; events are deduplicated).
type Machines struct {
	s  *Store
	id string // this process's mark on the events it writes

	evMu    sync.Mutex
	evCount map[string]int // events appended per machine since its last cut

	pollMu  sync.Mutex
	mCursor uint64             // machines and forgotten: xmin of the previous read
	eCursor uint64             // events: xmin of the previous read
	eSeen   map[int64]struct{} // events read at eCursor or later; nil until LoadEvents
}

var _ fleet.SharedStore = (*Machines)(nil)

// OpenMachines connects to dsn and applies the migrations (Open's
// options; MaxBatch and CommitInterval do not apply). Close it when done.
func OpenMachines(ctx context.Context, dsn string, opts Options) (*Machines, error) {
	opts.Readers = 2
	s, err := Open(ctx, dsn, opts)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: server id: %w", err)
	}
	return &Machines{s: s, id: hex.EncodeToString(b[:]), evCount: map[string]int{}}, nil
}

// Close closes the connections.
func (m *Machines) Close() error { return m.s.Close() }

// String names the database (no password).
func (m *Machines) String() string { return m.s.String() }

func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

const machineColumns = `mac, uuid, arch, firmware, first_seen, last_seen, address, hostname, labels, profile, state, boot_once, last_stage, last_event`

func scanMachine(row pgx.CollectableRow) (fleet.Machine, error) {
	var m fleet.Machine
	var first, last, lastEv *time.Time
	var labels, once, state string
	if err := row.Scan(&m.MAC, &m.UUID, &m.Arch, &m.Firmware, &first, &last, &m.Address, &m.Hostname,
		&labels, &m.Profile, &state, &once, &m.LastStage, &lastEv); err != nil {
		return m, err
	}
	m.FirstSeen, m.LastSeen, m.LastEvent, m.State = fromTS(first), fromTS(last), fromTS(lastEv), boot.State(state)
	if err := fleet.SetStoredColumns(&m, labels, once); err != nil {
		return m, err
	}
	return m, nil
}

func machineArgs(m fleet.Machine) []any {
	labels, once := fleet.StoredColumns(m)
	return []any{m.MAC, m.UUID, m.Arch, m.Firmware, ts(m.FirstSeen), ts(m.LastSeen), m.Address, m.Hostname,
		labels, m.Profile, string(m.State), once, m.LastStage, ts(m.LastEvent)}
}

// xmin is the oldest transaction still running: every transaction at or
// after it may commit later.
const xminQuery = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// LoadMachines implements fleet.Store; PeerChanges reads from here on.
func (m *Machines) LoadMachines(ctx context.Context) ([]fleet.Machine, error) {
	var cur uint64
	if err := m.s.rpool.QueryRow(ctx, xminQuery).Scan(&cur); err != nil {
		return nil, fmt.Errorf("store: load machines: %w", err)
	}
	rows, err := m.s.rpool.Query(ctx, `SELECT `+machineColumns+` FROM machines`)
	if err != nil {
		return nil, fmt.Errorf("store: load machines: %w", err)
	}
	ms, err := pgx.CollectRows(rows, scanMachine)
	if err != nil {
		return nil, fmt.Errorf("store: load machines: %w", err)
	}
	m.pollMu.Lock()
	m.mCursor = cur
	m.pollMu.Unlock()
	return ms, nil
}

// tx runs f in one transaction: its statements go in one batch (one round
// trip) when f only queues.
func (m *Machines) tx(ctx context.Context, f func(b *pgx.Batch)) error {
	ctx, cancel := context.WithTimeout(ctx, m.s.commitTimeout)
	defer cancel()
	b := &pgx.Batch{}
	f(b)
	if b.Len() == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, m.s.wpool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

const upsertMachine = `INSERT INTO machines (` + machineColumns + `, txid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, pg_current_xact_id())
	ON CONFLICT (mac) DO UPDATE SET `

// SaveMachines implements fleet.Store: the rows as given (an operator's
// change), but first seen, last seen and the last event never go back in
// time (another server may have seen the machine since). One
// transaction, one round trip.
func (m *Machines) SaveMachines(ctx context.Context, ms []fleet.Machine) error {
	return m.tx(ctx, func(b *pgx.Batch) {
		for _, mc := range ms {
			b.Queue(upsertMachine+`labels = excluded.labels, profile = excluded.profile, state = excluded.state, boot_once = excluded.boot_once, `+
				seenSet, machineArgs(mc)...)
		}
		unforget(b, ms)
	})
}

// newer: the write saw the machine last (or the row never saw it).
const newer = `(machines.last_seen IS NULL OR excluded.last_seen >= machines.last_seen)`

// seenSet updates the facts of a row when the write saw the machine last.
const seenSet = `txid = excluded.txid,
	first_seen = LEAST(machines.first_seen, excluded.first_seen),
	last_seen = GREATEST(machines.last_seen, excluded.last_seen),
	uuid = CASE WHEN ` + newer + ` AND excluded.uuid <> '' THEN excluded.uuid ELSE machines.uuid END,
	arch = CASE WHEN ` + newer + ` AND excluded.arch <> '' THEN excluded.arch ELSE machines.arch END,
	firmware = CASE WHEN ` + newer + ` AND excluded.firmware <> '' THEN excluded.firmware ELSE machines.firmware END,
	address = CASE WHEN ` + newer + ` AND excluded.address <> '' THEN excluded.address ELSE machines.address END,
	hostname = CASE WHEN ` + newer + ` AND excluded.hostname <> '' THEN excluded.hostname ELSE machines.hostname END,
	last_stage = CASE WHEN machines.last_event IS NULL OR excluded.last_event >= machines.last_event THEN excluded.last_stage ELSE machines.last_stage END,
	last_event = GREATEST(machines.last_event, excluded.last_event)`

// SaveSeen implements fleet.SharedStore: the facts only; a row another
// server's operator changed keeps its state, profile, labels and
// boot-once.
func (m *Machines) SaveSeen(ctx context.Context, ms []fleet.Machine) error {
	return m.tx(ctx, func(b *pgx.Batch) {
		for _, mc := range ms {
			b.Queue(upsertMachine+seenSet, machineArgs(mc)...)
		}
		unforget(b, ms)
	})
}

// unforget drops the marks of machines forgotten that are written again,
// in the transaction that writes them: a peer's read sees either the mark
// or the row, never a mark newer than it looks.
func unforget(b *pgx.Batch, ms []fleet.Machine) {
	macs := make([]string, len(ms))
	for i, mc := range ms {
		macs[i] = mc.MAC
	}
	b.Queue(`DELETE FROM machines_forgotten WHERE mac = ANY($1)`, macs)
}

// DeleteMachine implements fleet.Store; its kept events go too, and the
// other servers forget it at their next poll.
func (m *Machines) DeleteMachine(ctx context.Context, mac string) error {
	m.evMu.Lock()
	delete(m.evCount, mac)
	m.evMu.Unlock()
	return m.tx(ctx, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM machines WHERE mac = $1`, mac)
		b.Queue(`DELETE FROM machine_events WHERE mac = $1`, mac)
		b.Queue(`INSERT INTO machines_forgotten (mac) VALUES ($1) ON CONFLICT (mac) DO UPDATE SET at = clock_timestamp(), txid = pg_current_xact_id()`, mac)
		b.Queue(`DELETE FROM machines_forgotten WHERE at < clock_timestamp() - interval '1 day'`)
	})
}

// LoadProfiles implements fleet.Store.
func (m *Machines) LoadProfiles(ctx context.Context) ([]fleet.Profile, error) {
	rows, err := m.s.rpool.Query(ctx, `SELECT name, body FROM profiles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: load profiles: %w", err)
	}
	ps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (fleet.Profile, error) {
		var name, body string
		var p fleet.Profile
		if err := row.Scan(&name, &body); err != nil {
			return p, err
		}
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			return p, fmt.Errorf("profile %s: %w", name, err)
		}
		p.Name = name
		return p, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: load profiles: %w", err)
	}
	return ps, nil
}

// SaveProfile implements fleet.Store.
func (m *Machines) SaveProfile(ctx context.Context, p fleet.Profile) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return m.tx(ctx, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO profiles (name, body, updated) VALUES ($1, $2, clock_timestamp())
			ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated = excluded.updated`, p.Name, string(body))
	})
}

// DeleteProfile implements fleet.Store.
func (m *Machines) DeleteProfile(ctx context.Context, name string) error {
	return m.tx(ctx, func(b *pgx.Batch) { b.Queue(`DELETE FROM profiles WHERE name = $1`, name) })
}

// AppendEvents implements fleet.Store: the events, and the machines this
// server has added keep events to since their last cut, cut to their newest
// keep, in one transaction. Each server cuts what it adds: a machine keeps
// at most keep plus twice keep per server.
func (m *Machines) AppendEvents(ctx context.Context, evs []events.Event, keep int) error {
	m.evMu.Lock()
	defer m.evMu.Unlock()
	n := len(evs)
	macs, stages, details, ips, srv := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times, bytes, durs := make([]time.Time, n), make([]int64, n), make([]int64, n)
	for i, e := range evs {
		macs[i], stages[i], details[i], srv[i] = e.MAC, string(e.Stage), e.Detail, m.id
		if e.IP.IsValid() {
			ips[i] = e.IP.String()
		}
		times[i], bytes[i], durs[i] = e.Time, e.Bytes, int64(e.Dur)
	}
	var cut []string
	counts := map[string]int{}
	for _, e := range evs {
		counts[e.MAC]++
	}
	for mac, c := range counts {
		if m.evCount[mac]+c >= 2*keep {
			cut = append(cut, mac)
		}
	}
	err := m.tx(ctx, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO machine_events (mac, time, stage, detail, ip, bytes, duration, server)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[])`,
			macs, times, stages, details, ips, bytes, durs, srv)
		if len(cut) > 0 {
			b.Queue(`DELETE FROM machine_events e USING (
				SELECT id, row_number() OVER (PARTITION BY mac ORDER BY id DESC) AS n FROM machine_events WHERE mac = ANY($1)) old
				WHERE e.id = old.id AND old.n > $2`, cut, keep)
		}
	})
	if err != nil {
		return err
	}
	for mac, c := range counts {
		m.evCount[mac] += c
	}
	for _, mac := range cut {
		m.evCount[mac] = 0
	}
	return nil
}

func scanEvent(row pgx.CollectableRow, id *int64) (events.Event, error) {
	var e events.Event
	var stage, ip string
	var dur int64
	if err := row.Scan(id, &e.MAC, &e.Time, &stage, &e.Detail, &ip, &e.Bytes, &dur); err != nil {
		return e, err
	}
	e.Time, e.Stage, e.Dur = e.Time.UTC(), events.Stage(stage), time.Duration(dur)
	if a, err := netip.ParseAddr(ip); err == nil {
		e.IP = a
	}
	return e, nil
}

const eventColumns = `id, mac, time, stage, detail, ip, bytes, duration`

// LoadEvents implements fleet.Store: every kept event, by time;
// PeerChanges reads the other servers' from here on.
func (m *Machines) LoadEvents(ctx context.Context) ([]events.Event, error) {
	var cur uint64
	if err := m.s.rpool.QueryRow(ctx, xminQuery).Scan(&cur); err != nil {
		return nil, fmt.Errorf("store: load events: %w", err)
	}
	rows, err := m.s.rpool.Query(ctx, `SELECT `+eventColumns+`, txid >= $1::text::xid8 FROM machine_events ORDER BY time, id`, fmt.Sprint(cur))
	if err != nil {
		return nil, fmt.Errorf("store: load events: %w", err)
	}
	seen := map[int64]struct{}{}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.Event, error) {
		var e events.Event
		var stage, ip string
		var dur, id int64
		var recent bool
		if err := row.Scan(&id, &e.MAC, &e.Time, &stage, &e.Detail, &ip, &e.Bytes, &dur, &recent); err != nil {
			return e, err
		}
		if recent {
			seen[id] = struct{}{}
		}
		e.Time, e.Stage, e.Dur = e.Time.UTC(), events.Stage(stage), time.Duration(dur)
		if a, err := netip.ParseAddr(ip); err == nil {
			e.IP = a
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: load events: %w", err)
	}
	m.pollMu.Lock()
	m.eCursor, m.eSeen = cur, seen
	m.pollMu.Unlock()
	return evs, nil
}

// PeerChanges implements fleet.SharedStore: one read-only transaction
// (one snapshot), its xmin the next read's start.
func (m *Machines) PeerChanges(ctx context.Context) (fleet.Delta, error) {
	m.pollMu.Lock()
	defer m.pollMu.Unlock()
	var d fleet.Delta
	var next uint64
	seen := map[int64]struct{}{}
	err := pgx.BeginTxFunc(ctx, m.s.rpool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, xminQuery).Scan(&next); err != nil {
			return err
		}
		mc, ec := fmt.Sprint(m.mCursor), fmt.Sprint(m.eCursor)
		rows, err := tx.Query(ctx, `SELECT `+machineColumns+` FROM machines WHERE txid >= $1::text::xid8`, mc)
		if err != nil {
			return err
		}
		if d.Machines, err = pgx.CollectRows(rows, scanMachine); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT mac FROM machines_forgotten WHERE txid >= $1::text::xid8`, mc)
		if err != nil {
			return err
		}
		if d.Forgotten, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if m.eSeen == nil {
			return nil // LoadEvents never called: the timelines are not kept here
		}
		rows, err = tx.Query(ctx, `SELECT `+eventColumns+` FROM machine_events WHERE txid >= $1::text::xid8 AND server <> $2 ORDER BY time, id`, ec, m.id)
		if err != nil {
			return err
		}
		var id int64
		evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.Event, error) {
			e, err := scanEvent(row, &id)
			seen[id] = struct{}{}
			if _, dup := m.eSeen[id]; dup {
				e.MAC = "" // dropped below
			}
			return e, err
		})
		if err != nil {
			return err
		}
		for _, e := range evs {
			if e.MAC != "" {
				d.Events = append(d.Events, e)
			}
		}
		return nil
	})
	if err != nil {
		return fleet.Delta{}, fmt.Errorf("store: peers' changes: %w", err)
	}
	// Profiles: few rows, read whole (outside the transaction is fine:
	// the fleet compares them with its own).
	if d.Profiles, err = m.LoadProfiles(ctx); err != nil {
		return fleet.Delta{}, err
	}
	m.mCursor = next
	if m.eSeen != nil {
		m.eCursor, m.eSeen = next, seen
	}
	return d, nil
}
