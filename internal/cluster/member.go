package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/peers"
)

// Peer is one server's liveness row in the shared store (internal/peers).
type Peer = peers.Peer

// PeerStore keeps the liveness rows. The store that keeps the leases
// implements it, so that a server that cannot reach the lease database
// cannot heartbeat either, and its peers take its share over.
type PeerStore interface {
	// Announce writes p's row with the store's current time.
	Announce(ctx context.Context, p Peer) error
	// Peers returns every row, Age filled in.
	Peers(ctx context.Context) ([]Peer, error)
}

// Defaults for Member.
const (
	DefaultInterval = time.Second
	// DefaultTimeout: a server whose heartbeat is older is dead, and its
	// share goes to the others.
	DefaultTimeout = 3 * time.Second
)

// ErrConfigMismatch is what Join returns when a live peer runs another
// lease configuration.
var ErrConfigMismatch = errors.New("cluster: a live peer has a different lease configuration")

// Member is this server's membership: it heartbeats, watches its peers and
// keeps the current Share.
type Member struct {
	Self     Peer
	Store    PeerStore
	Interval time.Duration // 0: DefaultInterval
	Timeout  time.Duration // 0: DefaultTimeout
	Logger   *slog.Logger  // nil discards
	// OnChange is called (from Run's goroutine) with each new share.
	OnChange func(*Share)

	share    atomic.Pointer[Share]
	mu       sync.Mutex
	peers    []Peer // last read, for reports
	lastErr  string
	mismatch map[string]bool // peers reported for a config mismatch
	// Counters.
	heartbeatErrs, changes atomic.Uint64
}

func (m *Member) interval() time.Duration {
	if m.Interval > 0 {
		return m.Interval
	}
	return DefaultInterval
}

func (m *Member) timeout() time.Duration {
	if m.Timeout > 0 {
		return m.Timeout
	}
	return DefaultTimeout
}

func (m *Member) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return m.Logger
}

// Share returns the current share; before Join, one that owns nothing.
func (m *Member) Share() *Share {
	if s := m.share.Load(); s != nil {
		return s
	}
	return NewShare(m.Self.ID, nil)
}

// OwnsClient and OwnsAddr ask the current share (for dhcp4.Full.Owns and
// lease.Config.Owns).
func (m *Member) OwnsClient(key []byte) bool { return m.Share().OwnsClient(key) }

// Join checks the live peers' configuration against Self (refusing with
// ErrConfigMismatch, naming the peer and the fix), writes the first
// heartbeat and computes the first share. Call it before serving.
func (m *Member) Join(ctx context.Context) error {
	if m.Self.ID == "" {
		return errors.New("cluster: join: no server ID")
	}
	peers, err := m.Store.Peers(ctx)
	if err != nil {
		return fmt.Errorf("cluster: join: read peers: %w", err)
	}
	for _, p := range peers {
		if p.ID != m.Self.ID && p.Age < m.timeout() && p.Config != m.Self.Config {
			return fmt.Errorf("%w: server %s (%s) runs lease configuration %s, this one %s: give every server the same dhcp subnets, ranges and reservations, or stop %s first",
				ErrConfigMismatch, p.ID, p.Addr, p.Config, m.Self.Config, p.ID)
		}
	}
	if err := m.Store.Announce(ctx, m.Self); err != nil {
		return fmt.Errorf("cluster: join: heartbeat: %w", err)
	}
	return m.refresh(ctx)
}

// Run heartbeats and refreshes the share every Interval until ctx ends.
// When the heartbeat cannot be written the server owns nothing until it
// can again: without the database it must not hand out addresses.
func (m *Member) Run(ctx context.Context) {
	t := time.NewTicker(m.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, m.timeout())
		err := m.Store.Announce(hctx, m.Self)
		if err == nil {
			err = m.refresh(hctx)
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			m.heartbeatErrs.Add(1)
			m.set(NewShare(m.Self.ID, nil), fmt.Sprintf("database unreachable: %v", err))
		}
	}
}

