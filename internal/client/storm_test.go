package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/tftp"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", []time.Duration{ms(7)}, 99, ms(7)},
		{"p50 of 1..100", hundred, 50, ms(50)},
		{"p95 of 1..100", hundred, 95, ms(95)},
		{"p99 of 1..100", hundred, 99, ms(99)},
		{"p100 is the max", hundred, 100, ms(100)},
		{"p50 of two rounds up to the first", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{"p99 of ten is the max (nearest rank)", hundred[:10], 99, ms(10)},
		{"tiny q gives the min", hundred, 0.001, ms(1)},
	} {
		if got := Percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: Percentile(q=%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestStats(t *testing.T) {
	s := Stats(StageNBP, []time.Duration{ms(30), ms(10), ms(20)})
	if s.Count != 3 || s.P50 != ms(20) || s.P95 != ms(30) || s.P99 != ms(30) || s.Max != ms(30) {
		t.Errorf("Stats = %+v", s)
	}
	if s := Stats(StageNBP, nil); s.Count != 0 || s.Max != 0 {
		t.Errorf("Stats(nil) = %+v", s)
	}
}

func TestFailureCause(t *testing.T) {
	dl := func(d Download) error { return &downloadError{stage: StageNBP, d: d} }
	for _, tc := range []struct {
		stage string
		err   error
		want  string
	}{
		{"dhcp", nil, ""},
		{"dhcp", fmt.Errorf("client: %w: nothing", ErrNoOffer), "no-offer"},
		{"dhcp", errors.New("client: 192.0.2.2 refused the address 192.0.2.9 (DHCPNAK: address in use)"), "nak"},
		{"dhcp", errors.New("client: no DHCPACK from 192.0.2.2 for 192.0.2.9 after 4 requests"), "no-ack"},
		{"dhcp", errors.New("client: no answer from boot server 192.0.2.1:4011 after 4 requests"), "boot-server"},
		{"dhcp", errors.New("client: boot server 192.0.2.1:4011 answered without a boot file (PXE-E53)"), "no-boot-file"},
		{"dhcp", errNoBootFile, "no-boot-file"},
		{"dhcp", errors.New("client: the boot menu's first item is local boot (type 0): the firmware would boot from disk"), "local-boot"},
		{"dhcp", fmt.Errorf("client: discover: %w", context.DeadlineExceeded), "timeout"},
		{"dhcp", fmt.Errorf("client: discover: %w", context.Canceled), "canceled"},
		{"dhcp", errors.New("client: send DISCOVER: network is down"), "dhcp-error"},
		{StageNBP, dl(Download{Proto: "tftp", Err: "tftp: get \"x\": " + tftp.ErrNotFound.Error()}), "nbp-not-found"},
		{StageNBP, dl(Download{Proto: "tftp", Err: "tftp: get \"x\": block 3: no answer after 6 tries: i/o timeout"}), "nbp-timeout"},
		{StageNBP, dl(Download{Proto: "http", HTTPStatus: 404, Err: "http: GET u: 404 Not Found"}), "nbp-http-404"},
		{StageNBP, dl(Download{Proto: "http", Err: "http: GET u: dial tcp 192.0.2.1:8080: connect: connection refused"}), "nbp-refused"},
		{StageNBP, dl(Download{Proto: "tftp", Err: "tftp: get \"x\": access violation"}), "nbp-error"},
		{StageScript, errors.New("client: u is not an iPXE script (no #!ipxe first line)"), "script-invalid"},
		{StageKernel, &downloadError{stage: StageKernel, d: Download{Proto: "http", HTTPStatus: 200, Err: "sha256 ab, other machines got cd"}, mismatch: true}, "kernel-mismatch"},
	} {
		if got := FailureCause(tc.stage, tc.err); got != tc.want {
			t.Errorf("FailureCause(%s, %v) = %q, want %q", tc.stage, tc.err, got, tc.want)
		}
	}
}

func TestStormMAC(t *testing.T) {
	if got := StormMAC(nil, 0).String(); got != "02:70:78:00:00:01" {
		t.Errorf("StormMAC(nil, 0) = %s", got)
	}
	if got := StormMAC(net.HardwareAddr{0x02, 0xaa, 0xbb}, 0x12344).String(); got != "02:aa:bb:01:23:45" {
		t.Errorf("StormMAC(02:aa:bb, 0x12344) = %s", got)
	}
}

// nakOnce refuses the first REQUEST it sees, then lets the address server
// answer: the client must start over (RFC 2131 §3.1).
func nakOnce(srv string) func(*dhcpv4.DHCPv4, netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
	done := false
	inner := addressServer(srv, "192.0.2.100")
	return func(p *dhcpv4.DHCPv4, dst netip.AddrPort) (*dhcpv4.DHCPv4, netip.AddrPort) {
		if p.MessageType() == dhcpv4.MessageTypeRequest && dst.Port() == 67 && !done {
			done = true
			r, _ := dhcpv4.NewReplyFromRequest(p, dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.ParseIP(srv))))
			return r, netip.AddrPortFrom(netip.MustParseAddr(srv), 67)
		}
		return inner(p, dst)
	}
}

