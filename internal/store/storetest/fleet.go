package storetest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

// FleetOpener opens one database of the machines inventory: each call a
// new connection to the same database, and the function that closes it.
type FleetOpener func(t *testing.T) (fleet.Store, func())

// RunFleet runs the fleet.Store conformance suite. newDB gives a new,
// empty database per test.
func RunFleet(t *testing.T, newDB func(t *testing.T) FleetOpener) {
	tests := []struct {
		name string
		f    func(*testing.T, FleetOpener)
	}{
		{"MachinesRoundTrip", testMachinesRoundTrip},
		{"DeleteMachine", testDeleteMachine},
		{"Profiles", testProfiles},
		{"EventsBounded", testEventsBounded},
		{"FleetPersistence", testFleetPersistence},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newDB(t)) })
	}
}

var bg = context.Background()

// at is a time every backend keeps exactly (microseconds, UTC).
func at(sec int) time.Time { return time.Date(2026, 12, 3, 14, 0, sec, 123000, time.UTC) }

func fleetMachine(i int) fleet.Machine {
	return fleet.Machine{MAC: fmt.Sprintf("52:54:00:00:01:%02x", i), UUID: "01234567-89ab-cdef-0123-456789abcdef", Arch: "efi-x64",
		Firmware: "ipxe", FirstSeen: at(1), LastSeen: at(2), Address: "192.0.2.9", Hostname: "node", Labels: map[string]string{"rack": "r1"},
		Profile: "install", State: boot.StateApproved, BootOnce: &boot.BootOnce{Profile: "install", Then: "local"},
		LastStage: "script", LastEvent: at(3)}
}

func loadMachines(t *testing.T, s fleet.Store) map[string]fleet.Machine {
	t.Helper()
	ms, err := s.LoadMachines(bg)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fleet.Machine{}
	for _, m := range ms {
		out[m.MAC] = m
	}
	return out
}

func testMachinesRoundTrip(t *testing.T, open FleetOpener) {
	s, done := open(t)
	defer done()
	a, b := fleetMachine(1), fleetMachine(2)
	b.Labels, b.BootOnce, b.Profile, b.State, b.LastEvent, b.LastStage = nil, nil, "", boot.StatePending, time.Time{}, ""
	if err := s.SaveMachines(bg, []fleet.Machine{a, b}); err != nil {
		t.Fatal(err)
	}
	got := loadMachines(t, s)
	if len(got) != 2 || !reflect.DeepEqual(got[a.MAC], a) || !reflect.DeepEqual(got[b.MAC], b) {
		t.Fatalf("loaded %+v\nwant %+v and %+v", got, a, b)
	}
	// Replaced: an operator's change of every field it sets.
	a.State, a.Profile, a.Labels, a.BootOnce, a.LastSeen = boot.StateDenied, "", map[string]string{"rack": "r2", "role": "db"}, nil, at(5)
	if err := s.SaveMachines(bg, []fleet.Machine{a}); err != nil {
		t.Fatal(err)
	}
	if got := loadMachines(t, s); !reflect.DeepEqual(got[a.MAC], a) || !reflect.DeepEqual(got[b.MAC], b) {
		t.Fatalf("after replace %+v\nwant %+v", got[a.MAC], a)
	}
}

func testDeleteMachine(t *testing.T, open FleetOpener) {
	s, done := open(t)
	defer done()
	a, b := fleetMachine(1), fleetMachine(2)
	if err := s.SaveMachines(bg, []fleet.Machine{a, b}); err != nil {
		t.Fatal(err)
	}
	evs := []events.Event{{MAC: a.MAC, Time: at(4), Stage: events.StageScript}, {MAC: b.MAC, Time: at(5), Stage: events.StageKernel}}
	if err := s.AppendEvents(bg, evs, 8); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMachine(bg, a.MAC); err != nil {
		t.Fatal(err)
	}
	if got := loadMachines(t, s); len(got) != 1 || got[b.MAC].MAC == "" {
		t.Fatalf("after delete: %+v, want only %s", got, b.MAC)
	}
	left, err := s.LoadEvents(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].MAC != b.MAC {
		t.Fatalf("events after delete: %+v, want only %s's", left, b.MAC)
	}
}

