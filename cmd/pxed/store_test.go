package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"pxed/internal/api"
	"pxed/internal/config"
	"pxed/internal/lease"
	"pxed/internal/store/pgtest"
	"pxed/internal/store/postgres"
	"pxed/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// pxed migrate and pxed leases work on either backend, and a wrong
// database is an error that says what to fix.
func TestMigrateAndLeasesStore(t *testing.T) {
	dsn := pgtest.DB(t)
	dir := t.TempDir()
	run1 := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(args, &out, &out)
		return code, out.String()
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"postgres fresh", []string{"migrate", "--store", dsn}, exitOK, "applied 0001_leases.sql"},
		{"postgres again", []string{"migrate", "--store", dsn}, exitOK, "schema up to date"},
		{"sqlite", []string{"migrate", "--data-dir", dir}, exitOK, "leases.db: schema up to date"},
		{"not postgres", []string{"migrate", "--store", "mysql://u@h/db"}, exitUsage, "--store \"mysql://u@h/db\": write postgres://"},
		{"unreachable", []string{"leases", "--store", "postgres://pxed:secret@127.0.0.1:1/pxed?connect_timeout=2"}, exitFailure, "check the host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run1(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("pxed %s: exit %d, output %q; want exit %d and %q", strings.Join(tc.args, " "), code, out, tc.code, tc.want)
			}
			if strings.Contains(out, "secret") {
				t.Errorf("output shows the password: %s", out)
			}
		})
	}

	s, err := postgres.Open(context.Background(), dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.10")
	if _, err := s.Put(context.Background(), lease.Lease{Addr: a, Key: "k", Hostname: "node1", State: lease.Bound,
		Expires: time.Now().Add(time.Hour), Updated: time.Now()}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	code, out := run1("leases", "--store", dsn, "--json")
	var ls []api.Lease
	if code != exitOK || json.Unmarshal([]byte(out), &ls) != nil || len(ls) != 1 || ls[0].Address != a.String() || ls[0].Hostname != "node1" {
		t.Fatalf("pxed leases --store: exit %d, %s; want the one lease of %v", code, out, a)
	}
}

// oneIface is a host with one interface, pxe0, 192.0.2.1/24.
type oneIface struct{}

func (oneIface) HasInterface(name string) bool { return name == "pxe0" }
func (oneIface) InterfaceAddrs(string) ([]netip.Prefix, error) {
	return []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24")}, nil
}

// The server role on PostgreSQL: a lease acknowledged through the lease
// server is in GET /api/leases' data and, after a restart, in the database
// (pxed leases --store).
func TestLeaseServerOnPostgres(t *testing.T) {
	dsn := pgtest.DB(t)
	ctx := context.Background()
	cfg := &config.Config{Interfaces: []string{"pxe0"}, Store: dsn, Host: oneIface{}}
	cfg.DHCP.Mode = config.ModeServer
	cfg.DHCP.Range = "192.0.2.100-192.0.2.110"
	cfg.DHCP.ProbeTimeout = config.ParseOptionalDuration("off")
	cfg.Defaults()
	log := slog.New(slog.DiscardHandler)
	ls, err := openLeaseServer(ctx, cfg, cfg.Boot(), log)
	if err != nil {
		t.Fatal(err)
	}
	l, err := storetest.DORA(ctx, ls.managers[0], lease.ClientKey("client-1"))
	if err != nil {
		ls.close(log)
		t.Fatal(err)
	}
	api, err := ls.apiLeases(ctx)
	ls.close(log)
	if err != nil || len(api) != 1 || api[0].Address != l.Addr.String() || api[0].State != "bound" {
		t.Fatalf("apiLeases = %+v, %v; want %v bound", api, err, l.Addr)
	}
	var out bytes.Buffer
	if code := run([]string{"leases", "--store", dsn}, &out, &out); code != exitOK || !strings.Contains(out.String(), l.Addr.String()) {
		t.Fatalf("pxed leases --store: exit %d:\n%s", code, out.String())
	}
}
