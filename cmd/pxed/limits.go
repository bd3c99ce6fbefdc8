package main

import (
	"log/slog"
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
