package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
)

func base() *boot.Config {
	return &boot.Config{BootFiles: map[string]string{"bios": "undionly.kpxe"}, Default: "def",
		Profiles: map[string]boot.Profile{"def": {Name: "def", Kernel: "/k"}, "install": {Name: "install", Kernel: "/i"}}}
}

func mac(i int) net.HardwareAddr {
	return net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
}

func ipxe(i int) boot.Machine {
	return boot.Machine{MAC: mac(i), Firmware: boot.FirmwareIPXE, Class: "bios", HasArch: true}
}

var srv = boot.Server{IP: netip.MustParseAddr("192.0.2.1"), HTTPPort: 8080}

func open(t *testing.T, f *fleet.Fleet, bc *boot.Config) *fleet.Fleet {
	t.Helper()
	if f.Catalog == nil {
		f.Catalog = &boot.Catalog{}
	}
	if err := f.Open(context.Background(), bc); err != nil {
		t.Fatal(err)
	}
	return f
}

// observe is what the DHCP loop does: decide, then note the machine.
func observe(f *fleet.Fleet, m boot.Machine) boot.Plan {
	p := f.Catalog.Snapshot().Decide(m, srv)
	f.Observe(m, netip.Addr{}, "", p)
	return p
}

// TestFloodStaysBounded: a flood of unknown MACs keeps the inventory at
// its cap by forgetting never-approved machines; approved and assigned
// machines stay and keep booting.
func TestFloodStaysBounded(t *testing.T) {
	f := open(t, &fleet.Fleet{Max: 100}, base())
	if _, err := f.Approve(mac(1).String()); err != nil {
		t.Fatal(err)
	}
	p := "install"
	if _, err := f.Patch(mac(2).String(), &p, nil); err != nil {
		t.Fatal(err)
	}
	for i := 1000; i < 11000; i++ {
		observe(f, ipxe(i))
	}
	st := f.Stats()
	if st.Machines != 100 || st.Evicted == 0 {
		t.Fatalf("after the flood: %+v, want 100 machines and evictions", st)
	}
	for i, want := range map[int]string{1: "def", 2: "install"} {
		if _, err := f.Get(mac(i).String()); err != nil {
			t.Errorf("machine %d forgotten by the flood: %v", i, err)
		}
		if pl := observe(f, ipxe(i)); pl.Action != boot.ServeScript || pl.Profile != want {
			t.Errorf("machine %d after the flood: %v %q, want script of %s", i, pl.Action, pl.Profile, want)
		}
	}
}

// TestIgnoreUnknownRecordsNothing: with unknown_machines ignore, unknown
// machines get no answer and no inventory row.
func TestIgnoreUnknownRecordsNothing(t *testing.T) {
	bc := base()
	bc.Unknown = boot.UnknownIgnore
	f := open(t, &fleet.Fleet{}, bc)
	if pl := observe(f, ipxe(5)); pl.Action != boot.Ignore {
		t.Fatalf("unknown machine answered: %v", pl.Action)
	}
	if st := f.Stats(); st.Machines != 0 || st.IgnoredUnknown != 1 {
		t.Fatalf("stats %+v, want no machine and one ignored", st)
	}
	if _, err := f.Approve(mac(5).String()); err != nil {
		t.Fatal(err)
	}
	if pl := observe(f, ipxe(5)); pl.Action != boot.ServeScript || pl.Profile != "def" {
		t.Fatalf("approved machine: %v %q", pl.Action, pl.Profile)
	}
}

// TestHoldApproveDeny: a held machine gets the waiting script, its
// approval its profile, a denial nothing.
func TestHoldApproveDeny(t *testing.T) {
	bc := base()
	bc.Unknown = boot.UnknownHold
	ev := &events.Log{}
	f := open(t, &fleet.Fleet{Events: ev}, bc)
	if pl := observe(f, ipxe(7)); pl.Profile != "(hold)" {
		t.Fatalf("held machine plan %q", pl.Profile)
	}
	m, _ := f.Get(mac(7).String())
	if m.State != boot.StatePending {
		t.Fatalf("state %q, want pending", m.State)
	}
	if _, err := f.Approve("52-54-00-00-00-07"); err != nil {
		t.Fatal(err)
	}
	if pl := observe(f, ipxe(7)); pl.Profile != "def" {
		t.Fatalf("approved machine plan %q", pl.Profile)
	}
	if _, err := f.Deny(mac(7).String()); err != nil {
		t.Fatal(err)
	}
	if pl := observe(f, boot.Machine{MAC: mac(7), Firmware: boot.FirmwarePXE, Class: "bios", HasArch: true}); pl.Action != boot.Ignore {
		t.Fatalf("denied machine answered: %v", pl.Action)
	}
	var stages []events.Stage
	for _, e := range ev.Timeline(mac(7).String()) {
		stages = append(stages, e.Stage)
	}
	want := fmt.Sprint([]events.Stage{events.StageMachineHeld, events.StageMachineApproved, events.StageMachineDenied})
	if fmt.Sprint(stages) != want {
		t.Errorf("timeline %v, want %v", stages, want)
	}
}

