package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"pxed/internal/lease"
	"pxed/internal/store/groupcommit"
)

// writeSQL writes a set of leases on distinct addresses in one statement:
// version 0 rows are inserted unless the address has a row, the others
// update the row whose version they name. It returns the addresses
// written; the others lost their compare-and-swap.
const writeSQL = `WITH req AS (
	SELECT * FROM unnest($1::inet[], $2::bytea[], $3::bytea[], $4::bytea[], $5::text[],
		$6::timestamptz[], $7::timestamptz[], $8::bigint[])
		AS r (addr, client_key, mac, hostname, state, expires, updated, version)
), ins AS (
	INSERT INTO leases (` + columns + `)
	SELECT addr, client_key, mac, hostname, state, expires, updated, 1 FROM req WHERE version = 0 ORDER BY addr
	ON CONFLICT (addr) DO NOTHING
	RETURNING addr
), upd AS (
	UPDATE leases l SET client_key = r.client_key, mac = r.mac, hostname = r.hostname, state = r.state,
		expires = r.expires, updated = r.updated, version = l.version + 1
	FROM req r WHERE r.version <> 0 AND l.addr = r.addr AND l.version = r.version
	RETURNING l.addr
)
SELECT addr FROM ins UNION ALL SELECT addr FROM upd`

// segment is the leases of one writeSQL statement, as its arguments.
type segment struct {
	reqs              []*groupcommit.Req
	addrs             []netip.Addr
	keys, macs, hosts [][]byte
	states            []string
	expires, updated  []time.Time
	versions          []int64
}

func (g *segment) add(r *groupcommit.Req) {
	l := r.Lease
	var mac []byte
	if len(l.MAC) > 0 {
		mac = l.MAC
	}
	g.reqs = append(g.reqs, r)
	g.addrs = append(g.addrs, l.Addr)
	g.keys = append(g.keys, []byte(l.Key))
	g.macs = append(g.macs, mac)
	g.hosts = append(g.hosts, []byte(l.Hostname))
	g.states = append(g.states, l.State.String())
	g.expires = append(g.expires, l.Expires)
	g.updated = append(g.updated, l.Updated)
	g.versions = append(g.versions, int64(l.Version))
}

// segments splits a batch where an address comes again (a write queued
// over one not yet committed): one statement sees the table as it was
// before it, so the second write of an address goes to the next
// statement, which runs after the first in the same transaction.
func segments(batch []*groupcommit.Req) []*segment {
	var out []*segment
	var cur *segment
	seen := map[netip.Addr]bool{}
	for _, r := range batch {
		if r.Err != nil {
			continue // its caller gave up
		}
		if cur == nil || seen[r.Lease.Addr] {
			cur = &segment{}
			out = append(out, cur)
			clear(seen)
		}
		seen[r.Lease.Addr] = true
		cur.add(r)
	}
	return out
}

// retries is how often a batch the database rolled back for a deadlock or
// a serialization failure (two servers writing the same rows in another
// order) is sent again; any other error fails it.
const retries = 3

// flush is the committer's groupcommit.Flush: the whole batch is one
// pgx.Batch (one round trip; its statements run in one implicit
// transaction, committed at its end), normally one statement.
func (s *Store) flush(batch []*groupcommit.Req) error {
	segs := segments(batch)
	if len(segs) == 0 {
		return nil
	}
	var err error
	for range retries {
		var written []map[netip.Addr]bool
		written, err = s.send(segs)
		if err == nil {
			for i, g := range segs {
				for _, r := range g.reqs {
					if !written[i][r.Lease.Addr] {
						r.Err = lease.ErrConflict
						continue
					}
					out := r.Lease
					out.Version++
					// PostgreSQL keeps microseconds.
					out.Expires, out.Updated = out.Expires.Truncate(time.Microsecond).UTC(), out.Updated.Truncate(time.Microsecond).UTC()
					r.Out = out
				}
			}
			return nil
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001") {
			break
		}
	}
	return err
}

// send runs the segments in one round trip and one transaction and
// returns, per segment, the addresses written. It returns only once the
// transaction is committed.
func (s *Store) send(segs []*segment) ([]map[netip.Addr]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.commitTimeout)
	defer cancel()
	b := &pgx.Batch{}
	for _, g := range segs {
		b.Queue(writeSQL, g.addrs, g.keys, g.macs, g.hosts, g.states, g.expires, g.updated, g.versions)
	}
	br := s.wpool.SendBatch(ctx, b)
	written := make([]map[netip.Addr]bool, len(segs))
	for i := range segs {
		rows, err := br.Query()
		if err == nil {
			var addrs []netip.Addr
			addrs, err = pgx.CollectRows(rows, pgx.RowTo[netip.Addr])
			written[i] = make(map[netip.Addr]bool, len(addrs))
			for _, a := range addrs {
				written[i][a] = true
			}
		}
		if err != nil {
			br.Close()
			return nil, fmt.Errorf("write %d leases: %w", len(segs[i].reqs), err)
		}
	}
	// The statements' results arrive before the commit: Close waits for
	// the end of the implicit transaction (ReadyForQuery).
	if err := br.Close(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return written, nil
}
