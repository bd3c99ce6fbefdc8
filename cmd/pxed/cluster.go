package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"pxed/internal/cluster"
	"pxed/internal/config"
	"pxed/internal/lease"

	"github.com/prometheus/client_golang/prometheus"
)

// serverIDFile keeps a cluster member's name across restarts, so that a
// restarted server takes its own share back.
const serverIDFile = "server-id"

// serverID returns cfg's cluster.server_id, else the name kept in
// DATA_DIR/server-id, made (host name and 6 random hex digits) the first
// time.
func serverID(cfg *config.Config) (string, error) {
	if cfg.Cluster.ServerID != "" {
		return cfg.Cluster.ServerID, nil
	}
	if cfg.DataDir == "" {
		return "", usagef("cluster: name this server among its peers: write cluster.server_id (or pass --server-id), or give --data-dir where pxed keeps a name it makes")
	}
	path := filepath.Join(cfg.DataDir, serverIDFile)
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("cluster: read %s: %w", path, err)
	}
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return -1
	}, host)
	if host == "" || len(host) > 48 {
		host = "pxed"
	}
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	id := host + "-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("cluster: write %s: %w", path, err)
	}
	return id, nil
}

// newMember prepares cluster membership when cfg turns it on; nil
// otherwise. st is the lease store, which must keep the peers' rows.
func newMember(cfg *config.Config, st any, log *slog.Logger) (*cluster.Member, error) {
	if !cfg.Cluster.Enabled {
		return nil, nil
	}
	ps, ok := st.(cluster.PeerStore)
	if !ok {
		return nil, usagef("cluster: this lease store cannot keep the peers' heartbeats")
	}
	id, err := serverID(cfg)
	if err != nil {
		return nil, err
	}
	var ids []netip.Addr
	if subs, err := cfg.ServerSubnets(); err == nil && cfg.DHCP.Mode == config.ModeServer {
		for _, s := range subs {
			if s.Lease.ServerID.IsValid() {
				ids = append(ids, s.Lease.ServerID)
			}
		}
	}
	return &cluster.Member{
		Self:     cluster.Peer{ID: id, Addr: cfg.HTTPAddr, ServerIDs: ids, Config: cfg.LeaseConfigHash()},
		Store:    ps,
		Interval: cfg.Cluster.HeartbeatInterval(),
		Timeout:  cfg.Cluster.LivenessTimeout(),
		Logger:   log.With("proto", "cluster"),
	}, nil
}

// leaseConfig is lc with the cluster's split of the free addresses when
// this server is a member.
func (ls *leaseServer) leaseConfig(lc lease.Config) lease.Config {
	if m := ls.member; m != nil {
		lc.Owns = func(a netip.Addr) bool { return m.Share().OwnsAddr(a) }
		lc.Shared = true
	}
	return lc
}

// joinCluster joins (checking the peers' configuration), then keeps the
// membership alive until ctx ends; each change of the live servers makes
// the Managers rescan for the free addresses they now own.
func (ls *leaseServer) joinCluster(ctx context.Context) error {
	m := ls.member
	if m == nil {
		return nil
	}
	m.OnChange = func(*cluster.Share) {
		for _, mg := range ls.managers {
			mg.Rescan()
		}
	}
	if err := m.Join(ctx); err != nil {
		if errors.Is(err, cluster.ErrConfigMismatch) {
			return usageError{err}
		}
		return err
	}
	if ls.full != nil {
		ls.full.Owns, ls.full.PeerGone = m.OwnsClient, m.PeerGone
	}
	if ls.full6 != nil {
		ls.full6.Owns = m.OwnsClient
	}
	go m.Run(ctx)
	return nil
}

// registerClusterMetrics exposes the membership.
func registerClusterMetrics(reg *prometheus.Registry, m *cluster.Member) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("pxed_cluster_live_servers", "Live servers of the cluster this server sees, itself included (0: it lost the database).",
		func() float64 { return float64(m.Stats().Live) })
	gauge("pxed_cluster_client_buckets", "RFC 3074 client buckets (of 256) this server answers.",
		func() float64 { return float64(m.Stats().Buckets) })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_cluster_heartbeat_errors_total",
		Help: "Heartbeats this server could not write (database unreachable): it answers no DHCP client meanwhile."},
		func() float64 { return float64(m.Stats().HeartbeatErrs) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_cluster_changes_total",
		Help: "Changes of the set of live servers."}, func() float64 { return float64(m.Stats().Changes) }))
}

// clusterPeer is one row of GET /api/cluster.
type clusterPeer struct {
	ID     string  `json:"id"`
	Addr   string  `json:"addr"`
	Config string  `json:"config"`
	AgeSec float64 `json:"heartbeat_age_seconds"`
	Live   bool    `json:"live"`
	Self   bool    `json:"self"`
}

// clusterAPI is GET /api/cluster: this server, its peers, who is live and
// how many client buckets this server answers.
func clusterAPI(m *cluster.Member) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sh := m.Share()
		live := map[string]bool{}
		for _, id := range sh.Live() {
			live[id] = true
		}
		out := struct {
			Self    string        `json:"self"`
			Buckets int           `json:"client_buckets"`
			Peers   []clusterPeer `json:"peers"`
		}{Self: m.Self.ID, Buckets: sh.Buckets(), Peers: []clusterPeer{}}
		for _, p := range m.Peers() {
			out.Peers = append(out.Peers, clusterPeer{ID: p.ID, Addr: p.Addr, Config: p.Config, AgeSec: p.Age.Seconds(),
				Live: live[p.ID], Self: p.ID == m.Self.ID})
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	}
}
