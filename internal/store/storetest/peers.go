package storetest

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"pxed/internal/peers"
)

// PeerStore is a peers.Store under test with a way to make a row's
// heartbeat older, so that liveness is tested without waiting.
type PeerStore struct {
	peers.Store
	// Age moves the heartbeat of id d into the past.
	Age func(t *testing.T, id string, d time.Duration)
}

// RunPeers checks a peers.Store: heartbeats create and refresh rows, and
// Alive keeps the rows younger than its bound.
func RunPeers(t *testing.T, open func(t *testing.T) PeerStore) {
	ctx := context.Background()
	ids := func(ps []peers.Peer) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	eq := func(a []string, b ...string) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	t.Run("Empty", func(t *testing.T) {
		s := open(t)
		if ps, err := s.Peers(ctx); err != nil || len(ps) != 0 {
			t.Fatalf("Peers of a new store = %v, %v; want none", ps, err)
		}
	})
	t.Run("HeartbeatCreatesAndRefreshes", func(t *testing.T) {
		s := open(t)
		for _, hb := range [][2]string{{"b", "192.0.2.2:8080"}, {"a", "192.0.2.1:8080"}, {"b", "[2001:db8::2]:8080"}} {
			if err := s.Heartbeat(ctx, hb[0], hb[1]); err != nil {
				t.Fatal(err)
			}
		}
		ps, err := s.Peers(ctx)
		if err != nil || !eq(ids(ps), "a", "b") {
			t.Fatalf("Peers = %v, %v; want a and b", ps, err)
		}
		if ps[1].Addr != "[2001:db8::2]:8080" {
			t.Errorf("b's address %q, want the one of its last heartbeat", ps[1].Addr)
		}
		for _, p := range ps {
			if p.Heartbeat.IsZero() || p.Age < 0 || p.Age > time.Minute {
				t.Errorf("peer %s: heartbeat %v, age %v", p.ID, p.Heartbeat, p.Age)
			}
		}
		s.Age(t, "a", time.Hour)
		before, _ := s.Peers(ctx)
		if err := s.Heartbeat(ctx, "a", "192.0.2.1:8080"); err != nil {
			t.Fatal(err)
		}
		after, _ := s.Peers(ctx)
		if !after[0].Heartbeat.After(before[0].Heartbeat) || after[0].Age >= time.Hour {
			t.Errorf("a heartbeat did not refresh the row: %+v then %+v", before[0], after[0])
		}
	})
	t.Run("Alive", func(t *testing.T) {
		s := open(t)
		for _, id := range []string{"a", "b", "c"} {
			if err := s.Heartbeat(ctx, id, ""); err != nil {
				t.Fatal(err)
			}
		}
		s.Age(t, "b", 30*time.Second)
		s.Age(t, "c", 10*time.Minute)
		cases := []struct {
			within time.Duration
			want   []string
		}{
			{time.Hour, []string{"a", "b", "c"}},
			{5 * time.Minute, []string{"a", "b"}},
			{10 * time.Second, []string{"a"}},
		}
		for _, c := range cases {
			ps, err := s.Alive(ctx, c.within)
			if err != nil || !eq(ids(ps), c.want...) {
				t.Errorf("Alive(%v) = %v, %v; want %v", c.within, ids(ps), err, c.want)
			}
		}
		if err := s.RemovePeer(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if ps, err := s.Alive(ctx, time.Hour); err != nil || !eq(ids(ps), "b", "c") {
			t.Errorf("after RemovePeer(a): Alive = %v, %v", ids(ps), err)
		}
	})
	t.Run("AnnounceKeepsTheWholeRow", func(t *testing.T) {
		s := open(t)
		want := peers.Peer{ID: "pxe-a", Addr: "192.0.2.1:8080", Config: "1a2b3c4d5e6f7a8b",
			ServerIDs: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")}}
		if err := s.Announce(ctx, want); err != nil {
			t.Fatal(err)
		}
		want.Config, want.ServerIDs = "ffff", want.ServerIDs[:1] // a restart with another configuration
		if err := s.Announce(ctx, want); err != nil {
			t.Fatal(err)
		}
		ps, err := s.Peers(ctx)
		if err != nil || len(ps) != 1 {
			t.Fatalf("Peers = %v, %v; want pxe-a", ps, err)
		}
		got := ps[0]
		if got.ID != want.ID || got.Addr != want.Addr || got.Config != want.Config || len(got.ServerIDs) != 1 ||
			got.ServerIDs[0] != want.ServerIDs[0] || got.Age < 0 || got.Age > time.Minute {
			t.Errorf("Peers after Announce = %+v, want %+v (as last announced) and a fresh heartbeat", got, want)
		}
		if err := s.Heartbeat(ctx, "pxe-a", "192.0.2.1:8080"); err != nil {
			t.Fatal(err)
		}
		if ps, _ := s.Peers(ctx); len(ps) != 1 || ps[0].Config != want.Config {
			t.Errorf("a plain Heartbeat lost the announced configuration: %+v", ps)
		}
	})
}