// refresh reads the peers and sets the share of the live ones that agree
// with Self's configuration.
func (m *Member) refresh(ctx context.Context) error {
	peers, err := m.Store.Peers(ctx)
	if err != nil {
		return err
	}
	var live []string
	for _, p := range peers {
		if p.Age >= m.timeout() {
			continue
		}
		if p.ID != m.Self.ID && p.Config != m.Self.Config {
			m.reportMismatch(p)
			continue // never share work with a server running other rules
		}
		live = append(live, p.ID)
	}
	if !slices.Contains(live, m.Self.ID) {
		live = append(live, m.Self.ID) // our heartbeat just landed
	}
	m.mu.Lock()
	m.peers = peers
	m.mu.Unlock()
	m.set(NewShare(m.Self.ID, live), "")
	return nil
}

func (m *Member) reportMismatch(p Peer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mismatch == nil {
		m.mismatch = map[string]bool{}
	}
	if m.mismatch[p.ID] {
		return
	}
	m.mismatch[p.ID] = true
	m.log().Error("cluster: a live peer runs a different lease configuration: not sharing work with it; give every server the same dhcp subnets and ranges",
		"peer", p.ID, "peer_addr", p.Addr, "peer_config", p.Config, "config", m.Self.Config)
}

// set installs s when its live set differs from the current one, logging
// the change once.
func (m *Member) set(s *Share, why string) {
	old := m.share.Load()
	if old != nil && slices.Equal(old.live, s.live) {
		return
	}
	m.share.Store(s)
	m.changes.Add(1)
	m.mu.Lock()
	changedErr := why != m.lastErr
	m.lastErr = why
	m.mu.Unlock()
	l := m.log()
	switch {
	case why != "" && changedErr:
		l.Error("cluster: lost the database: answering no DHCP client until it is back", "server", m.Self.ID, "why", why)
	case why == "":
		l.Info("cluster: live servers", "server", m.Self.ID, "live", strings.Join(s.live, ","),
			"client_buckets", s.Buckets(), "of", 256)
	}
	if m.OnChange != nil {
		m.OnChange(s)
	}
}

// PeerGone reports whether id is the DHCPv4 server identifier of a peer
// that is not live (dead, or cut off from the database): a client that
// still asks for it gets a DHCPNAK from the server that owns it now, and
// starts over at once instead of waiting for its retransmissions to run
// out.
func (m *Member) PeerGone(id netip.Addr) bool {
	if slices.Contains(m.Self.ServerIDs, id) {
		return false
	}
	live := m.Share().live
	peer, ok := m.peerWith(id)
	return ok && !slices.Contains(live, peer)
}

// IsPeer reports whether addr is a DHCPv4 server identifier of another
// server of the cluster, live or not (for rogue server detection: a
// peer's replies are expected).
func (m *Member) IsPeer(addr netip.Addr) bool {
	_, ok := m.peerWith(addr)
	return ok
}

// peerWith returns the ID of the other server whose row, as last read,
// lists addr among its server identifiers.
func (m *Member) peerWith(addr netip.Addr) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if p.ID != m.Self.ID && slices.Contains(p.ServerIDs, addr) {
			return p.ID, true
		}
	}
	return "", false
}

// Stats are the membership counters.
type Stats struct {
	Live          int    // live servers, self included (0: no database)
	Buckets       int    // client buckets (of 256) this server owns
	HeartbeatErrs uint64 // heartbeats that failed
	Changes       uint64 // changes of the live set
}

// Stats returns the counters.
func (m *Member) Stats() Stats {
	s := m.Share()
	return Stats{Live: len(s.live), Buckets: s.Buckets(), HeartbeatErrs: m.heartbeatErrs.Load(), Changes: m.changes.Load()}
}

// Peers returns the rows last read.
func (m *Member) Peers() []Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.peers)
}
