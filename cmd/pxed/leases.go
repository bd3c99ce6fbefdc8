package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"pxed/internal/boot"
	"pxed/internal/config"
	"pxed/internal/dhcp4"
	"pxed/internal/lease"
	"pxed/internal/store"
)

// leaseDB is the lease database's file name inside --data-dir.
const leaseDB = "leases.db"

// expiryInterval is how often expired leases are marked Expired.
const expiryInterval = time.Minute

// leaseServer is mode server's state: the SQLite store, one lease Manager
// per subnet, and the Full DHCP policy over them.
type leaseServer struct {
	store    *store.SQLite
	managers []*lease.Manager
	full     *dhcp4.Full
}

// openLeaseServer opens --data-dir/leases.db and builds the policy.
func openLeaseServer(ctx context.Context, cfg *config.Config, bc *boot.Config, log *slog.Logger) (*leaseServer, error) {
	if cfg.DataDir == "" {
		return nil, usagef("dhcp mode server keeps its leases on disk: pass --data-dir DIR (or write data_dir: in the configuration)")
	}
	subs, err := cfg.ServerSubnets()
	if err != nil {
		return nil, usageError{fmt.Errorf("configuration:\n%w", err)}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("leases: data dir: %w", err)
	}
	path := filepath.Join(cfg.DataDir, leaseDB)
	st, err := store.Open(ctx, path, store.Options{Logger: log.With("proto", "store")})
	if err != nil {
		return nil, fmt.Errorf("leases: %w", err)
	}
	ls := &leaseServer{store: st, full: &dhcp4.Full{Boot: bc}}
	var probe func(context.Context, netip.Addr) bool
	if t := cfg.ProbeTimeout(); t > 0 {
		probe = (&dhcp4.Prober{Timeout: t, Logger: log.With("proto", "probe")}).InUse
	}
	for _, s := range subs {
		m, err := lease.New(st, lease.Config{Subnet: s.Lease, Authoritative: s.Authoritative, Probe: probe, Logger: log.With("proto", "lease")})
		if err != nil {
			st.Close()
			return nil, usageError{fmt.Errorf("configuration: %w", err)}
		}
		ls.managers = append(ls.managers, m)
		ho := map[netip.Addr][]dhcp4.Option{}
		for a, opts := range s.HostOptions {
			ho[a] = rawOptions(opts)
		}
		ls.full.Subnets = append(ls.full.Subnets, &dhcp4.Subnet{Leases: m, Router: s.Router, DNS: s.DNS, Domain: s.Domain,
			MTU: s.MTU, NTP: s.NTP, Options: rawOptions(s.Options), HostOptions: ho})
		ls.full.Authoritative = ls.full.Authoritative || s.Authoritative
		log.Info("dhcp subnet", "prefix", s.Lease.Prefix.String(), "interface", s.Interface, "server_id", s.Lease.ServerID.String(),
			"ranges", len(s.Lease.Ranges), "reservations", len(s.Lease.Reservations), "authoritative", s.Authoritative)
	}
	log.Info("leases stored", "db", path, "probe_timeout", cfg.ProbeTimeout().String())
	return ls, nil
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
	if err := ls.store.Close(); err != nil {
		log.Error("closing the lease store", "err", err)
	}
}

// leaseJSON is one lease in `pxed leases --json`.
type leaseJSON struct {
	Address  string    `json:"address"`
	State    string    `json:"state"`
	Client   string    `json:"client"` // client key: option 61, else 01:chaddr
	MAC      string    `json:"mac"`
	Hostname string    `json:"hostname,omitempty"`
	Expires  time.Time `json:"expires"`
	Updated  time.Time `json:"updated"`
}

// runLeases is `pxed leases`: every row of the lease database.
func runLeases(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("leases", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/pxed", "directory holding leases.db (the server's --data-dir)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, leaseDB)
	if _, err := os.Stat(path); err != nil {
		return usagef("leases: no lease database at %s: pass the server's --data-dir", path)
	}
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return fmt.Errorf("leases: %w", err)
	}
	defer st.Close()
	ls, err := st.Find(ctx, lease.Filter{})
	if err != nil {
		return fmt.Errorf("leases: %w", err)
	}
	if *asJSON {
		out := make([]leaseJSON, 0, len(ls))
		for _, l := range ls {
			out = append(out, leaseJSON{Address: l.Addr.String(), State: l.State.String(), Client: l.Key.String(),
				MAC: l.MAC.String(), Hostname: l.Hostname, Expires: l.Expires.UTC(), Updated: l.Updated.UTC()})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tSTATE\tMAC\tHOSTNAME\tEXPIRES\tCLIENT")
	for _, l := range ls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.Addr, l.State, l.MAC, l.Hostname, l.Expires.Local().Format(time.DateTime), l.Key)
	}
	return tw.Flush()
}
