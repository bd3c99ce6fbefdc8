// Package fleet is pxed's machines inventory and runtime profiles: every
// machine seen (its facts, labels, profile, approval state, boot-once),
// the profiles added through the API on top of the configuration file's,
// and the catalog snapshot the boot decision reads, rebuilt whenever one
// of them changes. The DHCP path only touches memory (Observe); a
// background loop writes what changed to the Store in batches and, on a
// SharedStore (several servers on one PostgreSQL), reads what the other
// servers changed (shared.go).
package fleet

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/lograte"
)

// Error kinds; the API maps them to HTTP statuses in one place.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid")
	ErrConflict = errors.New("conflict")
)

// DefaultMax is Fleet.Max when 0: machines kept in the inventory.
const DefaultMax = 20000

// DefaultKeepEvents is Fleet.KeepEvents when 0: events of each machine's
// timeline kept in the store across restarts.
const DefaultKeepEvents = 64

// Machine is one machine of the inventory, as the API shows it.
type Machine struct {
	MAC              string            `json:"mac"`
	UUID             string            `json:"uuid"` // canonical form
	Arch             string            `json:"arch"` // architecture class: bios, efi-x64, …
	Firmware         string            `json:"firmware"`
	FirstSeen        time.Time         `json:"first_seen"`
	LastSeen         time.Time         `json:"last_seen"`
	Address          string            `json:"address"`
	Hostname         string            `json:"hostname"`
	Labels           map[string]string `json:"labels"`
	Profile          string            `json:"profile"`           // assigned at run time; "" none
	EffectiveProfile string            `json:"effective_profile"` // what it boots now
	State            boot.State        `json:"state"`
	BootOnce         *boot.BootOnce    `json:"boot_once"`
	LastStage        string            `json:"last_stage"`
	LastEvent        time.Time         `json:"last_event,omitzero"`

	elem *list.Element // in Fleet.evictable while never approved and unassigned
}

// Store keeps the inventory, the runtime profiles and the machines' last
// events (one implementation per backend under internal/store).
type Store interface {
	LoadMachines(ctx context.Context) ([]Machine, error)
	SaveMachines(ctx context.Context, ms []Machine) error // insert or replace
	DeleteMachine(ctx context.Context, mac string) error
	LoadProfiles(ctx context.Context) ([]Profile, error)
	SaveProfile(ctx context.Context, p Profile) error
	DeleteProfile(ctx context.Context, name string) error
	// AppendEvents adds events and keeps the newest keep of each machine.
	AppendEvents(ctx context.Context, evs []events.Event, keep int) error
	LoadEvents(ctx context.Context) ([]events.Event, error) // oldest first
}

// Fleet is the inventory and the runtime profiles. Set the fields, call
// Open, then Run.
type Fleet struct {
	Catalog *boot.Catalog // where the decision's snapshots go
	Events  *events.Log   // fleet events; subscribed for timelines; nil: none
	Store   Store         // nil keeps everything in memory
	Max     int           // machines kept; 0 means DefaultMax
	// KeepEvents is the events of each machine kept in the store.
	KeepEvents int
	BootDir    string // runtime profiles name their files inside it
	Logger     *slog.Logger
	// FlushInterval is the most time a change waits before it is
	// written; 0 means 500 ms.
	FlushInterval time.Duration
	// SyncInterval is how often a fleet on a SharedStore reads the other
	// servers' changes; 0 means DefaultSyncInterval.
	SyncInterval time.Duration
	Now          func() time.Time

	mu        sync.RWMutex
	base      *boot.Config
	profiles  map[string]Profile
	machines  map[string]*Machine
	evictable list.List // of *Machine, least recently seen first
	dirty     map[string]bool
	opDirty   map[string]bool // changed by an operator here since the last flush
	profGen   uint64          // runtime profile changes made here
	deleted   map[string]bool
	pendEv    []events.Event
	kick      chan struct{}
	evc       <-chan events.Event
	unsub     func()

	evicted, dropped, ignoredUnknown atomic.Uint64
	warn                             lograte.Limiter // unknown machines ignored: one line per interval

	subMu   sync.Mutex
	subs    map[int]chan Change
	nextSub int
}

