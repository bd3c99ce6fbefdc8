package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"pxed/internal/config"
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
