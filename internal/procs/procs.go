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
// used in the last samples; Governor applies it. Under load the Governor
// gives the scheduler back its default size (runtime.SetDefaultGOMAXPROCS):
// the CPUs the process may use, which the runtime then follows as the
// process's CPU limit (cgroup) changes, and Max follows it.
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

// Policy decides how many Ps the scheduler runs, from the CPU the process
// used over the last sample (short) and over the last Window samples
// (long).
type Policy struct {
	// Max is the number of Ps under load: the runtime's default size, the
	// CPUs pxed may use (the Governor updates it as that changes).
	Max int
	// Up: on one P, Max once the long average reaches Up cores (CPU
	// seconds per second), or one sample reaches Burst (one P saturated:
	// a load that came at once gets every P within a sample, not a
	// Window).
	Up, Burst float64
	// Down: on Max Ps, one P again after Calm samples in a row below Down
	// cores. The gap between Up and Down (the same work costs more CPU on
	// more Ps) keeps a load near the threshold from flapping.
	Down float64
	Calm int
}

// Window is the number of samples the long average spans.
const Window = 4

// DefaultPolicy returns the policy for max Ps: up at half a core over a
// second or 0.9 of one in a sample, down after 5 s below a quarter of a
// core. Half a core, not more: on one P the socket reader shares its core
// with everything else (the once-a-second SQLite update, the GC), and at
// 8,000 DHCPv6 exchanges a second (about 0.6 of a core) those bursts
// already cost drops in the benchmark's rate search. A sample's own burst
// threshold is high because the once-a-second update alone can take a
// third of a 250 ms sample at a few thousand leases a second.
func DefaultPolicy(max int) Policy {
	return Policy{Max: max, Up: 0.5, Burst: 0.9, Down: 0.25, Calm: 20}
}

// Next returns the Ps for the next sample and the calm samples counted so
// far, given the Ps now (cur), the cores used in the last sample (short)
// and on average over the last Window (long), and the calm samples
// counted before.
func (p Policy) Next(cur int, short, long float64, calm int) (procs, calmNow int) {
	if p.Max <= 1 {
		return cur, 0
	}
	if cur < p.Max {
		if long >= p.Up || short >= p.Burst {
			return p.Max, 0
		}
		return cur, 0
	}
	if short >= p.Down {
		return cur, 0
	}
	if calm+1 >= p.Calm {
		return 1, 0
	}
	return cur, calm + 1
}

// DefaultInterval is how often a Governor samples the CPU used.
const DefaultInterval = 250 * time.Millisecond

// Governor applies a Policy: it samples the process's CPU time every
// Interval and sets GOMAXPROCS when the policy says so.
type Governor struct {
	Policy   Policy
	Interval time.Duration // 0 means DefaultInterval
	Logger   *slog.Logger  // nil discards

	// cpu returns the process's CPU time so far; one sets a single P;
	// all gives the scheduler its default size back; current reads the
	// Ps. Tests replace them.
	cpu     func() time.Duration
	one     func()
	all     func()
	current func() int

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

// Run starts with one P and samples until ctx ends; it then gives the
// scheduler its default size back.
func (g *Governor) Run(ctx context.Context) {
	if g.cpu == nil {
		g.cpu = processCPU
	}
	if g.one == nil {
		g.one = func() { runtime.GOMAXPROCS(1) }
		g.all = runtime.SetDefaultGOMAXPROCS
		g.current = func() int { return runtime.GOMAXPROCS(0) }
	}
	if g.Logger == nil {
		g.Logger = slog.New(slog.DiscardHandler)
	}
	iv := g.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	pol := g.Policy
	up := false
	cur := g.apply(&pol, false, 0)
	t := time.NewTicker(iv)
	defer t.Stop()
	last, lastCPU := time.Now(), g.cpu()
	calm := 0
	var recent [Window]float64 // the last samples, a ring
	n := 0
	for {
		select {
		case <-ctx.Done():
			g.apply(&pol, true, 0)
			return
		case now := <-t.C:
			c := g.cpu()
			short := float64(c-lastCPU) / float64(now.Sub(last))
			last, lastCPU = now, c
			recent[n%Window] = short
			n++
			long := 0.0
			for _, u := range recent {
				long += u
			}
			long /= Window
			if up {
				// The runtime follows the CPU limit at its default size.
				if m := g.current(); m != cur {
					pol.Max, cur = m, m
					g.procs.Store(int64(m))
					g.Logger.Info("scheduler resized", "procs", m, "max", m, "why", "the process's CPU limit changed")
				}
			}
			var next int
			next, calm = pol.Next(cur, short, long, calm)
			if next != cur {
				up = next > 1
				cur = g.apply(&pol, up, max(short, long))
			}
		}
	}
}

// apply sets one P, or the scheduler's default size (up, which becomes
// pol.Max), and says so; it returns the Ps.
func (g *Governor) apply(pol *Policy, up bool, used float64) int {
	if up {
		g.all()
	} else {
		g.one()
	}
	n := g.current()
	if up {
		pol.Max = n
	}
	g.procs.Store(int64(n))
	g.Logger.Info("scheduler resized", "procs", n, "max", pol.Max, "cores_used", strconv.FormatFloat(used, 'f', 2, 64))
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
