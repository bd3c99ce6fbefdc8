package main

import (
	"encoding/binary"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"

	"pxed/internal/config"
)

// fdReserve is the descriptors kept outside the TFTP and HTTP limits: DHCP
// sockets, the lease database, log files, the listeners, files being served
// over HTTP (one per download in flight) and the Go runtime's own.
const fdReserve = 512

// openFileLimit is the process's file limit (Go raises the soft limit to the
// hard one at start on Linux); 0 when it cannot be read.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// fitDescriptors lowers the TFTP transfer and HTTP connection limits so
// that, with fdReserve, they fit the file limit: descriptor exhaustion is
// then impossible by construction. A TFTP transfer holds up to three (its
// socket, the file, for a moment a socket to learn the path MTU), an HTTP
// download two (the connection and the file). It says so when it has to
// lower them.
func fitDescriptors(l *config.Limits, nofile uint64, log *slog.Logger) {
	if nofile == 0 {
		return
	}
	need := 3*uint64(l.TFTPTransfers) + 2*uint64(l.HTTPConnections) + fdReserve
	if need <= nofile {
		return
	}
	budget := int64(nofile) - fdReserve
	if budget < 64 {
		budget = 64
	}
	scale := float64(budget) / float64(3*l.TFTPTransfers+2*l.HTTPConnections)
	tftp, http := max(8, int(float64(l.TFTPTransfers)*scale)), max(8, int(float64(l.HTTPConnections)*scale))
	log.Warn("the file limit is too low for the configured limits: lowered them (raise `ulimit -n` or lower limits.tftp_transfers and limits.http_connections)",
		"nofile", nofile, "tftp_transfers", l.TFTPTransfers, "now", tftp, "http_connections", l.HTTPConnections, "now_http", http)
	l.TFTPTransfers, l.HTTPConnections = tftp, http
	l.TFTPTransfersPerClient = min(l.TFTPTransfersPerClient, tftp)
	l.HTTPConnectionsPerClient = min(l.HTTPConnectionsPerClient, http)
}

// neighbourLimitFile holds the kernel's hard limit on IPv4 neighbour (ARP)
// entries. The table is one for the whole host, every network namespace
// included.
const neighbourLimitFile = "/proc/sys/net/ipv4/neigh/default/gc_thresh3"

// neighbourLimit reads the kernel's IPv4 neighbour table limit; 0 when it
// cannot be read.
func neighbourLimit() int {
	b, err := os.ReadFile(neighbourLimitFile)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

// onLinkAddresses counts the addresses mode server may hand to clients on
// its own segments (relayed subnets' clients are reached through their
// relay, which needs no neighbour entry for each).
func onLinkAddresses(subs []config.ServerSubnet) int {
	n := 0
	for _, s := range subs {
		if s.Interface == "" {
			continue
		}
		for _, r := range s.Lease.Ranges {
			if !r.First.Is4() || !r.Last.Is4() {
				continue
			}
			a, b := r.First.As4(), r.Last.As4()
			n += int(binary.BigEndian.Uint32(b[:])-binary.BigEndian.Uint32(a[:])) + 1
		}
		n += len(s.Lease.Reservations)
	}
	return n
}

// warnNeighbourTable says at start when the on-link pools hold more
// addresses than the kernel's neighbour table: every client pxed answers
// by unicast takes an entry, and once the table is full the kernel drops
// those replies after the send has succeeded, so pxed cannot count them
// (bench/storm.sh lost machines this way: "neighbor table overflow!" in the
// kernel log).
func warnNeighbourTable(addrs, limit int, log *slog.Logger) {
	if limit == 0 || addrs <= limit {
		return
	}
	log.Warn("the kernel's IPv4 neighbour table is smaller than the address pools: once it is full the kernel drops replies to new clients without an error (`neighbor table overflow!` in dmesg); raise it, e.g. sysctl -w net.ipv4.neigh.default.gc_thresh3=N net.ipv4.neigh.default.gc_thresh2=N/2 with N above the pool size",
		"gc_thresh3", limit, "on_link_addresses", addrs)
}
