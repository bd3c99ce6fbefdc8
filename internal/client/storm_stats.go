package client

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the q-th percentile (0 < q ≤ 100) of sorted by the
// nearest-rank method: the smallest sample such that at least q% of the
// samples are at most it. An empty slice gives 0.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(q / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// Stats summarises samples (in any order; it sorts them in place).
func Stats(stage string, samples []time.Duration) StageStats {
	slices.Sort(samples)
	s := StageStats{Stage: stage, Count: len(samples)}
	if len(samples) == 0 {
		return s
	}
	s.P50, s.P95, s.P99 = Percentile(samples, 50), Percentile(samples, 95), Percentile(samples, 99)
	s.Max = samples[len(samples)-1]
	return s
}

// aggregate collects machines' outcomes; one goroutine owns it.
type aggregate struct {
	samples  map[string][]time.Duration
	retries  map[string]int
	failures map[string]int
	examples map[string]string
	booted   int
	failed   int
	bytes    int64
	machines []MachineReport // PerMachine
}

func newAggregate() *aggregate {
	return &aggregate{samples: map[string][]time.Duration{}, retries: map[string]int{},
		failures: map[string]int{}, examples: map[string]string{}}
}

func (a *aggregate) add(m machine) {
	for st, ds := range m.samples {
		a.samples[st] = append(a.samples[st], ds...)
	}
	for k, n := range m.retries {
		a.retries[k] += n
	}
	a.bytes += m.bytes
	if m.rep.Steps != nil {
		a.machines = append(a.machines, m.rep)
	}
	if m.cause == "" {
		a.booted++
		return
	}
	a.failed++
	a.failures[m.cause]++
	if _, ok := a.examples[m.cause]; !ok {
		a.examples[m.cause] = m.err
	}
}

func (a *aggregate) report() *StormReport {
	r := &StormReport{Booted: a.booted, Failed: a.failed, Retries: a.retries, Failures: a.failures, Bytes: a.bytes, Machines: a.machines}
	if len(a.examples) > 0 {
		r.Examples = a.examples
	}
	for _, st := range StageOrder {
		if ds := a.samples[st]; len(ds) > 0 {
			r.Stages = append(r.Stages, Stats(st, ds))
		}
	}
	return r
}
