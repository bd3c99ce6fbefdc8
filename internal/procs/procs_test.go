package procs

import (
	"context"
	"sync"
	"testing"
	"time"
)

func TestPolicyNext(t *testing.T) {
	p := Policy{Max: 4, Up: 0.5, Burst: 0.9, Down: 0.25, Calm: 3}
	for _, c := range []struct {
		name            string
		cur             int
		short, long     float64
		calm            int
		wantP, wantCalm int
	}{
		{"light load stays on one P", 1, 0.2, 0.2, 0, 1, 0},
		{"a burst under Burst on a light average stays", 1, 0.8, 0.3, 0, 1, 0},
		{"just under Up on average stays", 1, 0.49, 0.49, 0, 1, 0},
		{"half a core on average takes every P", 1, 0.5, 0.5, 0, 4, 0},
		{"one P saturated in one sample takes every P at once", 1, 0.95, 0.3, 0, 4, 0},
		{"busy on every P stays", 4, 1.6, 1.5, 0, 4, 0},
		{"between Down and Up on every P stays and resets the calm count", 4, 0.4, 0.4, 2, 4, 0},
		{"a calm sample counts", 4, 0.1, 0.3, 0, 4, 1},
		{"the last calm sample returns to one P", 4, 0.1, 0.1, 2, 1, 0},
	} {
		gotP, gotCalm := p.Next(c.cur, c.short, c.long, c.calm)
		if gotP != c.wantP || gotCalm != c.wantCalm {
			t.Errorf("%s: Next(%d, %v, %v, %d) = %d, %d; want %d, %d", c.name, c.cur, c.short, c.long, c.calm, gotP, gotCalm, c.wantP, c.wantCalm)
		}
	}
	// One CPU: nothing to choose.
	if n, _ := (Policy{Max: 1, Up: 0.5, Burst: 0.9, Down: 0.25, Calm: 3}).Next(1, 5, 5, 0); n != 1 {
		t.Errorf("Max 1: Next = %d, want 1", n)
	}
}

// TestGovernorFollowsLoad drives a Governor with a CPU clock the test
// advances: it starts on one P, takes every P when a sample shows one P
// nearly saturated, returns to one P after the calm samples, follows a
// CPU limit that changes (the runtime's default size), and gives the
// scheduler its default size back when it stops.
func TestGovernorFollowsLoad(t *testing.T) {
	var mu sync.Mutex
	var cpu time.Duration
	sets := make(chan int, 16)
	g := &Governor{Policy: Policy{Max: 2, Up: 0.5, Burst: 0.9, Down: 0.25, Calm: 2}, Interval: 5 * time.Millisecond}
	// Each sample sees the CPU the test made the process "use" since the
	// sample before: burn(x) makes the next samples see x cores at most.
	var rate float64
	var last time.Time
	g.cpu = func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if !last.IsZero() {
			cpu += time.Duration(rate * float64(now.Sub(last)))
		}
		last = now
		return cpu
	}
	var procs, def int // the scheduler's size and its default (the CPU limit)
	def = 2
	g.one = func() { mu.Lock(); procs = 1; mu.Unlock(); sets <- 1 }
	g.all = func() { mu.Lock(); procs = def; mu.Unlock(); sets <- def }
	g.current = func() int { mu.Lock(); defer mu.Unlock(); return procs }
	limit := func(n int) { // the CPU limit changes: the runtime follows it at its default size
		mu.Lock()
		defer mu.Unlock()
		def = n
		if procs > 1 {
			procs = n
		}
	}
	burn := func(cores float64) {
		mu.Lock()
		rate = cores
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	want := func(n int) {
		t.Helper()
		select {
		case got := <-sets:
			if got != n {
				t.Fatalf("GOMAXPROCS set to %d, want %d", got, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("GOMAXPROCS never set to %d", n)
		}
		waitProcs(t, g, n) // Procs says so once the Governor has recorded it
	}
	want(1) // starts on one P
	burn(0.95)
	want(2)
	burn(0.05)
	want(1)
	// A CPU limit raised while on one P: the next load gets every CPU.
	limit(3)
	burn(0.95)
	want(3)
	// Lowered under load: the runtime follows it, and so does Procs.
	limit(2)
	waitProcs(t, g, 2)
	burn(0.05)
	want(1)
	cancel()
	want(2) // stopped: the default size back
	<-done
}

// waitProcs waits until g.Procs() is n.
func waitProcs(t *testing.T, g *Governor, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.Procs() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Procs() = %d, want %d", g.Procs(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