// TestStormEngine runs the storm engine over in-memory transports: machines
// served by an address server and pxed's proxy policy, some refused once
// (restart after NAK), some on a silent wire (no-offer).
func TestStormEngine(t *testing.T) {
	const machines = 30
	var silent atomic.Int64
	efi, _ := ParseProfile("efi-x64")
	bios, _ := ParseProfile("bios")
	var progress []StormProgress
	cfg := StormConfig{
		Clients: machines, Profiles: []Profile{efi, bios}, Scale: 0.002, Parallel: 8,
		NewTransport: func(mac net.HardwareAddr) (Transport, func()) {
			n := newFakeNet(t)
			switch mac[5] % 10 {
			case 0: // MACs ending in 10, 20, 30 (BIOS machines): nobody answers
				silent.Add(1)
			case 3:
				n.servers = append(n.servers, nakOnce("192.0.2.2"), pxedProxy())
			default:
				n.servers = append(n.servers, addressServer("192.0.2.2", "192.0.2.100"), pxedProxy())
			}
			return n, func() {}
		},
		Progress:      func(p StormProgress) { progress = append(progress, p) },
		ProgressEvery: time.Hour, // only the final call
	}
	rep, err := Storm(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := machines - int(silent.Load())
	if rep.Clients != machines || rep.Booted != want || rep.Failed != int(silent.Load()) || rep.Failures["no-offer"] != int(silent.Load()) {
		t.Fatalf("report: clients %d booted %d failed %d failures %v (examples %v), want %d booted, %d no-offer",
			rep.Clients, rep.Booted, rep.Failed, rep.Failures, rep.Examples, want, silent.Load())
	}
	if rep.Retries["restart after DHCPNAK"] != 3 {
		t.Errorf("NAK restarts = %d, want 3 (machines 3, 13, 23)", rep.Retries["restart after DHCPNAK"])
	}
	if rep.Retries["DISCOVER"] != 3*(len(Windows)-1)+3 {
		t.Errorf("DISCOVER retries = %d, want %d (silent machines' windows + one new DISCOVER per NAK)",
			rep.Retries["DISCOVER"], 3*(len(Windows)-1)+3)
	}
	counts := map[string]int{}
	for _, s := range rep.Stages {
		counts[s.Stage] = s.Count
	}
	// EDK II (even machine numbers: MACs ending in odd numbers, never a
	// silent one) asks the boot server on 4011.
	if counts[StageDiscover] != want || counts[StageRequest] != want || counts[StageBootServer] != machines/2 || counts[StageTotal] != want {
		t.Errorf("stage counts %v, want %d (boot server %d)", counts, want, machines/2)
	}
	if len(progress) != 1 || progress[0].Done != want || progress[0].Failed != 3 || progress[0].InFlight != [numPhases]int{} {
		t.Errorf("final progress %+v", progress)
	}
}

func TestStormConfigErrors(t *testing.T) {
	p, _ := ParseProfile("bios")
	nt := func(net.HardwareAddr) (Transport, func()) { return newFakeNet(t), func() {} }
	for name, cfg := range map[string]StormConfig{
		"no clients":   {Profiles: []Profile{p}, NewTransport: nt},
		"no profiles":  {Clients: 1, NewTransport: nt},
		"no transport": {Clients: 1, Profiles: []Profile{p}},
	} {
		if _, err := Storm(context.Background(), cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestStormSameBytes: with Verify, the first machine's hash of a file is
// the reference; a machine that got other bytes is told which.
func TestStormSameBytes(t *testing.T) {
	r := &stormRun{}
	if got := r.sameBytes("kernel vmlinuz", "aa"); got != "" {
		t.Errorf("first sample: %q, want agreement", got)
	}
	if got := r.sameBytes("nbp undionly.kpxe", "bb"); got != "" {
		t.Errorf("another file: %q, want agreement", got)
	}
	if got := r.sameBytes("kernel vmlinuz", "aa"); got != "" {
		t.Errorf("same bytes: %q, want agreement", got)
	}
	if got := r.sameBytes("kernel vmlinuz", "ff"); got != "aa" {
		t.Errorf("other bytes: %q, want the reference aa", got)
	}
	if len(r.sums) != 2 || r.sums["kernel vmlinuz"] != "aa" {
		t.Errorf("sums = %v", r.sums)
	}
}

// holdingNet is a fakeNet that records the addresses it is asked to answer
// ARP for (RawTransport.HoldAddress).
type holdingNet struct {
	*fakeNet
	held []netip.Addr
}

func (h *holdingNet) HoldAddress(ip netip.Addr) { h.held = append(h.held, ip) }

// TestStormLeaseARP: a machine's raw transport answers ARP for its lease
// only when the lease stays off the download interface. When the storm puts
// it there (AddAddress, --machine-addrs), the kernel answers with the
// interface's MAC: a second, late answer from the simulated MAC took over
// the server's neighbour entry in a 500-machine storm, and that machine's
// NBP download never got an answer.
func TestStormLeaseARP(t *testing.T) {
	bios, _ := ParseProfile("bios")
	lease := netip.MustParseAddr("192.0.2.100")
	for _, tc := range []struct {
		name     string
		fetch    bool
		addAddr  bool
		wantHeld bool
	}{
		{"downloads from the lease on the interface", true, true, false},
		{"downloads from the interface's own address", true, false, true},
		{"DHCP only", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := StormConfig{Fetch: tc.fetch, Scale: 0.002}
			if tc.addAddr {
				cfg.AddAddress = func(netip.Addr) (func(), error) { return func() {}, nil }
			}
			r := &stormRun{cfg: cfg}
			n := &holdingNet{fakeNet: newFakeNet(t)}
			n.servers = append(n.servers, addressServer("192.0.2.2", lease.String()), pxedProxy())
			m := machine{retries: map[string]int{}}
			d, err := r.dhcp(context.Background(), bios, StormMAC(nil, 0), n, &m)
			if err != nil {
				t.Fatal(err)
			}
			if d.Lease == nil || d.Lease.Addr != lease {
				t.Fatalf("lease %+v, want %v", d.Lease, lease)
			}
			if held := len(n.held) > 0; held != tc.wantHeld {
				t.Fatalf("raw transport answers ARP for %v: %v, want %v", n.held, held, tc.wantHeld)
			}
		})
	}
}

// TestStormPerMachine: with PerMachine each machine's report names it,
// its lease and its DHCP exchange with the retries it took.
func TestStormPerMachine(t *testing.T) {
	bios, _ := ParseProfile("bios")
	cfg := StormConfig{
		Clients: 4, Profiles: []Profile{bios}, Scale: 0.002, PerMachine: true,
		NewTransport: func(mac net.HardwareAddr) (Transport, func()) {
			n := newFakeNet(t)
			if mac[5] != 4 { // machine 4 hears nobody
				n.servers = append(n.servers, addressServer("192.0.2.2", "192.0.2.100"), pxedProxy())
			}
			return n, func() {}
		},
	}
	rep, err := Storm(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Machines) != 4 {
		t.Fatalf("%d machine reports, want 4", len(rep.Machines))
	}
	for _, m := range rep.Machines {
		if m.Profile != "bios" || len(m.Steps) != 1 || m.Steps[0].Stage != "dhcp" || m.Steps[0].Start < 0 || m.Total <= 0 {
			t.Errorf("machine %s: %+v", m.MAC, m)
			continue
		}
		st := m.Steps[0]
		if m.MAC == StormMAC(nil, 3).String() {
			if m.Cause != "no-offer" || st.Err == "" || st.Resent != int64(len(Windows)-1) || m.Addr != "" {
				t.Errorf("silent machine: %+v, want no-offer after %d DISCOVER retries", m, len(Windows)-1)
			}
			continue
		}
		if m.Cause != "" || st.Err != "" || st.Resent != 0 || m.Addr != "192.0.2.100" {
			t.Errorf("machine %s: %+v, want booted with lease 192.0.2.100 and no retries", m.MAC, m)
		}
	}
	cfg.PerMachine = false
	if rep, err = Storm(context.Background(), cfg); err != nil || rep.Machines != nil {
		t.Errorf("without PerMachine: machines %v, err %v", rep.Machines, err)
	}
}
