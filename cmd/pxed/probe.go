package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"pxed/internal/client"
)

// errWouldNotBoot makes probe exit 1 after it printed its report.
var errWouldNotBoot = errors.New("probe: the simulated firmware would not boot")

// runProbe acts as a PXE client on an interface and reports what a real
// machine with the chosen firmware would do.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	iface := fs.String("interface", "", "interface to probe on (required)")
	arch := fs.String("arch", "efi-x64", "firmware to simulate: "+strings.Join(client.ProfileNames(), ", "))
	fetch := fs.Bool("fetch", false, "download the boot file (and an iPXE script's files); otherwise only check they exist")
	asJSON := fs.Bool("json", false, "print one JSON document instead of the report")
	var expect stringList
	fs.Var(&expect, "expect-server", "address of a server that should answer (repeatable); others are flagged")
	scale := fs.Float64("timeout-scale", 1, "multiply the firmware's DHCP timeouts (4, 8, 16, 32 s) by this factor")
	ipv6 := fs.Bool("ipv6", false, "probe over IPv6 as EDK II does (DHCPv6 Solicit with vendor class PXEClient under enterprise 343, boot service on port 4011, TFTP on IPv6); --arch must be an efi-* firmware")
	httpBoot := fs.Bool("http", false, "act as EDK II's UEFI HTTP boot client (HttpBootDxe: vendor class HTTPClient, architecture 16 for efi-x64) over IPv4, or IPv6 with --ipv6")
	duid := fs.String("duid", client.DUIDUUID, "with --ipv6, the client identifier: uuid (DUID-UUID, as OVMF with an SMBIOS UUID) or llt (DUID-LLT from the MAC)")
	verbose := fs.Bool("v", false, "log each packet to stderr")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireInterface("probe", *iface, "the network to probe"); err != nil {
		return err
	}
	prof, err := client.ParseProfile(*arch)
	if err != nil {
		return usagef("probe: --arch: %v", err)
	}
	if *httpBoot {
		if prof, err = client.HTTPProfile(prof); err != nil {
			return usagef("probe: --http: %v", err)
		}
	}
	if *ipv6 && (prof.IPXE || !strings.HasPrefix(prof.Name, "efi-")) {
		return usagef("probe: --ipv6 simulates EDK II: write --arch efi-x64 (or another efi-* firmware), not %s", prof.Name)
	}
	if *duid != client.DUIDUUID && *duid != client.DUIDLLT {
		return usagef("probe: --duid %q: write uuid or llt", *duid)
	}
	if *scale <= 0 || *scale > 10 {
		return usagef("probe: --timeout-scale %v: write a factor above 0 and at most 10, e.g. 0.25", *scale)
	}
	var servers []netip.Addr
	for _, s := range expect {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Is4() == *ipv6 {
			if *ipv6 {
				return usagef("probe: --expect-server %q: write the IPv6 address the server answers from, e.g. --expect-server fe80::1", s)
			}
			return usagef("probe: --expect-server %q: write an IPv4 address, e.g. --expect-server 192.0.2.1", s)
		}
		servers = append(servers, a.WithZone(""))
	}
	cfg := client.Config{Interface: *iface, Profile: prof, Fetch: *fetch, ExpectServers: servers, Scale: *scale, DUID: *duid}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var pb *progressBar
	if !*asJSON && *fetch {
		pb = &progressBar{w: stdout}
		cfg.Progress = pb.update
	}
	if !*asJSON && *ipv6 {
		fmt.Fprintf(stdout, "probing %s over IPv6 as %s (%s), option 16 enterprise %d %q, option 61 %d\n",
			*iface, prof.Name, prof.Firmware, client.EnterprisePXE, prof.VendorClass(), prof.Arch)
	} else if !*asJSON {
		fmt.Fprintf(stdout, "probing %s as %s (%s), option 60 %q\n", *iface, prof.Name, prof.Firmware, prof.VendorClass())
	}
	var res *client.Result
	if *ipv6 {
		res = client.Probe6(ctx, client.Config6{Config: cfg})
	} else {
		res = client.Probe(ctx, cfg)
	}
	if pb != nil {
		pb.finish()
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("probe: write JSON: %w", err)
		}
	} else {
		printReport(stdout, res)
	}
	if !res.Boots {
		return errWouldNotBoot
	}
	return nil
}

