package fleet

import (
	"context"
	"time"

	"pxed/internal/events"
)

func ctxBG() context.Context { return context.Background() }

// Run writes the inventory's changes and the machines' events to the
// store in batches (at most FlushInterval after they happen) and keeps
// each machine's last stage, until ctx ends; then it writes what is left.
func (f *Fleet) Run(ctx context.Context) {
	evc := f.evc // subscribed by Open: no event between Open and Run is missed
	if f.unsub != nil {
		defer f.unsub()
	}
	every := f.FlushInterval
	if every <= 0 {
		every = 500 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var syncC <-chan time.Time
	ss, shared := f.Store.(SharedStore)
	if shared {
		si := f.SyncInterval
		if si <= 0 {
			si = DefaultSyncInterval
		}
		st := time.NewTicker(si)
		defer st.Stop()
		syncC = st.C
	}
	for {
		select {
		case <-ctx.Done():
			if f.Events != nil {
				f.Events.Deliver() // the events recorded so far, not yet sent (events.FollowDelay)
			}
			f.drain(evc)
			f.Flush(context.Background())
			return
		case e := <-evc:
			f.noteEvent(e)
		case <-t.C:
			f.Flush(ctx)
		case <-f.kick:
			f.Flush(ctx)
		case <-syncC:
			// Flushed first: what this server changed is written before
			// the rows read back can be compared with it.
			f.Flush(ctx)
			f.sync(ctx, ss)
		}
	}
}

func (f *Fleet) drain(evc <-chan events.Event) {
	for {
		select {
		case e := <-evc:
			f.noteEvent(e)
		default:
			return
		}
	}
}

// noteEvent keeps e as its machine's last stage and queues it for the
// store, for machines of the inventory only (a flood of unknown MACs
// writes nothing).
func (f *Fleet) noteEvent(e events.Event) {
	if e.MAC == "" {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.machines[e.MAC]
	if m == nil {
		return
	}
	m.LastStage, m.LastEvent = string(e.Stage), e.Time
	f.dirty[e.MAC] = true
	if f.Store != nil && len(f.pendEv) < 65536 {
		f.pendEv = append(f.pendEv, e)
	}
}

// Flush writes the changes made since the last flush.
func (f *Fleet) Flush(ctx context.Context) {
	f.mu.Lock()
	if len(f.dirty) == 0 && len(f.deleted) == 0 && len(f.pendEv) == 0 && len(f.opDirty) == 0 {
		f.mu.Unlock()
		return
	}
	ss, shared := f.Store.(SharedStore)
	var ms, seen []Machine // seen: only the facts changed (SharedStore)
	for mac := range f.dirty {
		if m := f.machines[mac]; m != nil {
			c := *m
			c.elem = nil
			if shared && !f.opDirty[mac] {
				seen = append(seen, c)
			} else {
				ms = append(ms, c)
			}
		}
	}
	var del []string
	for mac := range f.deleted {
		del = append(del, mac)
	}
	evs := f.pendEv
	f.dirty, f.deleted, f.opDirty, f.pendEv = map[string]bool{}, map[string]bool{}, map[string]bool{}, nil
	f.mu.Unlock()
	if f.Store == nil {
		return
	}
	keep := f.KeepEvents
	if keep <= 0 {
		keep = DefaultKeepEvents
	}
	if len(ms) > 0 {
		if err := f.Store.SaveMachines(ctx, ms); err != nil {
			f.log().Error("inventory: saving machines failed; retrying at the next flush", "machines", len(ms), "err", err)
			f.mu.Lock()
			for _, m := range ms {
				f.dirty[m.MAC] = true
				if shared {
					f.opDirty[m.MAC] = true
				}
			}
			f.mu.Unlock()
		}
	}
	if len(seen) > 0 {
		if err := ss.SaveSeen(ctx, seen); err != nil {
			f.log().Error("inventory: saving machines failed; retrying at the next flush", "machines", len(seen), "err", err)
			f.mu.Lock()
			for _, m := range seen {
				f.dirty[m.MAC] = true
			}
			f.mu.Unlock()
		}
	}
	for _, mac := range del {
		if err := f.Store.DeleteMachine(ctx, mac); err != nil {
			f.log().Error("inventory: forgetting a machine failed", "mac", mac, "err", err)
		}
	}
	if len(evs) > 0 {
		if err := f.Store.AppendEvents(ctx, evs, keep); err != nil {
			f.log().Error("inventory: saving timelines failed", "events", len(evs), "err", err)
		}
	}
}
