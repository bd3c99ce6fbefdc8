package tftp

import (
	"testing"
	"time"
)

func TestRTTEstimator(t *testing.T) {
	for _, tc := range []struct {
		name     string
		adaptive bool
		max      time.Duration
		samples  []time.Duration
		want     time.Duration
	}{
		{"client chose a timeout (RFC 2349): always it", false, time.Second, []time.Duration{time.Millisecond}, time.Second},
		{"no sample yet: the configured timeout", true, time.Second, nil, time.Second},
		{"fast LAN: floor at minRTO", true, time.Second, []time.Duration{time.Millisecond, time.Millisecond}, minRTO},
		{"slow path: SRTT+4·RTTVAR", true, 5 * time.Second, []time.Duration{400 * time.Millisecond}, 400*time.Millisecond + 4*200*time.Millisecond},
		{"never above the configured timeout", true, time.Second, []time.Duration{900 * time.Millisecond}, time.Second},
		{"configured timeout below the floor wins", true, 20 * time.Millisecond, []time.Duration{time.Millisecond}, 20 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := rttEstimator{max: tc.max, adaptive: tc.adaptive}
			for _, s := range tc.samples {
				e.sample(s)
			}
			if got := e.rto(); got != tc.want {
				t.Errorf("rto = %v, want %v", got, tc.want)
			}
		})
	}
}