// Stats are the inventory's counters.
type Stats struct {
	Machines       int
	Evicted        uint64 // never-approved machines forgotten to stay within Max
	Dropped        uint64 // new machines not recorded: full of approved ones
	IgnoredUnknown uint64 // requests of unknown machines not answered (unknown_machines: ignore)
}

// Stats returns the counters.
func (f *Fleet) Stats() Stats {
	f.mu.RLock()
	n := len(f.machines)
	f.mu.RUnlock()
	return Stats{Machines: n, Evicted: f.evicted.Load(), Dropped: f.dropped.Load(), IgnoredUnknown: f.ignoredUnknown.Load()}
}

func (f *Fleet) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Fleet) log() *slog.Logger {
	if f.Logger != nil {
		return f.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (f *Fleet) max() int {
	if f.Max > 0 {
		return f.Max
	}
	return DefaultMax
}

// Open loads the inventory, the runtime profiles and the kept timelines
// from the store and stores the first snapshot built over base.
func (f *Fleet) Open(ctx context.Context, base *boot.Config) error {
	f.mu.Lock()
	f.base = base
	f.profiles = map[string]Profile{}
	f.machines = map[string]*Machine{}
	f.dirty, f.deleted, f.opDirty = map[string]bool{}, map[string]bool{}, map[string]bool{}
	f.kick = make(chan struct{}, 1)
	f.mu.Unlock()
	if f.Events != nil && f.evc == nil {
		f.evc, f.unsub = f.Events.Subscribe(8192)
	}
	if f.Store != nil {
		ms, err := f.Store.LoadMachines(ctx)
		if err != nil {
			return fmt.Errorf("fleet: load machines: %w", err)
		}
		ps, err := f.Store.LoadProfiles(ctx)
		if err != nil {
			return fmt.Errorf("fleet: load profiles: %w", err)
		}
		f.mu.Lock()
		for i := range ms {
			m := ms[i]
			f.machines[m.MAC] = &m
			f.track(&m)
		}
		for _, p := range ps {
			f.profiles[p.Name] = p
		}
		f.mu.Unlock()
		if f.Events != nil {
			evs, err := f.Store.LoadEvents(ctx)
			if err != nil {
				return fmt.Errorf("fleet: load timelines: %w", err)
			}
			f.Events.Restore(evs)
		}
	}
	f.mu.Lock()
	f.rebuildLocked()
	f.mu.Unlock()
	return nil
}

// SetBase replaces the configuration file's part of the catalog (a reload).
func (f *Fleet) SetBase(base *boot.Config) {
	f.mu.Lock()
	f.base = base
	f.rebuildLocked()
	f.mu.Unlock()
}

// rebuildLocked stores a new snapshot: the file's configuration with the
// runtime profiles over its own and this inventory as its Fleet.
func (f *Fleet) rebuildLocked() {
	c := *f.base
	c.Profiles = make(map[string]boot.Profile, len(f.base.Profiles)+len(f.profiles))
	for k, v := range f.base.Profiles {
		c.Profiles[k] = v
	}
	for k, v := range f.profiles {
		c.Profiles[k] = v.boot(f.BootDir)
	}
	c.Fleet = f
	f.Catalog.Store(&c)
}

// track keeps m in the eviction list while it is evictable: never
// approved, no profile, no labels, no boot-once.
func (f *Fleet) track(m *Machine) {
	ev := m.State != boot.StateApproved && m.State != boot.StateDenied && m.Profile == "" && len(m.Labels) == 0 && m.BootOnce == nil
	switch {
	case ev && m.elem == nil:
		m.elem = f.evictable.PushBack(m)
	case ev:
		f.evictable.MoveToBack(m.elem)
	case m.elem != nil:
		f.evictable.Remove(m.elem)
		m.elem = nil
	}
}

// Lookup implements boot.Fleet.
func (f *Fleet) Lookup(mac string) (boot.Entry, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m := f.machines[mac]
	if m == nil {
		return boot.Entry{}, false
	}
	// Labels and BootOnce are replaced, never changed in place: sharing
	// them is safe.
	return boot.Entry{Profile: m.Profile, Labels: m.Labels, State: m.State, BootOnce: m.BootOnce,
		Class: m.Arch, UUID: m.UUID, IP: m.Address, Hostname: m.Hostname}, true
}

// Observe records a machine's DHCP request in memory: its facts and when
// it was seen. A new machine joins the inventory (evicting the machine
// never approved and seen least recently when full) with state new, or
// pending when unknown machines are held. Cheap: the DHCP loop calls it
// for every boot request.
func (f *Fleet) Observe(bm boot.Machine, ip netip.Addr, hostname string, plan boot.Plan) {
	if len(bm.MAC) == 0 {
		return
	}
	key := boot.Normalize(bm.MAC)
	now := f.now()
	var ev *events.Event
	f.mu.Lock()
	if f.machines == nil {
		f.mu.Unlock()
		return // not opened
	}
	m := f.machines[key]
	if m == nil {
		if plan.Dropped {
			// Unknown and not answered: not worth a row (a flood of
			// random MACs must not fill the inventory).
			f.mu.Unlock()
			f.ignoreUnknown(key)
			return
		}
		if len(f.machines) >= f.max() {
			old := f.evictable.Front()
			if old == nil {
				f.mu.Unlock()
				f.dropped.Add(1)
				return
			}
			om := old.Value.(*Machine)
			f.evictable.Remove(old)
			delete(f.machines, om.MAC)
			delete(f.dirty, om.MAC)
			f.deleted[om.MAC] = true
			f.evicted.Add(1)
		}
		m = &Machine{MAC: key, FirstSeen: now, State: boot.StateNew, Labels: nil}
		stage, detail := events.StageMachineNew, "first seen"
		if f.base.Unknown == boot.UnknownHold {
			m.State = boot.StatePending
			stage, detail = events.StageMachineHeld, "unknown machine held: waiting for approval (pxed machines approve "+key+")"
		}
		f.machines[key] = m
		delete(f.deleted, key)
		ev = &events.Event{MAC: key, Stage: stage, Detail: detail}
	} else if plan.Dropped {
		defer f.ignoreUnknown(key)
	}
	if bm.UUID != "" {
		m.UUID = boot.CanonicalUUID(bm.UUID)
	}
	if bm.Class != "" {
		m.Arch = bm.Class
	}
	if bm.Firmware != boot.FirmwareUnknown {
		m.Firmware = bm.Firmware.String()
	}
	if ip.IsValid() && !ip.IsUnspecified() {
		m.Address = ip.Unmap().String()
	}
	if hostname != "" {
		m.Hostname = hostname
	}
	m.LastSeen = now
	f.track(m)
	f.dirty[key] = true
	var added Machine
	if ev != nil {
		added = *m
		added.elem = nil
	}
	f.mu.Unlock()
	if ev != nil {
		f.publish(Change{Machine: added})
		if f.Events != nil {
			f.Events.Record(*ev)
		}
	}
}

// ignoreUnknown counts an unknown machine not answered and logs it at most
// once per interval, with how many were not logged.
func (f *Fleet) ignoreUnknown(mac string) {
	f.ignoredUnknown.Add(1)
	if ok, n := f.warn.Allow("unknown-ignored"); ok {
		f.log().Info("unknown machine not answered (unknown_machines: ignore; approve it to boot it)", "mac", mac, "others_not_logged", n)
	}
}

// Filter selects machines for List.
type Filter struct {
	State      boot.State // "" any
	LabelKey   string     // "" any
	LabelValue string
}

// List returns the machines that match, sorted by MAC, each with its
// effective profile.
func (f *Fleet) List(flt Filter) []Machine {
	snap := f.Catalog.Snapshot()
	f.mu.RLock()
	sel := make([]*Machine, 0, len(f.machines))
	for _, m := range f.machines {
		if flt.State != "" && m.State != flt.State {
			continue
		}
		if flt.LabelKey != "" {
			if v, ok := m.Labels[flt.LabelKey]; !ok || v != flt.LabelValue {
				continue
			}
		}
		sel = append(sel, m)
	}
	out := make([]Machine, len(sel))
	for i, m := range sel {
		out[i] = *m
		out[i].elem = nil
	}
	f.mu.RUnlock()
	// Sorted outside the lock: the DHCP path's Observe waits for none of it.
	slices.SortFunc(out, func(a, b Machine) int { return strings.Compare(a.MAC, b.MAC) })
	// The effective profiles are decided over these copies (listed, a
	// boot.Fleet of them), not through Lookup: thousands of read locks
	// taken one by one would each wait behind a storm's writers.
	if snap != nil {
		own := *snap
		idx := make(listed, len(out))
		for i := range out {
			idx[out[i].MAC] = &out[i]
		}
		own.Fleet = idx
		snap = &own
	}
	for i := range out {
		out[i].EffectiveProfile = effective(snap, out[i].MAC)
	}
	return out
}

// listed is a boot.Fleet over copies of the machines, by MAC.
type listed map[string]*Machine

// Lookup implements boot.Fleet as Fleet.Lookup does, over the copies.
func (l listed) Lookup(mac string) (boot.Entry, bool) {
	m := l[mac]
	if m == nil {
		return boot.Entry{}, false
	}
	return boot.Entry{Profile: m.Profile, Labels: m.Labels, State: m.State, BootOnce: m.BootOnce,
		Class: m.Arch, UUID: m.UUID, IP: m.Address, Hostname: m.Hostname}, true
}

func effective(snap *boot.Config, mac string) string {
	hw, err := ParseMAC(mac)
	if err != nil || snap == nil {
		return ""
	}
	if p, ok := snap.ProfileFor(hw); ok {
		return p.Name
	}
	return ""
}

// Get returns one machine.
func (f *Fleet) Get(mac string) (Machine, error) {
	key, err := Key(mac)
	if err != nil {
		return Machine{}, err
	}
	f.mu.RLock()
	m := f.machines[key]
	var c Machine
	if m != nil {
		c = *m
		c.elem = nil
	}
	f.mu.RUnlock()
	if m == nil {
		return Machine{}, fmt.Errorf("machine %s: %w", key, ErrNotFound)
	}
	c.EffectiveProfile = effective(f.Catalog.Snapshot(), key)
	return c, nil
}

// update changes one machine (created, state new, when unknown: an
// operator may set up a machine before it first boots), rebuilds the
// snapshot and records ev when set.
func (f *Fleet) update(mac string, change func(m *Machine) (*events.Event, error)) (Machine, error) {
	key, err := Key(mac)
	if err != nil {
		return Machine{}, err
	}
	f.mu.Lock()
	m := f.machines[key]
	created := false
	if m == nil {
		if len(f.machines) >= f.max() && f.evictable.Len() == 0 {
			f.mu.Unlock()
			return Machine{}, fmt.Errorf("inventory full (%d machines, none evictable): %w", f.max(), ErrConflict)
		}
		m = &Machine{MAC: key, FirstSeen: f.now(), State: boot.StateNew}
		created = true
	}
	ev, err := change(m)
	if err != nil {
		f.mu.Unlock()
		return Machine{}, err
	}
	if created {
		if len(f.machines) >= f.max() {
			old := f.evictable.Front().Value.(*Machine)
			f.evictable.Remove(old.elem)
			delete(f.machines, old.MAC)
			f.deleted[old.MAC] = true
			f.evicted.Add(1)
		}
		f.machines[key] = m
		delete(f.deleted, key)
	}
	f.track(m)
	f.dirty[key] = true
	f.opDirty[key] = true
	f.rebuildLocked() // the snapshot's Fleet is f itself; a new snapshot marks the change
	c := *m
	c.elem = nil
	f.mu.Unlock()
	f.wake()
	if ev != nil && f.Events != nil {
		ev.MAC = key
		f.Events.Record(*ev)
	}
	c.EffectiveProfile = effective(f.Catalog.Snapshot(), key)
	f.publish(Change{Machine: c})
	return c, nil
}

// profileExistsLocked reports whether name is a profile of the snapshot or
// the local pseudo-profile.
func (f *Fleet) profileExistsLocked(name string) bool {
	if name == boot.LocalProfile {
		return true
	}
	if _, ok := f.profiles[name]; ok {
		return true
	}
	_, ok := f.base.Profiles[name]
	return ok
}

// Patch sets a machine's profile (nil leaves it, "" removes it) and, when
// labels is not nil, replaces its labels.
func (f *Fleet) Patch(mac string, profile *string, labels map[string]string) (Machine, error) {
	for k, v := range labels {
		if k == "" || len(k) > 63 || len(v) > 253 || strings.ContainsAny(k, "= \t\r\n") {
			return Machine{}, fmt.Errorf("label %q: keys are 1–63 characters without '=' or spaces, values at most 253: %w", k, ErrInvalid)
		}
	}
	if len(labels) > 64 {
		return Machine{}, fmt.Errorf("%d labels: at most 64: %w", len(labels), ErrInvalid)
	}
	return f.update(mac, func(m *Machine) (*events.Event, error) {
		if profile != nil {
			if *profile != "" && !f.profileExistsLocked(*profile) {
				return nil, fmt.Errorf("profile %q does not exist (pxed profiles list): %w", *profile, ErrInvalid)
			}
			m.Profile = *profile
		}
		if labels != nil {
			m.Labels = copyLabels(labels)
		}
		return nil, nil
	})
}

func copyLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// Approve lets a machine boot.
func (f *Fleet) Approve(mac string) (Machine, error) {
	return f.update(mac, func(m *Machine) (*events.Event, error) {
		m.State = boot.StateApproved
		return &events.Event{Stage: events.StageMachineApproved, Detail: "approved"}, nil
	})
}

// Deny keeps a machine from booting.
func (f *Fleet) Deny(mac string) (Machine, error) {
	return f.update(mac, func(m *Machine) (*events.Event, error) {
		m.State = boot.StateDenied
		return &events.Event{Stage: events.StageMachineDenied, Detail: "denied"}, nil
	})
}

// SetBootOnce makes the machine boot b.Profile until it checks in, then
// b.Then (ThenDefault when "").
func (f *Fleet) SetBootOnce(mac string, b boot.BootOnce) (Machine, error) {
	if b.Then == "" {
		b.Then = boot.ThenDefault
	}
	return f.update(mac, func(m *Machine) (*events.Event, error) {
		if b.Profile == "" || !f.profileExistsLocked(b.Profile) {
			return nil, fmt.Errorf("boot-once profile %q does not exist (pxed profiles list): %w", b.Profile, ErrInvalid)
		}
		if b.Then != boot.ThenDefault && !f.profileExistsLocked(b.Then) {
			return nil, fmt.Errorf("then %q: write default, local or a profile name: %w", b.Then, ErrInvalid)
		}
		m.BootOnce = &b
		return &events.Event{Stage: events.StageBootOnce, Detail: "next boot: " + b.Profile + ", then " + b.Then}, nil
	})
}

// Checkin marks the machine's install done: a boot-once ends and the
// machine switches to its Then.
func (f *Fleet) Checkin(mac string) (Machine, error) {
	key, err := Key(mac)
	if err != nil {
		return Machine{}, err
	}
	f.mu.RLock()
	_, known := f.machines[key]
	f.mu.RUnlock()
	if !known {
		return Machine{}, fmt.Errorf("machine %s: %w", key, ErrNotFound)
	}
	return f.update(mac, func(m *Machine) (*events.Event, error) {
		b := m.BootOnce
		if b == nil {
			return &events.Event{Stage: events.StageCheckin, Detail: "checked in (no boot-once: nothing changes)"}, nil
		}
		m.BootOnce = nil
		switch b.Then {
		case boot.ThenDefault:
			m.Profile = ""
		default:
			m.Profile = b.Then
		}
		return &events.Event{Stage: events.StageCheckin, Detail: "install done (" + b.Profile + "): now " + b.Then}, nil
	})
}

// Forget removes a machine from the inventory.
func (f *Fleet) Forget(mac string) error {
	key, err := Key(mac)
	if err != nil {
		return err
	}
	f.mu.Lock()
	m := f.machines[key]
	if m == nil {
		f.mu.Unlock()
		return fmt.Errorf("machine %s: %w", key, ErrNotFound)
	}
	if m.elem != nil {
		f.evictable.Remove(m.elem)
	}
	delete(f.machines, key)
	delete(f.dirty, key)
	delete(f.opDirty, key)
	f.deleted[key] = true
	f.rebuildLocked()
	gone := *m
	gone.elem = nil
	f.mu.Unlock()
	f.wake()
	f.publish(Change{Machine: gone, Forgotten: true})
	return nil
}

func (f *Fleet) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}
