package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"pxed/internal/api"
)

// registerStreamMetrics exposes the event stream's clients and what slow
// clients missed (GET /api/events).
func registerStreamMetrics(reg *prometheus.Registry, s *api.Stream) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pxed_events_stream_clients", Help: "Event streams (GET /api/events) open."},
		func() float64 { return float64(s.Stats().Clients) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pxed_events_stream_dropped_total",
		Help: "Events not sent to an event stream client that read too slowly (it was told to resync)."},
		func() float64 { return float64(s.Stats().Dropped) }))
}
