package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/tftp"
)

// Stage names of a storm report, in the order of a boot.
const (
	StageDiscover   = "discover→offer" // first DISCOVER (Solicit) to first OFFER (Advertise)
	StageRequest    = "request→ack"    // first REQUEST to ACK (Request to Reply)
	StageBootServer = "boot server"    // first port 4011 request to its ACK
	StageNBP        = "nbp"            // boot file download
	StageScript     = "script"         // iPXE script download
	StageKernel     = "kernel"
	StageInitrd     = "initrd" // every initrd, one sample each
	StageTotal      = "total"  // start to the last byte (or the boot file's name)
)

// StageOrder lists the stages in report order.
var StageOrder = []string{StageDiscover, StageRequest, StageBootServer, StageInfoRequest, StageNBP, StageScript, StageKernel, StageInitrd, StageTotal}

// Phases a machine is in, for the progress line.
const (
	PhaseDHCP = iota
	PhaseNBP
	PhaseFiles // iPXE script, kernel, initrd
	numPhases
)

// StormConfig is what Storm simulates.
type StormConfig struct {
	Clients int // machines to boot; required
	// Profiles are the firmware of the machines: machine i runs
	// Profiles[i%len(Profiles)]. Required.
	Profiles []Profile
	// Fetch downloads the boot file and, for iPXE, the script's kernel and
	// initrds; otherwise a machine is done once DHCP named its boot file.
	Fetch bool
	// Verify SHA-256s every download and checks that every machine got
	// the same bytes for each NBP, kernel and initrd (by stage and file
	// name; scripts are per machine). Without it downloads are counted, not
	// hashed, and HTTP bodies are not copied into the process: the client
	// spends its CPU on packets, so the storm measures the server.
	Verify bool
	// Chain makes PXE machines (bios, efi-*) behave as if their NBP were
	// iPXE: after the download they DHCP again as iPXE and load its script,
	// kernel and initrd. Needs Fetch.
	Chain bool
	// Rate is the arrivals per second; 0 starts every machine at once.
	Rate float64
	// Parallel bounds the machines in flight; 0 means Clients.
	Parallel int
	// Scale multiplies the firmware's DHCP timeouts (Exchange.Scale).
	Scale float64
	// Timeout bounds one machine's whole boot; 0 means 5 minutes.
	Timeout time.Duration
	// MACPrefix is the first three bytes of the machines' MAC addresses,
	// the last three count from 1; nil means 02:70:78 (locally
	// administered).
	MACPrefix net.HardwareAddr
	// NewTransport gives machine mac its DHCP transport and a function
	// releasing it; required (RawSocket.Transport for real storms).
	NewTransport func(mac net.HardwareAddr) (Transport, func())
	// IPv6 boots the machines over IPv6 (boot6): DHCPv6 through
	// NewTransport6 (required then; NewTransport is not used), downloads
	// from the download interface's own IPv6 address.
	IPv6          bool
	NewTransport6 func(mac net.HardwareAddr) (Transport6, func())
	// Interface binds the download sockets (TFTP, HTTP) to an interface.
	Interface string
	// AddAddress, when set, puts a machine's leased address on the
	// download interface for the machine's downloads and returns the
	// function that removes it (AddLeaseAddr on a real interface): each
	// machine then downloads from its own address, as real machines do,
	// instead of all from the interface's.
	AddAddress func(netip.Addr) (remove func(), err error)
	// TFTPTimeout is the TFTP retransmit timeout; 0 means 1 s.
	TFTPTimeout time.Duration
	// Progress, when set, is called about every ProgressEvery (0: 500 ms)
	// and once at the end.
	Progress      func(StormProgress)
	ProgressEvery time.Duration
	Logger        *slog.Logger // nil discards
	// PerMachine adds each machine's steps to the report
	// (StormReport.Machines).
	PerMachine bool
}

// StormProgress is a snapshot of a running storm.
type StormProgress struct {
	Started, Done, Failed int
	InFlight              [numPhases]int // machines in PhaseDHCP, PhaseNBP, PhaseFiles
	Elapsed               time.Duration
}