// TestBootOnceCheckin: boot-once, then check-in switches to then.
func TestBootOnceCheckin(t *testing.T) {
	f := open(t, &fleet.Fleet{}, base())
	observe(f, ipxe(3))
	for _, then := range []string{"local", "default", "install"} {
		if _, err := f.SetBootOnce(mac(3).String(), boot.BootOnce{Profile: "install", Then: then}); err != nil {
			t.Fatal(err)
		}
		if pl := observe(f, ipxe(3)); pl.Profile != "install" {
			t.Fatalf("boot-once plan %q", pl.Profile)
		}
		m, err := f.Checkin(mac(3).String())
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"local": "(local)", "default": "def", "install": "install"}[then]
		if m.BootOnce != nil || m.EffectiveProfile != want {
			t.Errorf("then %s: after check-in boot_once %v effective %q, want %q", then, m.BootOnce, m.EffectiveProfile, want)
		}
	}
	if _, err := f.SetBootOnce(mac(3).String(), boot.BootOnce{Profile: "nope"}); !errors.Is(err, fleet.ErrInvalid) {
		t.Errorf("boot-once of an unknown profile: %v", err)
	}
	if _, err := f.Checkin(mac(99).String()); !errors.Is(err, fleet.ErrNotFound) {
		t.Errorf("check-in of an unknown machine: %v", err)
	}
}

// TestRuntimeProfiles: a runtime profile overlays the file's; file names
// that leave the boot directory are refused.
func TestRuntimeProfiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"vmlinuz", "initrd.img"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	f := open(t, &fleet.Fleet{BootDir: dir}, base())
	for _, bad := range []fleet.Profile{
		{Name: "x", Kernel: "../etc/passwd"},
		{Name: "x", Kernel: "/etc/passwd"},
		{Name: "x", Kernel: "out"},
		{Name: "x", Kernel: "vmlinuz", Initrds: []string{"a/../../b"}},
		{Name: "../x", Kernel: "vmlinuz"},
		{Name: "local", Kernel: "vmlinuz"},
		{Name: "x", Kernel: "vmlinuz", Cmdline: "{{.Nope}}"},
		{Name: "x", Kernel: "missing"},
	} {
		if _, err := f.PutProfile(bad); !errors.Is(err, fleet.ErrInvalid) {
			t.Errorf("PutProfile(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := f.PutProfile(fleet.Profile{Name: "def", Kernel: "vmlinuz", Initrds: []string{"initrd.img"}, Cmdline: "h={{.Hostname}}"}); err != nil {
		t.Fatal(err)
	}
	p, ok := f.Catalog.Snapshot().ProfileFor(mac(1))
	if !ok || p.Kernel != filepath.Join(dir, "vmlinuz") {
		t.Fatalf("runtime profile not over the file's: %+v", p)
	}
	if err := f.DeleteProfile("install"); !errors.Is(err, fleet.ErrConflict) {
		t.Errorf("deleting the file's profile: %v", err)
	}
	if err := f.DeleteProfile("def"); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.Catalog.Snapshot().ProfileFor(mac(1)); p.Kernel != "/k" {
		t.Errorf("after delete: %+v, want the file's profile again", p)
	}
}

// TestSubscribe: new machines, operator changes and forgetting reach a
// subscriber; seeing a known machine again does not.
func TestSubscribe(t *testing.T) {
	f := open(t, &fleet.Fleet{}, base())
	ch, cancel := f.Subscribe(16)
	defer cancel()
	observe(f, ipxe(1))
	observe(f, ipxe(1))
	if _, err := f.Approve(mac(1).String()); err != nil {
		t.Fatal(err)
	}
	if err := f.Forget(mac(1).String()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		c := <-ch
		got = append(got, fmt.Sprintf("%s/%s/%v", c.Machine.MAC, c.Machine.State, c.Forgotten))
	}
	want := "[52:54:00:00:00:01/new/false 52:54:00:00:00:01/approved/false 52:54:00:00:00:01/approved/true]"
	if fmt.Sprint(got) != want {
		t.Errorf("changes %v, want %v", got, want)
	}
	select {
	case c := <-ch:
		t.Errorf("unexpected change %+v", c)
	default:
	}
}
