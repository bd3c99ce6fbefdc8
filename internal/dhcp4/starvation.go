package dhcp4

import (
	"context"
	"net"
	"sync"
	"time"

	"pxed/internal/lease"
)

// A starvation attack (dhcpstarv, yersinia) sends DHCPDISCOVERs from
// thousands of made-up client IDs a second until every address is
// offered; the machines that then boot get none. Machines booting for
// real are mostly known to the server (they have leases), and the new ones
// come a rack at a time. Full counts the DISCOVERs of clients its Managers
// do not know and marks those past a threshold per window.

// DefaultStarvationClients is Full.StarvationClients when 0: more new
// clients than a first power-on of a full 42U rack of 1U servers booting
// from two NICs each (84) within one window, and far fewer than a
// starvation tool sends in one (thousands per second; the flood of issue
// 13 had tens of thousands).
const DefaultStarvationClients = 128

// DefaultStarvationWindow is Full.StarvationWindow when 0: one
// lograte.DefaultInterval, so a sustained flood is one warning per window.
const DefaultStarvationWindow = 10 * time.Second

// windowCount counts events in fixed windows: a window starts with the
// first event after the previous one ended. A burst split between two
// windows counts up to twice the threshold before it is marked, which is
// still far below a flood.
type windowCount struct {
	mu    sync.Mutex
	start time.Time // of the current window; zero before the first event
	n     int       // events in the current window
}

// add counts one event at now and returns how many the current window
// holds, this one included.
func (w *windowCount) add(now time.Time, window time.Duration) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.start.IsZero() || now.Sub(w.start) >= window || now.Before(w.start) {
		w.start, w.n = now, 0
	}
	w.n++
	return w.n
}

// isNew reports whether the starvation check is on and sn's Manager does
// not know the client (a store error counts as known: the check must not
// add to an outage's noise).
func (f *Full) isNew(ctx context.Context, sn *Subnet, key lease.ClientKey, mac net.HardwareAddr) bool {
	if f.StarvationClients < 0 {
		return false
	}
	known, err := sn.Leases.Known(ctx, key, mac)
	return err == nil && !known
}

// countNew counts a DISCOVER of a new client and reports whether it is
// past the threshold of its window.
func (f *Full) countNew() bool {
	limit, window := f.StarvationClients, f.StarvationWindow
	if limit == 0 {
		limit = DefaultStarvationClients
	}
	if window <= 0 {
		window = DefaultStarvationWindow
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	return f.newClients.add(now(), window) > limit
}
