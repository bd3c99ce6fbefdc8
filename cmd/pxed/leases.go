package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"pxed/internal/api"
	"pxed/internal/boot"
	"pxed/internal/cluster"
	"pxed/internal/config"
	"pxed/internal/dhcp4"
	"pxed/internal/dhcp6"
	"pxed/internal/lease"
	"pxed/internal/store"
)

// expiryInterval is how often expired leases are marked Expired.
const expiryInterval = time.Minute

// leaseServer is the server roles' state: the lease store (SQLite or
// PostgreSQL), one lease
// Manager per subnet of either family, and the Full DHCPv4 and DHCPv6
// policies over them (nil when that family's mode is not server). Leases
// of both families live in the one store.
type leaseServer struct {
	store    leaseStore
	managers []*lease.Manager
	full     *dhcp4.Full
	full6    *dhcp6.Full
	prober   *dhcp4.Prober   // nil without address probing
	member   *cluster.Member // nil unless cluster.enabled
}

// openLeaseServer opens the lease store (--store, else
// --data-dir/leases.db) and builds the policies.
func openLeaseServer(ctx context.Context, cfg *config.Config, bc boot.Source, log *slog.Logger) (*leaseServer, error) {
	v4, v6 := cfg.DHCP.Mode == config.ModeServer, cfg.DHCP6.Mode == config.ModeServer
	spec := storeSpec{dsn: cfg.Store, dataDir: cfg.DataDir}
	if spec.dsn == "" && spec.dataDir == "" {
		return nil, usagef("dhcp and dhcp6 mode server keep their leases on disk: pass --data-dir DIR (or write data_dir: in the configuration), or --store postgres://…")
	}
	var subs []config.ServerSubnet
	var subs6 []config.ServerSubnet6
	var err error
	if v4 {
		if subs, err = cfg.ServerSubnets(); err != nil {
			return nil, usageError{fmt.Errorf("configuration:\n%w", err)}
		}
	}
	if v6 {
		if subs6, err = cfg.ServerSubnets6(); err != nil {
			return nil, usageError{fmt.Errorf("configuration:\n%w", err)}
		}
	}
	ci := store.DefaultCommitInterval
	if d, ok := cfg.CommitInterval(); ok {
		ci = d
	}
	sci := ci
	if ci == 0 {
		sci = -1 // the store's "do not wait"
	}
	st, err := spec.open(ctx, sci, cfg.LeaseJournal(), log.With("proto", "store"))
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	ls := &leaseServer{store: st}
	if ls.member, err = newMember(cfg, st, log); err != nil {
		st.Close()
		return nil, err
	}
	// The leases are read from memory (a DISCOVER then costs no query);
	// every write still commits to the database first.
	cache, err := lease.NewCached(ctx, st)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("leases: %w", err)
	}
	if v4 {
		if err := ls.addSubnets4(cfg, bc, cache, subs, log); err != nil {
			st.Close()
			return nil, err
		}
	}
	if v6 {
		if err := ls.addSubnets6(cfg, bc, cache, subs6, log); err != nil {
			st.Close()
			return nil, err
		}
	}
	log.Info("leases stored", "db", spec.String(), "probe_timeout", cfg.ProbeTimeout().String(), "commit_interval", ci.String(), "lease_journal", spec.dsn == "" && cfg.LeaseJournal())
	return ls, nil
}