func testProfiles(t *testing.T, open FleetOpener) {
	s, done := open(t)
	defer done()
	for _, p := range []fleet.Profile{{Name: "b", Kernel: "vmlinuz"}, {Name: "a", Kernel: "k1", Initrds: []string{"i1", "i2"}, Cmdline: "x={{.Hostname}}"}} {
		if err := s.SaveProfile(bg, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveProfile(bg, fleet.Profile{Name: "b", Script: "#!ipxe"}); err != nil {
		t.Fatal(err)
	}
	ps, err := s.LoadProfiles(bg)
	if err != nil {
		t.Fatal(err)
	}
	want := []fleet.Profile{{Name: "a", Kernel: "k1", Initrds: []string{"i1", "i2"}, Cmdline: "x={{.Hostname}}"}, {Name: "b", Script: "#!ipxe"}}
	if !reflect.DeepEqual(ps, want) {
		t.Fatalf("profiles %+v, want %+v", ps, want)
	}
	if err := s.DeleteProfile(bg, "a"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.LoadProfiles(bg); len(ps) != 1 || ps[0].Name != "b" {
		t.Fatalf("after delete: %+v", ps)
	}
}

// testEventsBounded: each machine keeps between keep and three times keep
// of its newest events, oldest first, whatever the batches.
func testEventsBounded(t *testing.T, open FleetOpener) {
	s, done := open(t)
	defer done()
	const keep = 5
	a, b := fleetMachine(1).MAC, fleetMachine(2).MAC
	for i := range 40 {
		evs := []events.Event{{MAC: a, Time: at(i), Stage: events.StageScript, Detail: fmt.Sprint(i), IP: netip.MustParseAddr("192.0.2.7"), Bytes: 9, Dur: time.Second}}
		if i < 3 {
			evs = append(evs, events.Event{MAC: b, Time: at(i), Stage: events.StageKernel, Detail: fmt.Sprint(i)})
		}
		if err := s.AppendEvents(bg, evs, keep); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.LoadEvents(bg)
	if err != nil {
		t.Fatal(err)
	}
	var ofA, ofB []events.Event
	for _, e := range evs {
		switch e.MAC {
		case a:
			ofA = append(ofA, e)
		case b:
			ofB = append(ofB, e)
		}
	}
	if len(ofA) < keep || len(ofA) > 3*keep {
		t.Fatalf("%d events kept, want %d to %d", len(ofA), keep, 3*keep)
	}
	for i, e := range ofA {
		want := 40 - len(ofA) + i
		if e.Detail != fmt.Sprint(want) || !e.Time.Equal(at(want)) {
			t.Fatalf("event %d: %+v, want detail %d (the newest, oldest first)", i, e, want)
		}
	}
	last := ofA[len(ofA)-1]
	if last.IP != netip.MustParseAddr("192.0.2.7") || last.Bytes != 9 || last.Dur != time.Second || last.Stage != events.StageScript {
		t.Errorf("event fields lost: %+v", last)
	}
	if len(ofB) != 3 {
		t.Errorf("the other machine kept %d events, want its 3", len(ofB))
	}
}

func fmac(i int) net.HardwareAddr { return net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)} }

func fleetBase() *boot.Config {
	return &boot.Config{BootFiles: map[string]string{"bios": "undionly.kpxe"}, Default: "def",
		Profiles: map[string]boot.Profile{"def": {Name: "def", Kernel: "/k"}}}
}

// testFleetPersistence: machines, runtime profiles and timelines written
// by a Fleet are there when it opens again, the timelines bounded.
func testFleetPersistence(t *testing.T, open FleetOpener) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, done := open(t)
	ev := &events.Log{}
	f := &fleet.Fleet{Catalog: &boot.Catalog{}, Store: st, Events: ev, BootDir: dir, KeepEvents: 5}
	if err := f.Open(bg, fleetBase()); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(bg)
	stopped := make(chan struct{})
	go func() { f.Run(rctx); close(stopped) }()
	m := boot.Machine{MAC: fmac(9), Firmware: boot.FirmwarePXE, Class: "efi-x64", HasArch: true, UUID: "67452301ab89efcd0123456789abcdef"}
	f.Observe(m, netip.MustParseAddr("192.0.2.50"), "node9", boot.Plan{})
	if _, err := f.PutProfile(fleet.Profile{Name: "rt", Kernel: "vmlinuz"}); err != nil {
		t.Fatal(err)
	}
	rt := "rt"
	if _, err := f.Patch(fmac(9).String(), &rt, map[string]string{"rack": "r1"}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		ev.Record(events.Event{MAC: fmac(9).String(), Stage: events.StageScript, Detail: fmt.Sprint(i)})
	}
	cancel()
	<-stopped // Run flushes what is left
	done()

	st2, done2 := open(t)
	defer done2()
	ev2 := &events.Log{}
	f2 := &fleet.Fleet{Catalog: &boot.Catalog{}, Store: st2, Events: ev2, BootDir: dir}
	if err := f2.Open(bg, fleetBase()); err != nil {
		t.Fatal(err)
	}
	got, err := f2.Get(fmac(9).String())
	if err != nil {
		t.Fatal(err)
	}
	if got.UUID != "01234567-89ab-cdef-0123-456789abcdef" || got.Address != "192.0.2.50" || got.Hostname != "node9" ||
		got.Labels["rack"] != "r1" || got.Profile != "rt" || got.EffectiveProfile != "rt" || got.Arch != "efi-x64" || got.LastStage != "script" {
		t.Errorf("after restart: %+v", got)
	}
	tl := ev2.Timeline(fmac(9).String())
	if len(tl) < 5 || len(tl) > 15 || tl[len(tl)-1].Detail != "19" {
		t.Errorf("timeline after restart: %d events (want the last 5 to 15), last %+v", len(tl), tl[len(tl)-1])
	}
}
