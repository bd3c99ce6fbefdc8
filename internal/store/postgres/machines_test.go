package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"pxed/internal/boot"
	"pxed/internal/events"
	"pxed/internal/fleet"
	"pxed/internal/store/pgtest"
	"pxed/internal/store/storetest"
)

func openMachines(t *testing.T, dsn string) *Machines {
	t.Helper()
	s, err := OpenMachines(context.Background(), dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgresFleetConformance: the machines inventory on PostgreSQL.
func TestPostgresFleetConformance(t *testing.T) {
	storetest.RunFleet(t, func(t *testing.T) storetest.FleetOpener {
		dsn := pgtest.DB(t)
		return func(t *testing.T) (fleet.Store, func()) {
			s := openMachines(t, dsn)
			return s, func() { s.Close() }
		}
	})
}

// TestPeerChangesOutOfOrderCommits: a write whose transaction started
// before a poll but commits after it is still read by the next poll (a
// cursor on ids or times would skip it), and a peer's event is returned
// once, never the reader's own.
func TestPeerChangesOutOfOrderCommits(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DB(t)
	reader, writer := openMachines(t, dsn), openMachines(t, dsn)
	defer reader.Close()
	defer writer.Close()
	if _, err := reader.LoadMachines(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.LoadEvents(ctx); err != nil {
		t.Fatal(err)
	}
	slow, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close(ctx)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO machines (mac, state) VALUES ('52:54:00:00:00:01', 'approved')`); err != nil {
		t.Fatal(err)
	}
	quick := fleet.Machine{MAC: "52:54:00:00:00:02", State: boot.StateNew, LastSeen: time.Now()}
	if err := writer.SaveSeen(ctx, []fleet.Machine{quick}); err != nil {
		t.Fatal(err)
	}
	ev := events.Event{MAC: quick.MAC, Time: time.Now(), Stage: events.StageScript}
	if err := writer.AppendEvents(ctx, []events.Event{ev}, 8); err != nil {
		t.Fatal(err)
	}
	if err := reader.AppendEvents(ctx, []events.Event{{MAC: quick.MAC, Time: time.Now(), Stage: events.StageKernel}}, 8); err != nil {
		t.Fatal(err)
	}
	d, err := reader.PeerChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Machines) != 1 || d.Machines[0].MAC != quick.MAC || len(d.Events) != 1 || d.Events[0].Stage != events.StageScript {
		t.Fatalf("first poll: %+v, want the committed machine and the peer's one event", d)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	d, err = reader.PeerChanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var macs []string
	for _, m := range d.Machines {
		macs = append(macs, m.MAC)
	}
	if !slices.Contains(macs, "52:54:00:00:00:01") || len(d.Events) != 0 {
		t.Fatalf("second poll: machines %v, events %+v; want the late commit and no event again", macs, d.Events)
	}
	// Written again by a peer after being forgotten: the row, not the mark.
	if err := writer.DeleteMachine(ctx, quick.MAC); err != nil {
		t.Fatal(err)
	}
	if d, err = reader.PeerChanges(ctx); err != nil || !slices.Contains(d.Forgotten, quick.MAC) {
		t.Fatalf("after forget: %+v %v", d.Forgotten, err)
	}
	if err := writer.SaveSeen(ctx, []fleet.Machine{quick}); err != nil {
		t.Fatal(err)
	}
	if d, err = reader.PeerChanges(ctx); err != nil || slices.Contains(d.Forgotten, quick.MAC) {
		t.Fatalf("seen again after forget: still forgotten %+v %v", d.Forgotten, err)
	}
}

// TestSaveSeenKeepsOperatorFields: a server's sightings never undo what
// an operator set through another server; newer facts win.
func TestSaveSeenKeepsOperatorFields(t *testing.T) {
	ctx := context.Background()
	s := openMachines(t, pgtest.DB(t))
	defer s.Close()
	t0 := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	op := fleet.Machine{MAC: "52:54:00:00:00:03", State: boot.StateApproved, Profile: "install", Labels: map[string]string{"rack": "r1"},
		BootOnce: &boot.BootOnce{Profile: "install", Then: "local"}, FirstSeen: t0, LastSeen: t0, Hostname: "old"}
	if err := s.SaveMachines(ctx, []fleet.Machine{op}); err != nil {
		t.Fatal(err)
	}
	seen := fleet.Machine{MAC: op.MAC, State: boot.StateNew, FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(time.Minute), Hostname: "new",
		LastStage: "script", LastEvent: t0.Add(time.Minute)}
	if err := s.SaveSeen(ctx, []fleet.Machine{seen}); err != nil {
		t.Fatal(err)
	}
	// A stale sighting (older) changes nothing.
	stale := seen
	stale.LastSeen, stale.Hostname = t0.Add(time.Second), "stale"
	if err := s.SaveSeen(ctx, []fleet.Machine{stale}); err != nil {
		t.Fatal(err)
	}
	ms, err := s.LoadMachines(ctx)
	if err != nil || len(ms) != 1 {
		t.Fatal(ms, err)
	}
	got := ms[0]
	if got.State != boot.StateApproved || got.Profile != "install" || got.Labels["rack"] != "r1" || got.BootOnce == nil ||
		got.Hostname != "new" || !got.LastSeen.Equal(seen.LastSeen) || !got.FirstSeen.Equal(t0) || got.LastStage != "script" {
		t.Fatalf("after sightings: %+v", got)
	}
}

// BenchmarkFleetFlush measures one flush of a storm's second: 1,000
// machines seen (SaveSeen) and 5,000 events (AppendEvents), each one
// transaction and one round trip, and the poll a peer makes of them.
func BenchmarkFleetFlush(b *testing.B) {
	ctx := context.Background()
	dsn := pgtest.DB(b)
	s, err := OpenMachines(ctx, dsn, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	peer, err := OpenMachines(ctx, dsn, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	if _, err := peer.LoadEvents(ctx); err != nil {
		b.Fatal(err)
	}
	ms := make([]fleet.Machine, 1000)
	evs := make([]events.Event, 5000)
	var save, appendEv, poll time.Duration
	for i := 0; i < b.N; i++ {
		now := time.Now()
		for j := range ms {
			ms[j] = fleet.Machine{MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", i&0xff, j>>8, j&0xff), State: boot.StateNew, FirstSeen: now, LastSeen: now, Arch: "efi-x64"}
		}
		for j := range evs {
			evs[j] = events.Event{MAC: ms[j%len(ms)].MAC, Time: now, Stage: events.StageTFTPDone, Detail: "ipxe.efi", Bytes: 1 << 20}
		}
		t0 := time.Now()
		if err := s.SaveSeen(ctx, ms); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := s.AppendEvents(ctx, evs, fleet.DefaultKeepEvents); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		d, err := peer.PeerChanges(ctx)
		if err != nil || len(d.Events) != len(evs) {
			b.Fatalf("poll: %d events, %v", len(d.Events), err)
		}
		save, appendEv, poll = save+t1.Sub(t0), appendEv+t2.Sub(t1), poll+time.Since(t2)
	}
	b.ReportMetric(float64(save.Milliseconds())/float64(b.N), "ms/save-1000-machines")
	b.ReportMetric(float64(appendEv.Milliseconds())/float64(b.N), "ms/append-5000-events")
	b.ReportMetric(float64(poll.Milliseconds())/float64(b.N), "ms/peer-poll")
}