// printReport writes res for people.
func printReport(w io.Writer, r *client.Result) {
	fmt.Fprintf(w, "client %s uuid %s\n", r.MAC, r.UUID)
	if r.DHCP6 != nil {
		printDHCP6(w, r.DHCP6)
		printFiles(w, r)
		return
	}
	d := r.DHCP
	if d == nil {
		fmt.Fprintf(w, "\n%s\n", termSafe(r.Verdict))
		return
	}
	fmt.Fprintf(w, "\n%d answer(s) after %d DISCOVER(s):\n", len(d.Offers), d.Discovers)
	for i, o := range d.Offers {
		mark := " "
		if i == d.Selection.Address || i == d.Selection.Boot {
			mark = "*"
		}
		fmt.Fprintf(w, "%s [%d] %s from %s (%s, %s)", mark, i, o.Server(), o.From, o.Kind, o.Type)
		if o.YourIP.IsValid() {
			fmt.Fprintf(w, " offers %s", o.YourIP)
		}
		fmt.Fprintln(w)
		if o.BootFile != "" || o.NextServer.IsValid() {
			fmt.Fprintf(w, "      boot file %q next server %v\n", o.BootFile, orNone(o.NextServer))
		}
		if o.VendorClass != "" {
			fmt.Fprintf(w, "      vendor class %q\n", o.VendorClass)
		}
		if o.PXE != nil {
			fmt.Fprintf(w, "      option 43: %s\n", describePXE(o))
		}
	}
	if d.Selection.Address >= 0 {
		fmt.Fprintf(w, "\nchosen: address from [%d], boot info from [%d] (priority %d): %s\n",
			d.Selection.Address, d.Selection.Boot, d.Selection.Rank, termSafe(d.Selection.Reason))
	} else {
		fmt.Fprintf(w, "\nchosen: nothing: %s\n", termSafe(d.Selection.Reason))
	}
	if d.Lease != nil {
		fmt.Fprintf(w, "lease: %s from %s\n", d.Lease.Addr, d.Lease.Server)
		if r.Configured != "" {
			fmt.Fprintf(w, "configured %s\n", termSafe(r.Configured))
		}
	}
	if d.BootReply != nil {
		fmt.Fprintf(w, "boot server discovery: %s answered with boot file %q\n", d.BootReply.From, d.BootReply.BootFile)
	}
	if d.BootFile != "" {
		fmt.Fprintf(w, "boot file: %q from %v\n", d.BootFile, orNone(d.BootServer))
	}
	printFiles(w, r)
}

// printDHCP6 writes the DHCPv6 part of a report for people.
func printDHCP6(w io.Writer, d *client.DHCP6Result) {
	fmt.Fprintf(w, "\n%d Advertise(s) after %d Solicit(s):\n", len(d.Offers), d.Solicits)
	for i, o := range d.Offers {
		mark := " "
		if i == d.Selection.Address || i == d.Selection.Boot {
			mark = "*"
		}
		fmt.Fprintf(w, "%s [%d] %s (%s, %s)", mark, i, o.From, o.Kind, termSafe(o.Type))
		if o.Addr.IsValid() {
			fmt.Fprintf(w, " offers %s", o.Addr)
		}
		if o.HasPreference {
			fmt.Fprintf(w, " preference %d", o.Preference)
		}
		fmt.Fprintln(w)
		if o.BootFileURL != "" {
			fmt.Fprintf(w, "      boot file URL %q\n", termSafe(o.BootFileURL))
		}
		if o.VendorClass != "" {
			fmt.Fprintf(w, "      vendor class %q enterprise %d\n", termSafe(o.VendorClass), o.Enterprise)
		}
		if o.Dropped != "" {
			fmt.Fprintf(w, "      dropped: %s\n", termSafe(o.Dropped))
		}
	}
	if d.Selection.Address >= 0 {
		fmt.Fprintf(w, "\nchosen: address from [%d], boot info from [%d] (priority %d): %s\n",
			d.Selection.Address, d.Selection.Boot, d.Selection.Rank, termSafe(d.Selection.Reason))
	} else {
		fmt.Fprintf(w, "\nchosen: nothing: %s\n", termSafe(d.Selection.Reason))
	}
	if d.Lease != nil {
		fmt.Fprintf(w, "lease: %s from %s after %d Request(s)\n", d.Lease.Addr, d.Lease.Server, d.Requests)
	}
	if d.BootReply != nil {
		fmt.Fprintf(w, "boot service: %s answered with boot file URL %q (%d request(s) to port 4011)\n",
			d.BootReply.From, termSafe(d.BootReply.BootFileURL), d.BootRequests)
	}
	if d.BootFile != "" {
		fmt.Fprintf(w, "boot file: %q\n", termSafe(d.BootFile))
	}
}

