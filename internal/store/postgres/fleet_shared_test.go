package postgres

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
	"pxed/internal/store/pgtest"
)

// peerDelay is the documented delay for a change made through one server
// to reach the others with the default intervals (flush 0.5 s + poll
// 1 s), with room for a loaded test machine.
const peerDelay = fleet.DefaultSyncInterval + 500*time.Millisecond + 1500*time.Millisecond

type server struct {
	f  *fleet.Fleet
	ev *events.Log
}

// startServer runs a fleet (one pxed server's inventory) with the default
// intervals on dsn until the test ends.
func startServer(t *testing.T, dsn, bootDir string) server {
	t.Helper()
	st := openMachines(t, dsn)
	ev := &events.Log{}
	bc := &boot.Config{BootFiles: map[string]string{"bios": "undionly.kpxe"}, Default: "def", Unknown: boot.UnknownHold,
		Profiles: map[string]boot.Profile{"def": {Name: "def", Kernel: "/k"}}}
	f := &fleet.Fleet{Catalog: &boot.Catalog{}, Store: st, Events: ev, BootDir: bootDir}
	if err := f.Open(context.Background(), bc); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return server{f: f, ev: ev}
}

// within polls cond until it holds or peerDelay has passed.
func within(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	start := time.Now()
	for {
		ok, state := cond()
		if ok {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > peerDelay {
			t.Fatalf("%s: not within %v; last: %s", what, peerDelay, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var srvAddr = boot.Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}

// TestFleetSharedByTwoServers: two servers on one database share one
// inventory: a machine one of them saw, approved or assigned a profile
// through the other, boots so from both; each timeline shows the events
// both saw, by time; forgetting it through one forgets it on both.
func TestFleetSharedByTwoServers(t *testing.T) {
	dsn := pgtest.DB(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := startServer(t, dsn, dir), startServer(t, dsn, dir)
	hw := net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x42}
	mac := hw.String()
	bm := boot.Machine{MAC: hw, Firmware: boot.FirmwareIPXE, Class: "bios", HasArch: true}
	observe := func(s server) boot.Plan {
		p := s.f.Catalog.Snapshot().Decide(bm, srvAddr)
		s.f.Observe(bm, netip.MustParseAddr("192.0.2.42"), "n42", p)
		return p
	}
	state := func(s server) (fleet.Machine, string) {
		m, err := s.f.Get(mac)
		return m, fmt.Sprintf("%+v %v", m, err)
	}

	if p := observe(a); p.Profile != "(hold)" {
		t.Fatalf("unknown machine on A: plan %q, want held", p.Profile)
	}
	within(t, "B learns of the machine A saw", func() (bool, string) {
		m, s := state(b)
		return m.State == boot.StatePending && m.Hostname == "n42", s
	})

	if _, err := b.f.Approve(mac); err != nil {
		t.Fatal(err)
	}
	within(t, "A boots the machine approved through B", func() (bool, string) {
		p := a.f.Catalog.Snapshot().Decide(bm, srvAddr)
		return p.Profile == "def", fmt.Sprintf("plan %q", p.Profile)
	})

	// A keeps seeing the machine: its writes of what it saw never undo
	// B's approval.
	observe(a)
	seen, _ := state(a)
	within(t, "B learns A saw it again", func() (bool, string) {
		m, s := state(b)
		return !m.LastSeen.Before(seen.LastSeen.Truncate(time.Microsecond)), s
	})
	for _, s := range []server{a, b} {
		if m, st := state(s); m.State != boot.StateApproved {
			t.Fatalf("approval undone by a later sighting: %s", st)
		}
	}

	// A runtime profile put through A, assigned through B, boots on A.
	if _, err := a.f.PutProfile(fleet.Profile{Name: "rt", Kernel: "vmlinuz"}); err != nil {
		t.Fatal(err)
	}
	rt := "rt"
	within(t, "B knows A's runtime profile", func() (bool, string) {
		_, err := b.f.Patch(mac, &rt, map[string]string{"rack": "r7"})
		return err == nil, fmt.Sprint(err)
	})
	within(t, "A boots the profile assigned through B", func() (bool, string) {
		m, s := state(a)
		p := a.f.Catalog.Snapshot().Decide(bm, srvAddr)
		return p.Profile == "rt" && m.Labels["rack"] == "r7", fmt.Sprintf("plan %q, %s", p.Profile, s)
	})

	// One timeline: events each server saw, on both, by time.
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	a.ev.Record(events.Event{MAC: mac, Time: t0, Stage: events.StageScript, Detail: "from A"})
	b.ev.Record(events.Event{MAC: mac, Time: t0.Add(time.Millisecond), Stage: events.StageKernel, Detail: "from B"})
	a.ev.Record(events.Event{MAC: mac, Time: t0.Add(2 * time.Millisecond), Stage: events.StageInitrd, Detail: "from A"})
	for name, s := range map[string]server{"A": a, "B": b} {
		within(t, name+"'s timeline shows both servers' events", func() (bool, string) {
			var got []string
			for _, e := range s.ev.Timeline(mac) {
				if !e.Time.Before(t0) {
					got = append(got, string(e.Stage)+" "+e.Detail)
				}
			}
			return fmt.Sprint(got) == "[script from A kernel from B initrd from A]", fmt.Sprint(got)
		})
	}

	if err := b.f.Forget(mac); err != nil {
		t.Fatal(err)
	}
	within(t, "A forgets the machine forgotten through B", func() (bool, string) {
		_, err := a.f.Get(mac)
		return err != nil, fmt.Sprint(err)
	})
}
