package config

import (
	"time"
)

// Limits bound every resource an unauthenticated peer on the boot network
// can make pxed hold. Zero fields take the defaults in DefaultLimits; README's
// "Limits" table documents each.
type Limits struct {
	// TFTPTransfers is the most TFTP transfers running at once (each holds
	// a socket); further read requests wait in the admission queue.
	TFTPTransfers int `yaml:"tftp_transfers"`
	// TFTPTransfersPerClient is the most transfers one client address runs
	// at once; its further requests wait in the queue behind other clients'.
	TFTPTransfersPerClient int `yaml:"tftp_transfers_per_client"`
	// TFTPQueue is the most read requests waiting for a transfer slot;
	// past it a request is refused with a TFTP error at once.
	TFTPQueue int `yaml:"tftp_queue"`
	// TFTPQueueWait is the longest a read request waits in the queue
	// before it is refused with a TFTP error.
	TFTPQueueWait Duration `yaml:"tftp_queue_wait"`
	// TFTPMaxTimeout is the largest RFC 2349 timeout option pxed accepts;
	// a larger one is not acknowledged and pxed's own timeout applies.
	TFTPMaxTimeout Duration `yaml:"tftp_max_timeout"`

	// HTTPConnections is the most HTTP connections open at once; past it
	// the oldest idle connection is closed, else the new one is refused.
	HTTPConnections int `yaml:"http_connections"`
	// HTTPConnectionsPerClient is the most connections one client address
	// holds; past it its oldest idle connection is closed, else the new
	// one is refused.
	HTTPConnectionsPerClient int `yaml:"http_connections_per_client"`
	// HTTPHeaderTimeout bounds reading a request's line and headers.
	HTTPHeaderTimeout Duration `yaml:"http_header_timeout"`
	// HTTPIdleTimeout closes a keep-alive connection idle this long.
	HTTPIdleTimeout Duration `yaml:"http_idle_timeout"`
	// HTTPWriteTimeout ends a response whose client takes nothing for
	// this long (a download may last longer as long as it progresses).
	HTTPWriteTimeout Duration `yaml:"http_write_timeout"`
	// HTTPChunksDuringTFTP is how many 1 MiB chunks of HTTP file
	// downloads are sent at once, across all downloads, while TFTP
	// transfers run (each slot then rests three times as long as its
	// chunk took): firmware's TFTP is latency-bound and gives up after a
	// few timeouts, HTTP (TCP) just waits. -1 never holds HTTP back.
	HTTPChunksDuringTFTP int `yaml:"http_chunks_during_tftp"`
	// HTTPMaxHeaderBytes bounds a request's line (the URL) and headers.
	HTTPMaxHeaderBytes int `yaml:"http_max_header_bytes"`

	// EventsPerMachine is the most events kept per machine's timeline.
	EventsPerMachine int `yaml:"events_per_machine"`
	// EventsMemoryMB bounds the memory of all timelines together; past it
	// the machines seen least recently are forgotten.
	EventsMemoryMB int `yaml:"events_memory_mb"`
	// Machines is the most machines with a timeline.
	Machines int `yaml:"machines"`
	// DHCPNewClients is how many new clients (no reservation, offer or
	// lease) may DISCOVER within DHCPNewClientsWindow before pxed reports a
	// starvation pattern (event, metric, warning); they are still answered
	// while addresses last. -1 turns the report off.
	DHCPNewClients       int      `yaml:"dhcp_new_clients"`
	DHCPNewClientsWindow Duration `yaml:"dhcp_new_clients_window"`
	// Addresses is the most address→machine associations learned from DHCP
	// (to name the machine behind a TFTP or HTTP request); the oldest is
	// forgotten first.
	Addresses int `yaml:"addresses"`
}

// DefaultLimits are the limits of a configuration that sets none.
var DefaultLimits = Limits{
	TFTPTransfers:            1000,
	TFTPTransfersPerClient:   64,
	TFTPQueue:                4096,
	TFTPQueueWait:            Duration(30 * time.Second),
	TFTPMaxTimeout:           Duration(10 * time.Second),
	HTTPConnections:          4096,
	HTTPConnectionsPerClient: 1024,
	HTTPHeaderTimeout:        Duration(10 * time.Second),
	HTTPIdleTimeout:          Duration(60 * time.Second),
	HTTPWriteTimeout:         Duration(60 * time.Second),
	HTTPMaxHeaderBytes:       16 << 10,
	HTTPChunksDuringTFTP:     1,
	EventsPerMachine:         256,
	EventsMemoryMB:           64,
	Machines:                 20000,
	Addresses:                65536,
	DHCPNewClients:           128,
	DHCPNewClientsWindow:     Duration(10 * time.Second),
}

