package fleet

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"time"

	"pxed/internal/events"
)

// DefaultSyncInterval is Fleet.SyncInterval when 0: how often a fleet on
// a shared store asks it for its peers' changes.
const DefaultSyncInterval = time.Second

// SharedStore is a Store several pxed servers write at once (PostgreSQL).
// Each server's fleet polls it for what the others changed, so that a
// machine approved or assigned a profile through one server boots so
// from all, and every server's timeline shows the events every server saw.
type SharedStore interface {
	Store
	// SaveSeen writes what a server learned from machines' requests (the
	// facts, last seen, last stage): a new machine's row is inserted
	// whole, an existing row keeps its operator's fields (state,
	// profile, labels, boot-once), which another server may have changed.
	SaveSeen(ctx context.Context, ms []Machine) error
	// PeerChanges returns what was written since the previous call (the
	// first: since LoadMachines and LoadEvents): machines changed and
	// forgotten, the runtime profiles (all of them), and the events other
	// servers appended. A row may come back more than once; events never.
	PeerChanges(ctx context.Context) (Delta, error)
}

// Delta is what PeerChanges returns.
type Delta struct {
	Machines  []Machine
	Forgotten []string
	Profiles  []Profile // every runtime profile
	Events    []events.Event
}

// operator reports whether a and b differ in the fields an operator sets.
func operatorDiffers(a, b *Machine) bool {
	return a.State != b.State || a.Profile != b.Profile || !maps.Equal(a.Labels, b.Labels) || !reflect.DeepEqual(a.BootOnce, b.BootOnce)
}

// sync asks a shared store for its peers' changes and applies them to
// memory: operator fields of machines this server has not changed since
// its last flush, newer facts, forgotten machines, the runtime profiles,
// and the peers' events on the timelines (by time). Run calls it between
// flushes, so a row read here is never older than this server's own
// flushed write of it.
func (f *Fleet) sync(ctx context.Context, ss SharedStore) {
	f.mu.RLock()
	gen := f.profGen
	f.mu.RUnlock()
	d, err := ss.PeerChanges(ctx)
	if err != nil {
		if ctx.Err() == nil {
			if ok, n := f.warn.Allow("sync"); ok {
				f.log().Error("inventory: reading the other servers' changes failed; retrying", "err", err, "others_not_logged", n)
			}
		}
		return
	}
	var changes []Change
	rebuild := false
	f.mu.Lock()
	for i := range d.Machines {
		r := d.Machines[i]
		m := f.machines[r.MAC]
		if m == nil {
			if f.deleted[r.MAC] {
				continue // forgotten here, not yet written
			}
			if len(f.machines) >= f.max() {
				continue // full: the row stays in the database
			}
			nm := r
			nm.elem = nil
			f.machines[r.MAC] = &nm
			f.track(&nm)
			rebuild = true
			c := nm
			c.elem = nil
			changes = append(changes, Change{Machine: c})
			continue
		}
		changed := false
		if !f.opDirty[r.MAC] && operatorDiffers(m, &r) {
			m.State, m.Profile, m.Labels, m.BootOnce = r.State, r.Profile, r.Labels, r.BootOnce
			changed, rebuild = true, true
		}
		if r.LastSeen.After(m.LastSeen) {
			m.LastSeen = r.LastSeen
			if r.UUID != "" {
				m.UUID = r.UUID
			}
			if r.Arch != "" {
				m.Arch = r.Arch
			}
			if r.Firmware != "" {
				m.Firmware = r.Firmware
			}
			if r.Address != "" {
				m.Address = r.Address
			}
			if r.Hostname != "" {
				m.Hostname = r.Hostname
			}
		}
		if r.LastEvent.After(m.LastEvent) {
			m.LastEvent, m.LastStage = r.LastEvent, r.LastStage
		}
		if !r.FirstSeen.IsZero() && (m.FirstSeen.IsZero() || r.FirstSeen.Before(m.FirstSeen)) {
			m.FirstSeen = r.FirstSeen
		}
		f.track(m)
		if changed {
			c := *m
			c.elem = nil
			changes = append(changes, Change{Machine: c})
		}
	}
	for _, mac := range d.Forgotten {
		m := f.machines[mac]
		if m == nil || f.opDirty[mac] {
			continue
		}
		if m.elem != nil {
			f.evictable.Remove(m.elem)
		}
		delete(f.machines, mac)
		delete(f.dirty, mac)
		rebuild = true
		gone := *m
		gone.elem = nil
		changes = append(changes, Change{Machine: gone, Forgotten: true})
	}
	if gen == f.profGen {
		ps := make(map[string]Profile, len(d.Profiles))
		for _, p := range d.Profiles {
			ps[p.Name] = p
		}
		if !sameProfiles(ps, f.profiles) {
			f.profiles = ps
			rebuild = true
		}
	}
	if rebuild {
		f.rebuildLocked()
	}
	f.mu.Unlock()
	if f.Events != nil && len(d.Events) > 0 {
		f.Events.Merge(d.Events)
	}
	snap := f.Catalog.Snapshot()
	for _, c := range changes {
		if !c.Forgotten {
			c.Machine.EffectiveProfile = effective(snap, c.Machine.MAC)
		}
		f.publish(c)
	}
}

// sameProfiles compares two sets of runtime profiles as stored (JSON: an
// empty list and none are one).
func sameProfiles(a, b map[string]Profile) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
