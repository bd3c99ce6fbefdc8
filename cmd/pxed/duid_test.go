package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"

	"pxed/internal/config"
)

// The server DUID is made once and read back unchanged: a restart (or a
// bridge whose MAC changed) keeps pxed the server its clients know.
func TestServerDUIDStable(t *testing.T) {
	dir := t.TempDir()
	d1, err := serverDUID(dir, duidFile, []string{"lo", "nonexistent0"}, time.Now())
	if err == nil {
		t.Fatalf("lo has no Ethernet address, yet DUID %v", d1)
	}
	if err := os.WriteFile(filepath.Join(dir, duidFile), []byte("00:01:00:01:2a:00:00:01:52:54:00:12:34:56\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := serverDUID(dir, duidFile, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	llt, ok := d.(*dhcpv6.DUIDLLT)
	if !ok || llt.LinkLayerAddr.String() != "52:54:00:12:34:56" || llt.Time != 0x2a000001 {
		t.Fatalf("read %v", d)
	}
	if err := os.WriteFile(filepath.Join(dir, duidFile), []byte("zz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := serverDUID(dir, duidFile, nil, time.Now()); err == nil {
		t.Fatal("a bad DUID file was accepted")
	}
}

// TestDUIDFileForCluster: cluster members sharing a data directory keep
// DUIDs of their own (two servers with one DUID both answered Requests
// naming it); a server alone keeps dhcp6-duid.
func TestDUIDFileForCluster(t *testing.T) {
	cfg := &config.Config{DataDir: t.TempDir()}
	if f, err := duidFileFor(cfg); err != nil || f != duidFile {
		t.Fatalf("alone: %q %v", f, err)
	}
	cfg.Cluster.Enabled, cfg.Cluster.ServerID = true, "pxe-a"
	if f, err := duidFileFor(cfg); err != nil || f != "dhcp6-duid.pxe-a" {
		t.Fatalf("cluster member pxe-a: %q %v", f, err)
	}
}
