package ra

import (
	"net/netip"
	"slices"
	"time"
)

// Router constants of RFC 4861 §10.
const (
	// MaxRADelay (MAX_RA_DELAY_TIME) bounds the random delay of an
	// answer to a router solicitation.
	MaxRADelay = 500 * time.Millisecond
	// MinDelayBetweenRAs (MIN_DELAY_BETWEEN_RAS) is the least time
	// between two advertisements to all nodes.
	MinDelayBetweenRAs = 3 * time.Second
)

// maxPending bounds the unicast answers waiting for their delay: a flood
// of solicitations from made-up sources gets one answer to all nodes.
const maxPending = 256

// Solicited says when and to whom the answer to a router solicitation
// from src, received at now, goes: to is src, or the zero Addr for all
// nodes. lastMulticast is when the previous advertisement to all nodes
// went (zero: none yet) and delay a random duration in [0, MaxRADelay].
//
// RFC 4861 §6.2.6: every solicited advertisement waits a random delay of
// up to MAX_RA_DELAY_TIME; one to all nodes waits besides until
// MIN_DELAY_BETWEEN_RAS has passed since the previous one (it is deferred,
// not dropped: a host whose solicitation went unanswered waits for its
// retransmission, up to 4 s for EDK II and iPXE); a router may unicast
// the answer when the source is not the unspecified address, which RFC
// 7772 §5.1 recommends and radvd does by default (AdvRASolicitedUnicast).
// A unicast answer is not held back by the multicast limit, so a machine
// starting iPXE a second after another machine's solicitation (or the
// periodic advertisement) is answered at once.
func Solicited(src netip.Addr, now, lastMulticast time.Time, delay time.Duration) (to netip.Addr, at time.Time) {
	at = now.Add(min(max(delay, 0), MaxRADelay))
	if src.IsValid() && !src.IsUnspecified() {
		return src, at
	}
	if next := lastMulticast.Add(MinDelayBetweenRAs); !lastMulticast.IsZero() && at.Before(next) {
		at = next
	}
	return netip.Addr{}, at
}

// queue holds the answers to solicitations until they are due. One
// answer per destination: solicitations that arrive while one is pending
// share it (its delay counts from the first, RFC 4861 §6.2.6).
type queue struct {
	pending       map[netip.Addr]time.Time // destination (zero Addr: all nodes) → when due
	lastMulticast time.Time
}

// add queues the answer to a solicitation from src received at now.
func (q *queue) add(src netip.Addr, now time.Time, delay time.Duration) {
	to, at := Solicited(src, now, q.lastMulticast, delay)
	if q.pending == nil {
		q.pending = map[netip.Addr]time.Time{}
	}
	if _, ok := q.pending[to]; ok {
		return
	}
	if to.IsValid() && len(q.pending) >= maxPending {
		to, at = Solicited(netip.IPv6Unspecified(), now, q.lastMulticast, delay)
		if _, ok := q.pending[to]; ok {
			return
		}
	}
	q.pending[to] = at
}

// sentMulticast records an advertisement to all nodes sent at now: it
// answers every solicitation waiting for one.
func (q *queue) sentMulticast(now time.Time) {
	q.lastMulticast = now
	delete(q.pending, netip.Addr{})
}

// retryMulticast queues an advertisement to all nodes at at: one that
// could not go (the link-local address not usable yet) is tried again then.
func (q *queue) retryMulticast(at time.Time) {
	if q.pending == nil {
		q.pending = map[netip.Addr]time.Time{}
	}
	if cur, ok := q.pending[netip.Addr{}]; !ok || at.Before(cur) {
		q.pending[netip.Addr{}] = at
	}
}

// next is when the earliest pending answer is due.
func (q *queue) next() (time.Time, bool) {
	var first time.Time
	for _, at := range q.pending {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// due removes and returns the destinations whose answers are due at now,
// all nodes (the zero Addr) first.
func (q *queue) due(now time.Time) []netip.Addr {
	var out []netip.Addr
	for to, at := range q.pending {
		if !at.After(now) {
			out = append(out, to)
			delete(q.pending, to)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return out
}