// addSubnets4 builds the DHCPv4 server policy.
func (ls *leaseServer) addSubnets4(cfg *config.Config, bc boot.Source, cache *lease.Cached, subs []config.ServerSubnet, log *slog.Logger) error {
	ls.full = &dhcp4.Full{Boot: bc, StarvationClients: cfg.Limits.DHCPNewClients, StarvationWindow: cfg.Limits.DHCPNewClientsWindow.D()}
	var probe func(context.Context, netip.Addr) bool
	if t := cfg.ProbeTimeout(); t > 0 {
		ls.prober = &dhcp4.Prober{Timeout: t, Logger: log.With("proto", "probe")}
		probe = ls.prober.InUse
	}
	// lease.Cached over SQLite defers the commit: REQUESTs, DECLINEs,
	// RELEASEs and INFORMs never wait, so the socket reader answers them and
	// sends an ACK once its lease is committed. Without a probe DISCOVERs
	// never wait either; with one, they go to the worker pool.
	ls.full.DeferredWrites = true
	for _, s := range subs {
		m, err := lease.New(cache, ls.leaseConfig(lease.Config{Subnet: s.Lease, Authoritative: s.Authoritative, Probe: probe, Logger: log.With("proto", "lease")}))
		if err != nil {
			return usageError{fmt.Errorf("configuration: %w", err)}
		}
		ls.managers = append(ls.managers, m)
		ho := map[netip.Addr][]dhcp4.Option{}
		for a, opts := range s.HostOptions {
			ho[a] = rawOptions(opts)
		}
		ls.full.Subnets = append(ls.full.Subnets, &dhcp4.Subnet{Leases: m, Router: s.Router, DNS: s.DNS, Domain: s.Domain,
			MTU: s.MTU, NTP: s.NTP, Options: rawOptions(s.Options), HostOptions: ho, BOOTPDynamic: s.BOOTPDynamic})
		ls.full.Authoritative = ls.full.Authoritative || s.Authoritative
		log.Info("dhcp subnet", "prefix", s.Lease.Prefix.String(), "interface", s.Interface, "server_id", s.Lease.ServerID.String(),
			"ranges", len(s.Lease.Ranges), "reservations", len(s.Lease.Reservations), "authoritative", s.Authoritative)
	}
	return nil
}

// addSubnets6 builds the DHCPv6 server policy. IPv6 has no address
// probe: a client checks its address itself (duplicate address detection)
// and declines it when taken, so every message is answered on the reader.
func (ls *leaseServer) addSubnets6(cfg *config.Config, bc boot.Source, cache *lease.Cached, subs []config.ServerSubnet6, log *slog.Logger) error {
	ls.full6 = &dhcp6.Full{Boot: bc, Preference: cfg.DHCP6Preference(), RapidCommit: cfg.DHCP6.RapidCommit, DeferredWrites: true}
	for _, s := range subs {
		m, err := lease.New(cache, ls.leaseConfig(lease.Config{Subnet: s.Lease, Authoritative: true, Logger: log.With("proto", "lease")}))
		if err != nil {
			return usageError{fmt.Errorf("configuration: %w", err)}
		}
		ls.managers = append(ls.managers, m)
		sn := &dhcp6.Subnet{Leases: m, Interface: s.Interface, Preferred: s.Preferred, DNS: s.DNS, DomainSearch: s.DomainSearch}
		for _, o := range s.Options {
			sn.Options = append(sn.Options, dhcp6.Option{Code: o.Code, Value: o.Value})
		}
		ls.full6.Subnets = append(ls.full6.Subnets, sn)
		log.Info("dhcp6 subnet", "prefix", s.Lease.Prefix.String(), "interface", s.Interface,
			"ranges", len(s.Lease.Ranges), "reservations", len(s.Lease.Reservations), "lease_time", s.Lease.LeaseTime.String(),
			"preference", cfg.DHCP6Preference(), "rapid_commit", cfg.DHCP6.RapidCommit)
	}
	return nil
}

func rawOptions(in []config.RawOption) []dhcp4.Option {
	out := make([]dhcp4.Option, 0, len(in))
	for _, o := range in {
		out = append(out, dhcp4.Option{Code: o.Code, Value: o.Value})
	}
	return out
}

func (ls *leaseServer) runExpiry(ctx context.Context) {
	for _, m := range ls.managers {
		go m.RunExpiry(ctx, expiryInterval)
	}
}

