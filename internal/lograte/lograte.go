// Package lograte keeps a flood from flooding the log: past a limit, a
// refusal or an anomaly is counted every time but logged at most once per
// interval per key, with the number of occurrences since the last line.
package lograte

import (
	"sync"
	"time"
)

// DefaultInterval is Limiter.Interval when 0.
const DefaultInterval = 10 * time.Second

// maxKeys bounds the keys a Limiter remembers; past it the oldest interval's
// keys are forgotten (a forgotten key logs again at once).
const maxKeys = 4096

// Limiter says when a keyed event may be logged. The zero value logs each
// key at most once per DefaultInterval. Safe for concurrent use.
type Limiter struct {
	Interval time.Duration    // 0 means DefaultInterval
	Now      func() time.Time // nil means time.Now

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed int
}

// Allow reports whether an event under key may be logged now and, when it
// may, how many events under that key were suppressed since the last one
// logged.
func (l *Limiter) Allow(key string) (ok bool, suppressed int) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	t := now()
	iv := l.Interval
	if iv <= 0 {
		iv = DefaultInterval
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = make(map[string]*entry)
	}
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= maxKeys {
			for k, old := range l.keys {
				if t.Sub(old.last) >= iv {
					delete(l.keys, k)
				}
			}
			if len(l.keys) >= maxKeys {
				clear(l.keys)
			}
		}
		l.keys[key] = &entry{last: t}
		return true, 0
	}
	if t.Sub(e.last) < iv {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.last, e.suppressed = t, 0
	return true, n
}
