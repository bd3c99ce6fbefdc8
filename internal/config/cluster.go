package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"regexp"
	"time"

	"pxed/internal/lease"
)

// Cluster is the cluster section: several pxed servers in the server role
// sharing one lease database (internal/cluster). On, each server writes a
// heartbeat row every Heartbeat; the live ones split the clients and the
// free addresses, and take a dead server's share over after Timeout.
type Cluster struct {
	Enabled bool `yaml:"enabled"`
	// ServerID names this server among its peers; default: made once and
	// kept in DATA_DIR/server-id.
	ServerID  string   `yaml:"server_id"`
	Heartbeat Duration `yaml:"heartbeat"` // default 1s
	Timeout   Duration `yaml:"timeout"`   // default 3s
}

// Defaults of the cluster section.
const (
	DefaultClusterHeartbeat = time.Second
	DefaultClusterTimeout   = 3 * time.Second
)

// HeartbeatInterval and LivenessTimeout return the settings or defaults.
func (c Cluster) HeartbeatInterval() time.Duration {
	if c.Heartbeat > 0 {
		return c.Heartbeat.D()
	}
	return DefaultClusterHeartbeat
}

// LivenessTimeout: see Cluster.Timeout.
func (c Cluster) LivenessTimeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout.D()
	}
	return DefaultClusterTimeout
}

var serverIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (c *Config) validateCluster() Errors {
	var es Errors
	cl := c.Cluster
	if !cl.Enabled {
		return nil
	}
	if c.DHCP.Mode != ModeServer && c.DHCP6.Mode != ModeServer {
		es = append(es, c.errorf("cluster.enabled", "a cluster shares leases: it needs dhcp mode server (or dhcp6 mode server); remove the cluster section for ProxyDHCP, which any number of servers can run side by side"))
	}
	if cl.ServerID != "" && !serverIDRe.MatchString(cl.ServerID) {
		es = append(es, c.errorf("cluster.server_id", "%q: write 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. pxe-a)", cl.ServerID))
	}
	if cl.LivenessTimeout() < 2*cl.HeartbeatInterval() {
		es = append(es, c.errorf("cluster.timeout", "%v is less than two heartbeats (%v): a live server would be taken for dead; write at least %v",
			cl.LivenessTimeout(), cl.HeartbeatInterval(), 3*cl.HeartbeatInterval()))
	}
	return es
}

// LeaseConfigHash is a short hash of the lease configuration of the server
// role (subnets, ranges, reservations, lease times of both families), which
// every server of a cluster must share: peers compare it at start.
// Each server's own address (option 54) and interface names are left out:
// they differ from server to server by design.
func (c *Config) LeaseConfigHash() string {
	v4, _ := c.ServerSubnets()
	v6, _ := c.ServerSubnets6()
	var subs []lease.Subnet
	for _, s := range v4 {
		s.Lease.ServerID = netip.Addr{}
		subs = append(subs, s.Lease)
	}
	for _, s := range v6 {
		s.Lease.ServerID = netip.Addr{}
		subs = append(subs, s.Lease)
	}
	b, _ := json.Marshal(subs)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