func (ls *leaseServer) close(log *slog.Logger) {
	if ls.prober != nil {
		ls.prober.Close()
	}
	if err := ls.store.Close(); err != nil {
		log.Error("closing the lease store", "err", err)
	}
}

// apiLeases is GET /api/leases: every subnet's leases with the offers
// held in memory.
func (ls *leaseServer) apiLeases(ctx context.Context) ([]api.Lease, error) {
	var out []api.Lease
	for _, m := range ls.managers {
		l, err := m.Leases(ctx)
		if err != nil {
			return nil, err
		}
		for _, x := range l {
			out = append(out, apiLease(x))
		}
	}
	return out, nil
}

func apiLease(l lease.Lease) api.Lease {
	return api.Lease{Address: l.Addr.String(), State: l.State.String(), Client: l.Key.String(),
		MAC: l.MAC.String(), Hostname: l.Hostname, Expires: l.Expires.UTC(), Updated: l.Updated.UTC()}
}

// runLeases is `pxed leases`: every row of the lease database, or with
// --server what a running server holds, offers included.
func runLeases(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("leases", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/pxed", "directory holding leases.db (the server's --data-dir)")
	dsn := fs.String("store", "", "read the leases from this PostgreSQL database (postgres://…, the server's --store) instead of --data-dir")
	server := fs.String("server", "", "ask a running pxed at this HTTP address (e.g. 127.0.0.1:8080) instead, offers in memory included")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var out []api.Lease
	var err error
	if *server != "" {
		out, err = leasesFromServer(ctx, *server)
	} else {
		out, err = leasesFromStore(ctx, storeSpec{dsn: *dsn, dataDir: *dataDir})
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if out == nil {
			out = []api.Lease{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return printLeases(stdout, out)
}

// printLeases writes the leases as a table for people. Every column may
// come off the network (a client's hostname, or anything a server
// answers), so each is escaped for the terminal.
func printLeases(w io.Writer, out []api.Lease) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSTATE\tMAC\tHOSTNAME\tEXPIRES\tCLIENT")
	for _, l := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", termSafe(l.Address), termSafe(l.State), termSafe(l.MAC), termSafe(l.Hostname),
			l.Expires.Local().Format(time.DateTime), termSafe(l.Client))
	}
	return tw.Flush()
}

// readAll opens the store and reads every lease.
func readAll(ctx context.Context, spec storeSpec) ([]lease.Lease, error) {
	st, err := spec.open(ctx, 0, false, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return st.Find(ctx, lease.Filter{})
}

// leasesFromStore reads every row of the lease database.
func leasesFromStore(ctx context.Context, spec storeSpec) ([]api.Lease, error) {
	var err error
	if spec.dsn == "" {
		path := filepath.Join(spec.dataDir, leaseDB)
		if _, err := os.Stat(path); err != nil {
			return nil, usagef("leases: no lease database at %s: pass the server's --data-dir (or --store postgres://…)", path)
		}
	}
	var ls []lease.Lease
	if spec.dsn == "" {
		// Read only, beside a running server (whose lease journal,
		// when on, holds the newest leases until it writes them into
		// leases.db).
		ls, err = store.ReadLeases(ctx, filepath.Join(spec.dataDir, leaseDB))
	} else {
		ls, err = readAll(ctx, spec)
	}
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	out := make([]api.Lease, 0, len(ls))
	for _, l := range ls {
		out = append(out, apiLease(l))
	}
	return out, nil
}

// leasesFromServer reads GET /api/leases of the pxed at addr (host:port or
// an http:// URL).
func leasesFromServer(ctx context.Context, addr string) ([]api.Lease, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, usagef("leases: --server %q: write the server's HTTP address, e.g. --server 127.0.0.1:8080", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/leases"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("leases: ask %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&e)
		return nil, fmt.Errorf("leases: %s answered %s: %s", u, termSafe(resp.Status), termSafe(e.Error))
	}
	var out []api.Lease
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("leases: %s: bad answer: %w", u, err)
	}
	return out, nil
}