// defaults fills every zero field from DefaultLimits.
func (l *Limits) defaults() {
	d := DefaultLimits
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *Duration, def Duration) {
		if *v == 0 {
			*v = def
		}
	}
	// A per-client limit left unset never exceeds the total it is part of.
	if l.TFTPTransfersPerClient == 0 && l.TFTPTransfers > 0 {
		l.TFTPTransfersPerClient = min(d.TFTPTransfersPerClient, l.TFTPTransfers)
	}
	if l.HTTPConnectionsPerClient == 0 && l.HTTPConnections > 0 {
		l.HTTPConnectionsPerClient = min(d.HTTPConnectionsPerClient, l.HTTPConnections)
	}
	setInt(&l.TFTPTransfers, d.TFTPTransfers)
	setInt(&l.TFTPTransfersPerClient, d.TFTPTransfersPerClient)
	setInt(&l.TFTPQueue, d.TFTPQueue)
	setDur(&l.TFTPQueueWait, d.TFTPQueueWait)
	setDur(&l.TFTPMaxTimeout, d.TFTPMaxTimeout)
	setInt(&l.HTTPConnections, d.HTTPConnections)
	setInt(&l.HTTPConnectionsPerClient, d.HTTPConnectionsPerClient)
	setDur(&l.HTTPHeaderTimeout, d.HTTPHeaderTimeout)
	setDur(&l.HTTPIdleTimeout, d.HTTPIdleTimeout)
	setDur(&l.HTTPWriteTimeout, d.HTTPWriteTimeout)
	setInt(&l.HTTPMaxHeaderBytes, d.HTTPMaxHeaderBytes)
	setInt(&l.HTTPChunksDuringTFTP, d.HTTPChunksDuringTFTP)
	setInt(&l.EventsPerMachine, d.EventsPerMachine)
	setInt(&l.EventsMemoryMB, d.EventsMemoryMB)
	setInt(&l.Machines, d.Machines)
	setInt(&l.Addresses, d.Addresses)
	setInt(&l.DHCPNewClients, d.DHCPNewClients)
	setDur(&l.DHCPNewClientsWindow, d.DHCPNewClientsWindow)
}

// validate checks each limit's range after defaults.
func (c *Config) validateLimits() Errors {
	var es Errors
	l := &c.Limits
	ints := []struct {
		field    string
		v        int
		min, max int
	}{
		{"tftp_transfers", l.TFTPTransfers, 1, 100000},
		{"tftp_transfers_per_client", l.TFTPTransfersPerClient, 1, 100000},
		{"tftp_queue", l.TFTPQueue, 1, 1000000},
		{"http_connections", l.HTTPConnections, 8, 100000},
		{"http_connections_per_client", l.HTTPConnectionsPerClient, 1, 100000},
		{"http_max_header_bytes", l.HTTPMaxHeaderBytes, 1024, 1 << 20},
		{"http_chunks_during_tftp", l.HTTPChunksDuringTFTP, -1, 100000},
		{"events_per_machine", l.EventsPerMachine, 1, 100000},
		{"events_memory_mb", l.EventsMemoryMB, 1, 1 << 16},
		{"machines", l.Machines, 1, 10000000},
		{"addresses", l.Addresses, 1, 10000000},
		{"dhcp_new_clients", l.DHCPNewClients, -1, 10000000},
	}
	for _, f := range ints {
		if f.v < f.min || f.v > f.max {
			es = append(es, c.errorf("limits."+f.field, "%d is out of range: write a number from %d to %d", f.v, f.min, f.max))
		}
	}
	durs := []struct {
		field    string
		v        Duration
		min, max time.Duration
	}{
		{"tftp_queue_wait", l.TFTPQueueWait, time.Second, 10 * time.Minute},
		{"tftp_max_timeout", l.TFTPMaxTimeout, time.Second, 255 * time.Second},
		{"http_header_timeout", l.HTTPHeaderTimeout, time.Second, time.Hour},
		{"http_idle_timeout", l.HTTPIdleTimeout, time.Second, time.Hour},
		{"http_write_timeout", l.HTTPWriteTimeout, time.Second, time.Hour},
		{"dhcp_new_clients_window", l.DHCPNewClientsWindow, time.Second, time.Hour},
	}
	for _, f := range durs {
		if f.v.D() < f.min || f.v.D() > f.max {
			es = append(es, c.errorf("limits."+f.field, "%v is out of range: write a duration from %v to %v", f.v.D(), f.min, f.max))
		}
	}
	if l.TFTPTransfersPerClient > l.TFTPTransfers {
		es = append(es, c.errorf("limits.tftp_transfers_per_client", "%d is more than tftp_transfers (%d): write at most %d",
			l.TFTPTransfersPerClient, l.TFTPTransfers, l.TFTPTransfers))
	}
	if l.HTTPConnectionsPerClient > l.HTTPConnections {
		es = append(es, c.errorf("limits.http_connections_per_client", "%d is more than http_connections (%d): write at most %d",
			l.HTTPConnectionsPerClient, l.HTTPConnections, l.HTTPConnections))
	}
	return es
}