// StageStats are the latencies of one stage over all machines that went
// through it.
type StageStats struct {
	Stage string        `json:"stage"`
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P95   time.Duration `json:"p95_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// StormReport is the outcome of a storm.
type StormReport struct {
	Clients  int      `json:"clients"`
	Profiles []string `json:"profiles"`
	Fetch    bool     `json:"fetch"`
	Chain    bool     `json:"chain,omitempty"`
	Rate     float64  `json:"rate,omitempty"`
	Booted   int      `json:"booted"`
	Failed   int      `json:"failed"`
	// Seconds is the time from the first machine's start to the last
	// machine's end: time to all booted.
	Seconds float64      `json:"seconds"`
	Stages  []StageStats `json:"stages"`
	// Retries counts retransmissions by packet: DISCOVER, REQUEST and the
	// boot server request (each after its first).
	Retries map[string]int `json:"retries"`
	// Failures counts failed machines by cause (FailureCause).
	Failures map[string]int `json:"failures"`
	// Examples keeps one error message per cause.
	Examples map[string]string `json:"examples,omitempty"`
	Bytes    int64             `json:"bytes"`
	MBps     float64           `json:"mb_per_s"` // Bytes over Seconds, 10^6 bytes/s
	// CPUSeconds is the user and system CPU time the storm's own process
	// used (getrusage): near Seconds × cores, the client, not the server,
	// bounds the storm.
	CPUSeconds float64 `json:"cpu_seconds"`
	// SHA256 is, with Verify, the hash of each file ("kernel vmlinuz")
	// every machine that loaded it got; a machine that got other bytes
	// failed with cause STAGE-mismatch.
	SHA256 map[string]string `json:"sha256,omitempty"`
	Socket *RawStats         `json:"socket,omitempty"`
	Note   string            `json:"note,omitempty"`
	// Machines is each machine's boot, step by step (PerMachine).
	Machines []MachineReport `json:"machines,omitempty"`
}

// machine is the outcome of one simulated boot.
type machine struct {
	samples map[string][]time.Duration
	retries map[string]int
	cause   string // "" when it booted
	err     string
	bytes   int64
	rep     MachineReport // PerMachine
}

func (m *machine) add(stage string, d time.Duration) {
	if m.samples == nil {
		m.samples = map[string][]time.Duration{}
	}
	m.samples[stage] = append(m.samples[stage], d)
}

type stormRun struct {
	cfg                   StormConfig
	log                   *slog.Logger
	started, done, failed atomic.Int64
	phase                 [numPhases]atomic.Int64
	prefix                net.HardwareAddr
	timeout               time.Duration
	t0                    time.Time

	sumsMu sync.Mutex
	sums   map[string]string // file key → the first machine's SHA-256 (Verify)

	// engine runs every machine's TFTP downloads from one epoll loop
	// (Fetch): the storm's CPU goes to packets, not goroutine wake-ups.
	engine *tftp.ClientEngine
}

// StormMAC returns the MAC address of machine i (from 0) with prefix (nil:
// 02:70:78).
func StormMAC(prefix net.HardwareAddr, i int) net.HardwareAddr {
	if len(prefix) != 3 {
		prefix = net.HardwareAddr{0x02, 0x70, 0x78}
	}
	n := i + 1
	return net.HardwareAddr{prefix[0], prefix[1], prefix[2], byte(n >> 16), byte(n >> 8), byte(n)}
}

// Storm boots cfg.Clients simulated machines, at once or at cfg.Rate, and
// reports latencies, retries and failures. It returns an error only for a
// configuration it cannot run; failed machines are in the report. When ctx
// ends, the machines not started are not counted.
func Storm(ctx context.Context, cfg StormConfig) (*StormReport, error) {
	if cfg.Clients <= 0 || cfg.Clients > 1<<24-1 {
		return nil, fmt.Errorf("client: storm: %d clients: want 1 to %d", cfg.Clients, 1<<24-1)
	}
	if len(cfg.Profiles) == 0 || (cfg.NewTransport == nil && !cfg.IPv6) || (cfg.NewTransport6 == nil && cfg.IPv6) {
		return nil, errors.New("client: storm: Profiles and NewTransport (NewTransport6 with IPv6) are required")
	}
	r := &stormRun{cfg: cfg, log: cfg.Logger, prefix: cfg.MACPrefix, timeout: cfg.Timeout}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = 5 * time.Minute
	}
	par := cfg.Parallel
	if par <= 0 || par > cfg.Clients {
		par = cfg.Clients
	}
	if cfg.Fetch {
		eng, err := tftp.NewClientEngine()
		if err != nil {
			return nil, fmt.Errorf("client: storm: %w", err)
		}
		defer eng.Close()
		r.engine = eng
	}
	r.t0 = time.Now()
	cpu0 := processCPU()

	results := make(chan machine, par)
	agg := newAggregate()
	aggDone := make(chan struct{})
	go func() {
		defer close(aggDone)
		for m := range results {
			agg.add(m)
		}
	}()
	stopProgress := r.progressLoop()

	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	var tick *time.Ticker
	if cfg.Rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		defer tick.Stop()
	}
launch:
	for i := 0; i < cfg.Clients; i++ {
		if tick != nil && i > 0 {
			select {
			case <-tick.C:
			case <-ctx.Done():
				break launch
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		r.started.Add(1)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var m machine
			if cfg.IPv6 {
				m = r.boot6(ctx, i)
			} else {
				m = r.boot(ctx, i)
			}
			if m.cause == "" {
				r.done.Add(1)
			} else {
				r.failed.Add(1)
			}
			results <- m
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(r.t0)
	close(results)
	<-aggDone
	stopProgress()

	rep := agg.report()
	rep.Clients = int(r.started.Load())
	rep.Fetch, rep.Chain, rep.Rate = cfg.Fetch, cfg.Chain, cfg.Rate
	if len(r.sums) > 0 {
		rep.SHA256 = r.sums
	}
	for _, p := range cfg.Profiles {
		rep.Profiles = append(rep.Profiles, p.Name)
	}
	rep.Seconds = elapsed.Seconds()
	rep.CPUSeconds = (processCPU() - cpu0).Seconds()
	if rep.Seconds > 0 {
		rep.MBps = float64(rep.Bytes) / rep.Seconds / 1e6
	}
	return rep, nil
}

// processCPU returns the user plus system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// progressLoop calls cfg.Progress periodically; the returned function stops
// it after a last call.
func (r *stormRun) progressLoop() func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	every := r.cfg.ProgressEvery
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.cfg.Progress(r.snapshot())
			case <-stop:
				r.cfg.Progress(r.snapshot())
				return
			}
		}
	}()
	return func() { close(stop); <-stopped }
}

func (r *stormRun) snapshot() StormProgress {
	p := StormProgress{Started: int(r.started.Load()), Done: int(r.done.Load()), Failed: int(r.failed.Load()), Elapsed: time.Since(r.t0)}
	for i := range p.InFlight {
		p.InFlight[i] = int(r.phase[i].Load())
	}
	return p
}

// enter moves the machine into phase ph (leaving the previous one, -1:
// none) and returns ph.
func (r *stormRun) enter(prev, ph int) int {
	if prev >= 0 {
		r.phase[prev].Add(-1)
	}
	if ph >= 0 {
		r.phase[ph].Add(1)
	}
	return ph
}

// boot runs machine i through the whole flow.
func (r *stormRun) boot(ctx context.Context, i int) (m machine) {
	cfg := r.cfg
	prof := cfg.Profiles[i%len(cfg.Profiles)]
	mac := StormMAC(r.prefix, i)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	inner, release := cfg.NewTransport(mac)
	defer release()
	ph := r.enter(-1, PhaseDHCP)
	defer func() { r.enter(ph, -1) }()
	log := r.log.With("mac", mac.String(), "arch", prof.Name)
	m.rep.MAC, m.rep.Profile = mac.String(), prof.Name
	start := time.Now()
	defer func() { m.rep.Total = time.Since(start).Seconds() }()
	fail := func(stage string, err error) machine {
		m.cause, m.err = FailureCause(stage, err), err.Error()
		m.rep.Cause = m.cause
		log.Debug("storm: machine failed", "stage", stage, "cause", m.cause, "err", err)
		return m
	}
	d, err := r.dhcp(ctx, prof, mac, inner, &m)
	if err != nil {
		return fail("dhcp", err)
	}
	if !cfg.Fetch {
		m.add(StageTotal, time.Since(start))
		return m
	}
	f := &Fetcher{Profile: prof, Interface: cfg.Interface, Timeout: cfg.TFTPTimeout, SkipHash: !cfg.Verify, Engine: r.engine}
	local, remove, err := r.machineAddr(d)
	if err != nil {
		return fail("dhcp", err)
	}
	defer func() { remove() }() // the address iPXE downloads from may replace it
	f.LocalAddr = local
	if !prof.IPXE {
		ph = r.enter(ph, PhaseNBP)
		if _, err := r.get(ctx, f, &m, StageNBP, d.BootFile, d.BootServer); err != nil {
			return fail(StageNBP, err)
		}
		if !cfg.Chain || prof.HTTPBoot() {
			m.add(StageTotal, time.Since(start))
			return m
		}
		// The NBP is iPXE: it DHCPs again, with its own identity.
		prof = ipxeOf(prof)
		f = &Fetcher{Profile: prof, Interface: cfg.Interface, Timeout: cfg.TFTPTimeout, SkipHash: !cfg.Verify, Engine: r.engine, LocalAddr: local}
		ph = r.enter(ph, PhaseDHCP)
		if d, err = r.dhcp(ctx, prof, mac, inner, &m); err != nil {
			return fail("dhcp", err)
		}
		if d.Lease != nil && local.IsValid() && d.Lease.Addr != local {
			// iPXE was given another address: it downloads from that.
			remove()
			if local, remove, err = r.machineAddr(d); err != nil {
				return fail("dhcp", err)
			}
			f.LocalAddr = local
		}
		if w, loop := ChainloadWarning(prof, d.BootFile); loop {
			return fail("dhcp", errors.New(w.Message))
		}
	}
	ph = r.enter(ph, PhaseFiles)
	if stage, err := r.ipxeFiles(ctx, f, &m, d); err != nil {
		return fail(stage, err)
	}
	m.add(StageTotal, time.Since(start))
	return m
}

// machineAddr puts the address d leased on the download interface when
// the storm gives each machine its own (StormConfig.AddAddress); otherwise
// (or without a lease: ProxyDHCP alone) the downloads use the interface's
// own address.
func (r *stormRun) machineAddr(d *DHCPResult) (netip.Addr, func(), error) {
	if d.Lease == nil || !r.kernelHolds(d.Lease.Addr) {
		return netip.Addr{}, func() {}, nil
	}
	remove, err := r.cfg.AddAddress(d.Lease.Addr)
	if err != nil {
		return netip.Addr{}, nil, fmt.Errorf("put the lease %s on the download interface: %w", d.Lease.Addr, err)
	}
	return d.Lease.Addr, remove, nil
}

// ipxeOf is the iPXE build a PXE firmware chainloads (undionly.kpxe for
// BIOS, snponly.efi for UEFI).
func ipxeOf(p Profile) Profile {
	name := "ipxe-efi"
	if p.Arch == profiles["bios"].Arch {
		name = "ipxe-bios"
	}
	q, _ := ParseProfile(name)
	return q
}

// dhcp runs the DHCP exchange of one machine, recording its stages and
// retries in m. A DHCPNAK sends the client back to INIT (RFC 2131 §3.1
// step 5): firmware starts over with a new DISCOVER. Servers that do not
// hold offered addresses (dnsmasq --no-ping) offer one address to several
// clients at once, and all but the first are refused.
func (r *stormRun) dhcp(ctx context.Context, prof Profile, mac net.HardwareAddr, inner Transport, m *machine) (*DHCPResult, error) {
	clock := &clockTransport{inner: inner}
	ex := &Exchange{Transport: clock, Profile: prof, ID: Identity{MAC: mac, UUID: UUIDFromMAC(mac)}, Scale: r.cfg.Scale,
		NAKRestarts: maxNAKRestarts}
	start := time.Now()
	d, err := ex.Run(ctx)
	clock.record(m)
	m.retries["restart after DHCPNAK"] += d.NAKs
	st := MachineStep{Stage: "dhcp", Seconds: time.Since(start).Seconds(),
		Resent: int64(max(clock.discovers-1, 0) + max(clock.requests-1, 0) + max(clock.bootReqs-1, 0))}
	if err != nil {
		st.Err = err.Error()
	}
	if d != nil && d.Lease != nil {
		m.rep.Addr = d.Lease.Addr.String()
	}
	r.step(m, st, start)
	if err != nil {
		return d, err
	}
	if d.BootFile == "" {
		return d, errNoBootFile
	}
	// A machine answers ARP for its lease with its MAC. When the storm puts
	// the lease on the download interface (machineAddr), the kernel answers
	// for it with the interface's MAC, and the downloads come from there: a
	// second answer from the simulated MAC would race the kernel's, and a
	// late one (over a second, under load) replaces it in the server's
	// neighbour table, where it stays (the raw socket also answers the
	// server's unicast probes), so the server's packets for the machine go
	// to a MAC nothing receives on: a download that never gets an answer.
	if h, ok := inner.(interface{ HoldAddress(netip.Addr) }); ok && d.Lease != nil && !r.kernelHolds(d.Lease.Addr) {
		h.HoldAddress(d.Lease.Addr)
	}
	return d, nil
}

// kernelHolds reports whether the storm puts lease on the download
// interface for the machine's downloads (machineAddr).
func (r *stormRun) kernelHolds(lease netip.Addr) bool {
	return r.cfg.Fetch && r.cfg.AddAddress != nil && lease.Is4()
}

// get downloads one file of a machine over TFTP or HTTP.
func (r *stormRun) get(ctx context.Context, f *Fetcher, m *machine, stage, name string, server netip.Addr) (Download, error) {
	var dl Download
	start := time.Now()
	if isURL(name) {
		dl, _ = f.HTTP(ctx, stage, name, false)
	} else {
		dl, _ = f.TFTP(ctx, stage, server, name, false)
	}
	r.step(m, MachineStep{Stage: stage, Seconds: dl.Seconds, Bytes: dl.Bytes, Resent: dl.Resent, FirstReply: dl.FirstReply,
		Blksize: dl.Blksize, Windowsize: dl.Windowsize, Err: dl.Err}, start)
	m.bytes += dl.Bytes
	if !dl.OK() {
		return dl, &downloadError{stage: stage, d: dl}
	}
	if r.cfg.Verify && stage != StageScript {
		if want := r.sameBytes(stage+" "+path.Base(name), dl.SHA256); want != "" {
			dl.Err = fmt.Sprintf("sha256 %s, other machines got %s", dl.SHA256, want)
			return dl, &downloadError{stage: stage, d: dl, mismatch: true}
		}
	}
	m.add(stage, time.Duration(dl.Seconds*float64(time.Second)))
	return dl, nil
}

// sameBytes records sum as the hash of file when it is the first, and
// returns the recorded hash when sum differs from it ("" when they agree).
func (r *stormRun) sameBytes(file, sum string) string {
	r.sumsMu.Lock()
	defer r.sumsMu.Unlock()
	if r.sums == nil {
		r.sums = map[string]string{}
	}
	want, ok := r.sums[file]
	if !ok {
		r.sums[file] = sum
		return ""
	}
	if sum != want {
		return want
	}
	return ""
}

// ipxeFiles loads the iPXE script d names and the kernel and initrds it
// loads; on failure it returns the stage.
func (r *stormRun) ipxeFiles(ctx context.Context, f *Fetcher, m *machine, d *DHCPResult) (string, error) {
	dl, err := r.get(ctx, f, m, StageScript, d.BootFile, d.BootServer)
	if err != nil {
		return StageScript, err
	}
	base := d.BootFile
	if !isURL(base) {
		base = "tftp://" + d.BootServer.String() + "/" + strings.TrimPrefix(base, "/")
	}
	s, err := ParseScript(string(dl.content), base)
	if err != nil {
		return StageScript, err
	}
	for _, sf := range s.Files {
		if sf.Unresolved || (sf.Command != "kernel" && sf.Command != "initrd") {
			continue
		}
		server, name := d.BootServer, sf.URL
		if rest, ok := strings.CutPrefix(sf.URL, "tftp://"); ok {
			host, file, _ := strings.Cut(rest, "/")
			if a, err := netip.ParseAddr(host); err == nil {
				server, name = a, file
			}
		}
		if _, err := r.get(ctx, f, m, sf.Command, name, server); err != nil {
			return sf.Command, err
		}
	}
	return "", nil
}

// maxNAKRestarts bounds how often a machine starts over after a DHCPNAK.
const maxNAKRestarts = 5

var errNoBootFile = errors.New("client: the selected offer has no boot file (PXE-E53)")

// downloadError is a failed download of a storm machine.
type downloadError struct {
	stage    string
	d        Download
	mismatch bool // complete, but not the bytes other machines got (Verify)
}

func (e *downloadError) Error() string {
	return fmt.Sprintf("%s %s %s: %s", e.stage, e.d.Proto, e.d.Name, e.d.Err)
}

// FailureCause names why a machine failed at stage ("dhcp", or a download
// stage such as StageNBP) for the report's failure counts: no-offer, nak,
// no-ack, boot-server, no-boot-file, local-boot, timeout, canceled,
// STAGE-not-found, STAGE-timeout, STAGE-http-CODE, STAGE-refused,
// STAGE-mismatch (Verify), STAGE-error, script-invalid, dhcp-error.
func FailureCause(stage string, err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var de *downloadError
	if errors.As(err, &de) {
		d := de.d
		switch {
		case de.mismatch:
			return stage + "-mismatch"
		case d.HTTPStatus != 0 && d.HTTPStatus != 200:
			return fmt.Sprintf("%s-http-%d", stage, d.HTTPStatus)
		case strings.Contains(d.Err, "file not found"):
			return stage + "-not-found"
		case strings.Contains(d.Err, "no answer after"), strings.Contains(d.Err, "deadline exceeded"), strings.Contains(d.Err, "timeout"):
			return stage + "-timeout"
		case strings.Contains(d.Err, "connection refused"):
			return stage + "-refused"
		}
		return stage + "-error"
	}
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, ErrNoOffer):
		return "no-offer"
	case errors.Is(err, errNoBootFile), strings.Contains(msg, "without a boot file"):
		return "no-boot-file"
	case strings.Contains(msg, "DHCPNAK"):
		return "nak"
	case strings.Contains(msg, "no DHCPACK"):
		return "no-ack"
	case strings.Contains(msg, "boot server"):
		return "boot-server"
	case strings.Contains(msg, "local boot"):
		return "local-boot"
	case stage == StageScript:
		return "script-invalid"
	}
	return stage + "-error"
}

// clockTransport times the DHCP stages of one machine as seen on the wire
// and counts retransmissions.
type clockTransport struct {
	inner                         Transport
	discover, offer, request, ack time.Time
	bootReq, bootAck              time.Time
	discovers, requests, bootReqs int
}

// Send implements Transport.
func (c *clockTransport) Send(ctx context.Context, p *dhcpv4.DHCPv4, dst netip.AddrPort) error {
	now := time.Now()
	switch {
	case dst.Port() == BootServerPort:
		c.bootReqs++
		if c.bootReq.IsZero() {
			c.bootReq = now
		}
	case p.MessageType() == dhcpv4.MessageTypeDiscover:
		c.discovers++
		if c.discover.IsZero() {
			c.discover = now
		}
	case p.MessageType() == dhcpv4.MessageTypeRequest:
		c.requests++
		if c.request.IsZero() {
			c.request = now
		}
	}
	return c.inner.Send(ctx, p, dst)
}

// Receive implements Transport.
func (c *clockTransport) Receive(ctx context.Context) (*dhcpv4.DHCPv4, netip.AddrPort, error) {
	p, from, err := c.inner.Receive(ctx)
	if err != nil {
		return p, from, err
	}
	now := time.Now()
	switch mt := p.MessageType(); {
	case from.Port() == BootServerPort && mt == dhcpv4.MessageTypeAck:
		if c.bootAck.IsZero() && !c.bootReq.IsZero() {
			c.bootAck = now
		}
	case mt == dhcpv4.MessageTypeOffer || !p.Options.Has(dhcpv4.OptionDHCPMessageType):
		if c.offer.IsZero() && !c.discover.IsZero() {
			c.offer = now
		}
	case mt == dhcpv4.MessageTypeAck:
		if c.ack.IsZero() && !c.request.IsZero() {
			c.ack = now
		}
	}
	return p, from, nil
}

// record adds the DHCP stages and retries to m.
func (c *clockTransport) record(m *machine) {
	pair := func(stage string, a, b time.Time) {
		if !a.IsZero() && !b.IsZero() {
			m.add(stage, b.Sub(a))
		}
	}
	pair(StageDiscover, c.discover, c.offer)
	pair(StageRequest, c.request, c.ack)
	pair(StageBootServer, c.bootReq, c.bootAck)
	if m.retries == nil {
		m.retries = map[string]int{}
	}
	m.retries["DISCOVER"] += max(c.discovers-1, 0)
	m.retries["REQUEST"] += max(c.requests-1, 0)
	m.retries["boot server request"] += max(c.bootReqs-1, 0)
}