// printFiles writes the downloads, warnings and verdict of a report.
func printFiles(w io.Writer, r *client.Result) {
	if r.DHCP6 != nil && r.Configured != "" {
		fmt.Fprintf(w, "configured %s\n", termSafe(r.Configured))
	}
	if r.Script != nil {
		fmt.Fprintf(w, "iPXE script loads:\n")
		for _, f := range r.Script.Files {
			fmt.Fprintf(w, "  %-7s %s\n", termSafe(f.Command), termSafe(f.URL))
		}
	}
	if len(r.Downloads) > 0 {
		fmt.Fprintln(w, "\nfiles:")
		for _, dl := range r.Downloads {
			fmt.Fprintf(w, "  %-7s %s %s: ", dl.Role, dl.Proto, termSafe(dl.Name))
			switch {
			case !dl.OK():
				fmt.Fprintf(w, "FAILED: %s\n", termSafe(dl.Err))
			case dl.CheckOnly:
				fmt.Fprintln(w, "exists")
			default:
				fmt.Fprintf(w, "%d bytes in %.2f s, %.2f MB/s", dl.Bytes, dl.Seconds, dl.MBps)
				if dl.Proto == "tftp" {
					fmt.Fprintf(w, " (blksize %d, windowsize %d)", dl.Blksize, dl.Windowsize)
				}
				fmt.Fprintf(w, " sha256 %s\n", dl.SHA256)
			}
			if dl.Proto == "http" && dl.OK() {
				fmt.Fprintf(w, "          Content-Type %q, size %d\n", termSafe(dl.ContentType), dl.Size)
			}
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, wn := range r.Warnings {
			fmt.Fprintf(w, "  ! %s: %s\n", wn.Code, termSafe(wn.Message))
		}
	}
	fmt.Fprintf(w, "\n%s\n", termSafe(r.Verdict))
}

func describePXE(o client.Offer) string {
	v := o.PXE
	var parts []string
	if v.HasDiscovery {
		parts = append(parts, fmt.Sprintf("discovery control %#x", v.DiscoveryControl))
	}
	if v.HasMTFTP {
		parts = append(parts, fmt.Sprintf("MTFTP %s", v.MTFTPAddr))
	}
	for _, bs := range v.BootServers {
		parts = append(parts, fmt.Sprintf("boot servers type %d %v", bs.Type, bs.Addrs))
	}
	for _, m := range v.Menu {
		parts = append(parts, fmt.Sprintf("menu %d %q", m.Type, m.Desc))
	}
	if v.HasPrompt {
		parts = append(parts, fmt.Sprintf("prompt %q timeout %d", v.Prompt, v.PromptTimeout))
	}
	if v.BootItem != nil {
		parts = append(parts, fmt.Sprintf("boot item %d layer %d", v.BootItem.Type, v.BootItem.Layer))
	}
	if o.PXEError != "" {
		parts = append(parts, "error: "+termSafe(o.PXEError))
	}
	if len(parts) == 0 {
		return "present, empty"
	}
	return strings.Join(parts, ", ")
}

func orNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}

// progressBar draws one line per download, redrawn at most 5 times a second
// and once more when the download ends.
type progressBar struct {
	mu          sync.Mutex
	w           io.Writer
	cur         *client.Download
	start, last time.Time
	done, total int64
}

func (p *progressBar) update(d *client.Download, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != d {
		p.finishLocked()
		p.cur, p.start = d, time.Now()
	}
	p.done, p.total = done, total
	if now := time.Now(); now.Sub(p.last) >= 200*time.Millisecond || done == total {
		p.last = now
		p.drawLocked()
	}
}

func (p *progressBar) drawLocked() {
	const width = 30
	line := "  " + termSafe(p.cur.Name) + " "
	if p.total > 0 {
		n := int(min(p.done, p.total) * width / p.total)
		line += fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("=", n), strings.Repeat(" ", width-n), p.done*100/p.total)
	}
	speed := 0.0
	if secs := time.Since(p.start).Seconds(); secs > 0 {
		speed = float64(p.done) / secs / 1e6
	}
	fmt.Fprintf(p.w, "\r%s%d bytes %.2f MB/s ", line, p.done, speed)
}

func (p *progressBar) finishLocked() {
	if p.cur != nil {
		p.drawLocked()
		fmt.Fprintln(p.w)
		p.cur = nil
	}
}

func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
}

// requireInterface checks the --interface of a client subcommand: given, and
// an interface of this host with a MAC address.
func requireInterface(cmd, iface, what string) error {
	if iface == "" {
		return usagef("%s: --interface is required: %s, e.g. --interface eth1", cmd, what)
	}
	if _, err := client.InterfaceMAC(iface); err != nil {
		return usagef("%s: --interface %s: %v (see `ip link` for the names)", cmd, iface, err)
	}
	return nil
}
