// Package procs sizes the Go scheduler to pxed's load: one P (GOMAXPROCS
// 1) while the server uses less than half of one core, all of them above.
//
// Why: with more than one P, every goroutine made runnable (a reader woken
// by a packet, a commit's callback, a timer) starts a second thread
// spinning for work, which finds none and goes back to sleep. Under a light
// or moderate load that is a thread wake-up and a context switch per
// packet for nothing; on the DHCPv6 benchmark one P used 25-30 % less CPU
// per exchange at 1,000-8,000 exchanges a second (bench/README-dhcp.md).
// Under a load one P cannot carry (a boot storm's TFTP and HTTP), every P
// is back within one sampling interval.
//
// The decision (Policy.Next) is a pure function of the CPU the process
// used in the last interval; Governor applies it.
package procs

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Policy decides how many Ps the scheduler runs.
type Policy struct {
	// Max is the number of Ps under load (the runtime's default at start:
	// the CPUs pxed may use).
	Max int
	// Up: an interval in which the process used at least Up cores (CPU
	// seconds per second) on one P sets Max: one P is close to saturated.
	Up float64
	// Down: Calm intervals in a row below Down cores on Max Ps set one P
	// again. The gap between Up and Down (the same work costs more CPU on
	// more Ps) keeps a load near the threshold from flapping.
	Down float64
	Calm int
}

// DefaultPolicy returns the policy for max Ps: up at half a core, down
// after 5 intervals (5 s at DefaultInterval) below a quarter of a core.
// Half a core, not more: on one P the socket reader shares its core with
// everything else (the once-a-second SQLite update, the GC), and at
// 8,000 DHCPv6 exchanges a second (about 0.6 of a core) those bursts
// already cost drops in the benchmark's rate search.
func DefaultPolicy(max int) Policy {
	return Policy{Max: max, Up: 0.5, Down: 0.25, Calm: 5}
}

// Next returns the Ps for the next interval and the calm intervals counted
// so far, given the Ps now (cur), the cores the process used in the last
// interval and the calm intervals counted before it.
func (p Policy) Next(cur int, used float64, calm int) (procs, calmNow int) {
	if p.Max <= 1 {
		return cur, 0
	}
	if cur < p.Max {
		if used >= p.Up {
			return p.Max, 0
		}
		return cur, 0
	}
	if used >= p.Down {
		return cur, 0
	}
	if calm+1 >= p.Calm {
		return 1, 0
	}
	return cur, calm + 1
}

// DefaultInterval is how often a Governor samples the CPU used: a second,
// so that a burst (the once-a-second SQLite update, a GC cycle) does not
// count as load.
const DefaultInterval = time.Second

// Governor applies a Policy: it samples the process's CPU time every
// Interval and sets GOMAXPROCS when the policy says so.
type Governor struct {
	Policy   Policy
	Interval time.Duration // 0 means DefaultInterval
	Logger   *slog.Logger  // nil discards

	// cpu returns the process's CPU time so far; set sets the Ps
	// (runtime.GOMAXPROCS). Tests replace both.
	cpu func() time.Duration
	set func(int) int

	procs atomic.Int64
}

// New returns a Governor for this process, or nil and why not when the
// scheduler's size is not pxed's to choose: GOMAXPROCS set in the
// environment (the operator chose), or one CPU only.
func New(logger *slog.Logger) (*Governor, string) {
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		return nil, "GOMAXPROCS=" + strconv.Quote(v) + " set in the environment"
	}
	max := runtime.GOMAXPROCS(0)
	if max <= 1 {
		return nil, "one CPU"
	}
	return &Governor{Policy: DefaultPolicy(max), Logger: logger}, ""
}

// Procs returns the Ps the Governor set last (Policy.Max before its first
// change).
func (g *Governor) Procs() int {
	if n := g.procs.Load(); n > 0 {
		return int(n)
	}
	return g.Policy.Max
}

// Run starts with one P and samples until ctx ends; it then restores
// Policy.Max.
func (g *Governor) Run(ctx context.Context) {
	if g.cpu == nil {
		g.cpu = processCPU
	}
	if g.set == nil {
		g.set = runtime.GOMAXPROCS
	}
	if g.Logger == nil {
		g.Logger = slog.New(slog.DiscardHandler)
	}
	iv := g.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	cur := g.apply(1, 0)
	t := time.NewTicker(iv)
	defer t.Stop()
	last, lastCPU := time.Now(), g.cpu()
	calm := 0
	for {
		select {
		case <-ctx.Done():
			g.apply(g.Policy.Max, 0)
			return
		case now := <-t.C:
			c := g.cpu()
			used := float64(c-lastCPU) / float64(now.Sub(last))
			last, lastCPU = now, c
			var next int
			next, calm = g.Policy.Next(cur, used, calm)
			if next != cur {
				cur = g.apply(next, used)
			}
		}
	}
}

// apply sets n Ps and says so.
func (g *Governor) apply(n int, used float64) int {
	g.set(n)
	g.procs.Store(int64(n))
	g.Logger.Info("scheduler resized", "procs", n, "max", g.Policy.Max, "cores_used", strconv.FormatFloat(used, 'f', 2, 64))
	return n
}

// processCPU returns the CPU time (user and system) of every thread of the
// process so far.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
