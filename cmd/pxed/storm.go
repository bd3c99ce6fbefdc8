package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"pxed/internal/client"
)

// errStormFailures makes storm exit 1 after its report when a machine failed.
var errStormFailures = errors.New("storm: some simulated machines did not boot")

// mixProfiles are the firmware of --arch mix: what a rack of PXE machines
// runs, the iPXE stage included.
var mixProfiles = []string{"bios", "efi-x64", "ipxe-bios", "ipxe-efi"}

// mixProfiles6 is --arch mix with --ipv6: no legacy BIOS over IPv6.
var mixProfiles6 = []string{"efi-x64", "ipxe-efi"}

// runStorm boots many simulated machines through a boot server and reports
// latencies and failures.
func runStorm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("storm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	iface := fs.String("interface", "", "interface to boot the simulated machines on (required; raw sockets, root)")
	clients := fs.Int("clients", 100, "number of simulated machines, each with its own MAC address")
	arch := fs.String("arch", "mix", "firmware: mix ("+strings.Join(mixProfiles, ", ")+"), one of "+
		strings.Join(client.ProfileNames(), ", ")+", or a comma-separated list")
	fetch := fs.Bool("fetch", false, "download the boot file and, for iPXE, the script's kernel and initrd")
	verify := fs.Bool("verify", false, "with --fetch, SHA-256 every download and check that every machine got the same bytes of each NBP, kernel and initrd (costs client CPU; without it bytes are only counted)")
	chain := fs.Bool("chain", false, "with --fetch, PXE machines then run iPXE: DHCP again as iPXE, load its script, kernel and initrd")
	rate := fs.Float64("rate", 0, "machines starting per second; 0 starts them all at once")
	parallel := fs.Int("parallel", 0, "most machines in flight at once; 0 means --clients")
	asJSON := fs.Bool("json", false, "print one JSON document instead of the report")
	scale := fs.Float64("timeout-scale", 1, "multiply the firmware's DHCP timeouts (4, 8, 16, 32 s) by this factor")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up on one machine after this long")
	macPrefix := fs.String("mac-prefix", "02:70:78", "first three bytes of the machines' MAC addresses")
	verbose := fs.Bool("v", false, "log each failed machine to stderr")
	machineAddrs := fs.Bool("machine-addrs", false, "with --fetch, each machine downloads from the address it leased (put on the interface as a /32 for its boot, removed after), so servers see one client address per machine as in a real storm")
	machinesJSON := fs.String("machines-json", "", "write each machine's boot step by step (DHCP exchanges and downloads: start, duration, retries, TFTP packets resent, first answer) as JSON to this file")
	ipv6 := fs.Bool("ipv6", false, "boot over IPv6 as EDK II does (DHCPv6 Solicit/Advertise/Request/Reply, boot service on port 4011, TFTP on IPv6; with --chain or ipxe-* firmware, iPXE's Information-request and its files over HTTP); --arch mix means "+strings.Join(mixProfiles6, ", "))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *clients < 1 || *clients > 100000 {
		return usagef("storm: --clients %d: write a number from 1 to 100000", *clients)
	}
	names := mixProfiles
	if *ipv6 {
		names = mixProfiles6
	}
	if *arch != "mix" {
		names = strings.Split(*arch, ",")
	}
	var profiles []client.Profile
	for _, n := range names {
		p, err := client.ParseProfile(n)
		if err != nil {
			return usagef("storm: --arch: %v (or mix)", err)
		}
		if *ipv6 && !strings.HasPrefix(p.Name, "efi-") && !strings.HasPrefix(p.Name, "ipxe-") {
			return usagef("storm: --ipv6 --arch %s: a legacy BIOS PXE ROM has no IPv6; write efi-* or ipxe-* firmware", p.Name)
		}
		profiles = append(profiles, p)
	}
	if *ipv6 && *machineAddrs {
		return usagef("storm: --ipv6 with --machine-addrs: not supported yet; over IPv6 the machines download from the interface's own address")
	}
	if *verify && !*fetch {
		return usagef("storm: --verify needs --fetch (it checks the downloaded files)")
	}
	if *chain && !*fetch {
		return usagef("storm: --chain needs --fetch (the NBP must be loaded before iPXE runs)")
	}
	if *rate < 0 {
		return usagef("storm: --rate %v: write machines per second, 0 for all at once", *rate)
	}
	if *parallel < 0 {
		return usagef("storm: --parallel %d: write 0 (all) or a positive bound", *parallel)
	}
	if *scale <= 0 || *scale > 10 {
		return usagef("storm: --timeout-scale %v: write a factor above 0 and at most 10, e.g. 0.25", *scale)
	}
	if *timeout <= 0 {
		return usagef("storm: --timeout %v: write a positive duration, e.g. 2m", *timeout)
	}
	prefix, err := net.ParseMAC(*macPrefix + ":00:00:00")
	if err != nil || len(prefix) != 6 {
		return usagef("storm: --mac-prefix %q: write three bytes, e.g. 02:70:78", *macPrefix)
	}
	if err := requireInterface("storm", *iface, "the network to boot on"); err != nil {
		return err
	}

	logger := slog.New(slog.DiscardHandler)
	if *verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := client.StormConfig{
		Clients: *clients, Profiles: profiles, Fetch: *fetch, Verify: *verify, Chain: *chain, Rate: *rate, Parallel: *parallel,
		Scale: *scale, Timeout: *timeout, MACPrefix: prefix[:3], Interface: *iface, Logger: logger, IPv6: *ipv6,
		PerMachine: *machinesJSON != "",
	}
	var sock *client.RawSocket
	var mux *client.Mux6
	if *ipv6 {
		if err := client.WaitLinkLocal(ctx, *iface, 5*time.Second); err != nil {
			return fmt.Errorf("storm: %w", err)
		}
		if mux, err = client.OpenMux6(*iface, logger); err != nil {
			return fmt.Errorf("storm: %w", err)
		}
		defer mux.Close()
		cfg.NewTransport6 = client.Mux6Transport(mux)
	} else {
		if sock, err = client.OpenRaw(*iface, logger); err != nil {
			return fmt.Errorf("storm: %w (raw sockets need root or CAP_NET_RAW)", err)
		}
		defer sock.Close()
		cfg.NewTransport = func(mac net.HardwareAddr) (client.Transport, func()) {
			t := sock.Transport(mac)
			return t, t.Close
		}
	}
	if *machineAddrs {
		if cfg.AddAddress, err = client.AddLeaseAddr(*iface); err != nil {
			return fmt.Errorf("storm: --machine-addrs: %w", err)
		}
	}
	pl := &progressLine{w: stderr, total: *clients}
	cfg.Progress = pl.update
	if !*asJSON {
		how := "all at once"
		if *rate > 0 {
			how = fmt.Sprintf("%g per second", *rate)
		}
		fmt.Fprintf(stdout, "storm on %s: %d machines (%s), %s, fetch %v, chain %v, ipv6 %v\n", *iface, *clients, strings.Join(names, ", "), how, *fetch, *chain, *ipv6)
	}
	rep, err := client.Storm(ctx, cfg)
	if err != nil {
		return usageError{fmt.Errorf("storm: %w", err)}
	}
	pl.finish()
	if *machinesJSON != "" {
		if err := writeMachines(*machinesJSON, rep.Machines); err != nil {
			return err
		}
		rep.Machines = nil
	}
	if sock != nil {
		st := sock.Stats()
		rep.Socket = &st
	}
	switch {
	case *ipv6:
		rep.Note = fmt.Sprintf("DHCPv6 runs from %s's link-local address on UDP 546 and 4011, one DUID-LLT per machine (from its MAC); "+
			"the leased addresses are not configured: the boot service request, TFTP and HTTP use %s's own IPv6 address; "+
			"iPXE's Information-request carries its DUID-UUID, so the server sees every machine's iPXE stage from the same link-local address", *iface, *iface)
	case *fetch && *machineAddrs:
		rep.Note = fmt.Sprintf("DHCP runs with one MAC per machine on a raw socket; TFTP and HTTP downloads use kernel sockets from each machine's leased address (put on %s for its boot)", *iface)
	case *fetch:
		rep.Note = fmt.Sprintf("DHCP runs with one MAC per machine on a raw socket; TFTP and HTTP downloads use kernel sockets from %s's own address (a load test: servers see one client address for them; --machine-addrs gives each machine its own)", *iface)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("storm: write JSON: %w", err)
		}
	} else {
		printStorm(stdout, rep)
	}
	if rep.Failed > 0 || rep.Clients < *clients {
		return errStormFailures
	}
	return nil
}

