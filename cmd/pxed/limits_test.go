package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"pxed/internal/config"
	"pxed/internal/lease"
)

func TestFitDescriptors(t *testing.T) {
	tests := []struct {
		name       string
		nofile     uint64
		tftp, http int // after
		warned     bool
	}{
		{"defaults fit this machine's 20000", 20000, 1000, 4096, false},
		{"unknown limit leaves them", 0, 1000, 4096, false},
		{"a 4096 limit scales both down", 4096, 320, 1311, true},
		{"a tiny limit keeps a floor", 256, 8, 23, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := config.DefaultLimits
			var buf bytes.Buffer
			fitDescriptors(&l, tc.nofile, slog.New(slog.NewTextHandler(&buf, nil)))
			if l.TFTPTransfers != tc.tftp || l.HTTPConnections != tc.http {
				t.Fatalf("tftp %d http %d, want %d %d", l.TFTPTransfers, l.HTTPConnections, tc.tftp, tc.http)
			}
			if tc.nofile > fdReserve && uint64(3*l.TFTPTransfers+2*l.HTTPConnections+fdReserve) > tc.nofile {
				t.Fatalf("limits need %d descriptors, the file limit is %d", 3*l.TFTPTransfers+2*l.HTTPConnections+fdReserve, tc.nofile)
			}
			if l.TFTPTransfersPerClient > l.TFTPTransfers || l.HTTPConnectionsPerClient > l.HTTPConnections {
				t.Fatalf("per-client limits above the totals: %+v", l)
			}
			if got := strings.Contains(buf.String(), "file limit is too low"); got != tc.warned {
				t.Fatalf("warned %v, want %v: %s", got, tc.warned, buf.String())
			}
		})
	}
}

func TestNeighbourTableWarning(t *testing.T) {
	subs := []config.ServerSubnet{
		{Interface: "eth1", Lease: lease.Subnet{
			Ranges:       []lease.Range{{First: netip.MustParseAddr("192.0.2.10"), Last: netip.MustParseAddr("192.0.2.209")}, {First: netip.MustParseAddr("198.51.100.0"), Last: netip.MustParseAddr("198.51.103.255")}},
			Reservations: []lease.Reservation{{}, {}},
		}},
		{Interface: "", Lease: lease.Subnet{ // relayed: reached through the relay
			Ranges: []lease.Range{{First: netip.MustParseAddr("198.18.0.0"), Last: netip.MustParseAddr("198.18.255.255")}},
		}},
	}
	if got, want := onLinkAddresses(subs), 200+1024+2; got != want {
		t.Fatalf("on-link addresses %d, want %d", got, want)
	}
	for _, tc := range []struct {
		addrs, limit int
		warned       bool
	}{
		{1226, 1024, true},  // the kernel's default limit under a 1,226-address pool
		{1024, 1024, false}, // fits
		{1226, 0, false},    // limit unknown
	} {
		var buf bytes.Buffer
		warnNeighbourTable(tc.addrs, tc.limit, slog.New(slog.NewTextHandler(&buf, nil)))
		if got := strings.Contains(buf.String(), "gc_thresh3"); got != tc.warned {
			t.Errorf("%d addresses, limit %d: warned %v, want %v: %s", tc.addrs, tc.limit, got, tc.warned, buf.String())
		}
	}
}
