package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"pxed/internal/config"
)

// serverFlags are the settings `serve` and `boot` share; each overrides the
// configuration file when given.
type serverFlags struct {
	interfaces stringList
	dhcp       string
	dhcpRange  string
	dhcp6      string
	dhcp6Range string
	probe      string
	commit     string
	journal    *bool
	bootDir    string
	dataDir    string
	tftpAddr   string
	httpAddr   string
	ipxeDir    string
	logFormat  string
	logLevel   string
	store      string
	ra         bool
	cluster    bool
	serverID   string

	securityFlags // security.go
	unknown       string
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.interfaces, "interface", "network interface to serve (repeatable)")
	fs.StringVar(&f.dhcp, "dhcp", "", "DHCP mode: proxy (default, beside an existing DHCP server), server, boot-server (answers PXE boot server requests only: the boot server of menu items another pxed offers), off")
	fs.StringVar(&f.dhcp6, "dhcp6", "", "DHCPv6 mode: proxy (default with --dhcp proxy: UEFI PXE over IPv6 and iPXE beside the network's DHCPv6 server), server, off")
	fs.StringVar(&f.dhcp6Range, "dhcp6-range", "", "FIRST-LAST IPv6 addresses to lease, e.g. 2001:db8:0:1::100-2001:db8:0:1::1ff (implies --dhcp6 server)")
	fs.StringVar(&f.dhcpRange, "dhcp-range", "", "FIRST-LAST addresses to lease (implies --dhcp server)")
	fs.StringVar(&f.probe, "dhcp-probe-timeout", "", "server mode: wait for an answer to the address probe (ARP on-link, ICMP echo for relayed subnets) before offering an address (default 300ms; off disables)")
	fs.BoolVar(&f.cluster, "cluster", false, "server mode: share the lease database with other pxed servers (heartbeats, split of clients and free addresses, failover; see README \"Several servers\")")
	fs.StringVar(&f.serverID, "server-id", "", "with --cluster: this server's name among its peers (default: made once, kept in DATA_DIR/server-id)")
	fs.Func("lease-journal", "server mode, SQLite: on commits leases to a journal pxed fdatasyncs itself and writes them into leases.db once a second; off commits to leases.db directly", func(v string) error {
		switch v {
		case "on", "true":
			on := true
			f.journal = &on
		case "off", "false":
			off := false
			f.journal = &off
		default:
			return fmt.Errorf("%q: write on or off", v)
		}
		return nil
	})
	fs.StringVar(&f.commit, "dhcp-commit-interval", "", "server mode: least time between two lease commits under load (default 10ms; 0s commits at once)")
	fs.StringVar(&f.bootDir, "boot-dir", "", "directory of files served over TFTP and HTTP")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for leases and machine state")
	fs.StringVar(&f.store, "store", "", "lease database: postgres://USER:PASSWORD@HOST:PORT/DATABASE (default: the SQLite file leases.db in --data-dir)")
	fs.StringVar(&f.tftpAddr, "tftp-addr", "", "TFTP listen HOST:PORT (default :69; off disables)")
	fs.StringVar(&f.httpAddr, "http-addr", "", "HTTP listen HOST:PORT (default :8080)")
	fs.StringVar(&f.ipxeDir, "ipxe-dir", "", "directory of iPXE binaries (default /usr/lib/ipxe)")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "", "log level: debug, info, warn, error")
	f.securityFlags.register(fs)
	fs.StringVar(&f.unknown, "unknown-machines", "", "machines neither approved nor under machines: boot (default), hold (wait for approval: pxed machines approve MAC) or ignore (not answered)")
	fs.BoolVar(&f.ra, "router-advertisements", false, "send IPv6 router advertisements (O flag, the interfaces' prefixes) on a segment with no router")
}

// apply puts the flags that were given over c.
func (f *serverFlags) apply(c *config.Config) {
	if len(f.interfaces) > 0 {
		c.Interfaces = f.interfaces
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.DHCP.Mode, f.dhcp)
	set(&c.DHCP6.Mode, f.dhcp6)
	if f.dhcpRange != "" {
		c.DHCP.Range = f.dhcpRange
		if f.dhcp == "" {
			c.DHCP.Mode = config.ModeServer
		}
	}
	if f.dhcp6Range != "" {
		c.DHCP6.Range = f.dhcp6Range
		if f.dhcp6 == "" {
			c.DHCP6.Mode = config.ModeServer
		}
	}
	if f.probe != "" {
		c.DHCP.ProbeTimeout = config.ParseOptionalDuration(f.probe)
	}
	if f.commit != "" {
		c.DHCP.CommitInterval = config.ParseOptionalDuration(f.commit)
	}
	if f.journal != nil {
		c.DHCP.LeaseJournal = f.journal
	}
	set(&c.BootDir, f.bootDir)
	set(&c.DataDir, f.dataDir)
	set(&c.Store, f.store)
	set(&c.TFTPAddr, f.tftpAddr)
	set(&c.HTTPAddr, f.httpAddr)
	set(&c.IPXEDir, f.ipxeDir)
	set(&c.LogFormat, f.logFormat)
	set(&c.LogLevel, f.logLevel)
	if f.cluster {
		c.Cluster.Enabled = true
	}
	set(&c.Cluster.ServerID, f.serverID)
	f.securityFlags.apply(c)
	set(&c.UnknownMachines, f.unknown)
	if f.ra {
		c.RouterAdvertisements.Enabled = true
		// Machines must ask pxed for their addresses when it leases them.
		c.RouterAdvertisements.Managed = c.RouterAdvertisements.Managed || f.dhcp6Range != ""
	}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf serverFlags
	sf.register(fs)
	file := fs.String("config", "", "YAML configuration file (see README, \"Configuration\")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := &config.Config{}
	if *file != "" {
		c, err := config.Load(*file)
		if err != nil {
			var es config.Errors
			if errors.As(err, &es) {
				return usageError{err}
			}
			return usagef("%v", err)
		}
		cfg = c
	}
	sf.apply(cfg)
	cfg.Host = config.SystemHost{} // validate against this machine's interfaces
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return usageError{fmt.Errorf("configuration:\n%w", err)}
	}
	return serve(ctx, cfg, stderr, *file, &sf)
}