// writeMachines writes the per-machine reports to file as one JSON array.
func writeMachines(file string, ms []client.MachineReport) error {
	b, err := json.MarshalIndent(ms, "", " ")
	if err != nil {
		return fmt.Errorf("storm: --machines-json: %w", err)
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("storm: --machines-json: %w", err)
	}
	return nil
}

// printStorm writes a storm report for people.
func printStorm(w io.Writer, r *client.StormReport) {
	fmt.Fprintf(w, "\nbooted %d, failed %d of %d in %.2f s (time to all booted)\n", r.Booted, r.Failed, r.Clients, r.Seconds)
	fmt.Fprintf(w, "\n%-16s %6s %10s %10s %10s %10s\n", "stage", "count", "p50", "p95", "p99", "max")
	for _, s := range r.Stages {
		fmt.Fprintf(w, "%-16s %6d %10s %10s %10s %10s\n", s.Stage, s.Count, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max))
	}
	fmt.Fprintf(w, "\nretries:")
	keys := sortedKeys(r.Retries)
	for _, k := range keys {
		fmt.Fprintf(w, " %s %d;", k, r.Retries[k])
	}
	fmt.Fprintln(w)
	if len(r.Failures) == 0 {
		fmt.Fprintln(w, "failures: none")
	} else {
		fmt.Fprintln(w, "failures:")
		for _, k := range sortedKeys(r.Failures) {
			fmt.Fprintf(w, "  %-24s %6d  e.g. %s\n", termSafe(k), r.Failures[k], termSafe(r.Examples[k]))
		}
	}
	fmt.Fprintf(w, "bytes: %d (%.1f MB), %.2f MB/s over the whole storm\n", r.Bytes, float64(r.Bytes)/1e6, r.MBps)
	for _, k := range sortedKeys(r.SHA256) {
		fmt.Fprintf(w, "sha256 %s: %s (every machine that loaded it)\n", termSafe(k), termSafe(r.SHA256[k]))
	}
	fmt.Fprintf(w, "client CPU: %.2f s (this process, user + system)\n", r.CPUSeconds)
	if s := r.Socket; s != nil {
		fmt.Fprintf(w, "raw socket: %d frames in, %d replies for other clients, %d dropped (queue full), %d dropped by the kernel (buffer full), %d ARP replies\n",
			s.FramesIn, s.Unclaimed, s.Dropped, s.KernelDrops, s.ARPReplies)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note: %s\n", r.Note)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// progressLine redraws one status line on stderr.
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	total int
	drawn bool
}

func (p *progressLine) update(s client.StormProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\rstorm %6.1fs: started %d/%d · in flight dhcp %d, nbp %d, script+files %d · booted %d · failed %d ",
		s.Elapsed.Seconds(), s.Started, p.total, s.InFlight[client.PhaseDHCP], s.InFlight[client.PhaseNBP],
		s.InFlight[client.PhaseFiles], s.Done, s.Failed)
	p.drawn = true
}

func (p *progressLine) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
