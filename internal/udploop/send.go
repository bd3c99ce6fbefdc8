package udploop

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/net/ipv4"
)

// SendWait is the longest a Loop waits for room in its socket's send
// buffer before it drops the replies left (counted in SendErrs).
const SendWait = 20 * time.Millisecond

// send writes the replies, as many as the kernel takes per sendmmsg; a
// reply that fails is retried alone (after Handler.Retry) and counted
// when it cannot be sent.
func (l *Loop[P, M]) send(ctx context.Context, rs []Reply[M]) {
	if len(rs) == 0 {
		return
	}
	msgs := make([]ipv4.Message, len(rs))
	for i := range rs {
		msgs[i] = l.message(&rs[i])
	}
	// The loop never waits long for the send buffer: replies to addresses
	// nobody answers ARP (or neighbour discovery) for stay charged to it
	// until the neighbour fails, seconds later. A deadline that passes
	// while the goroutine was not running (2 busy cores) is no proof of a
	// full buffer: the first one is given a fresh SendWait.
	l.armWrite(false)
	again := true
	for len(rs) > 0 {
		n, err := l.Conn.WriteBatch(msgs, 0)
		n = max(n, 0)
		for i := range rs[:n] {
			l.sent(ctx, &rs[i])
		}
		rs, msgs = rs[n:], msgs[n:]
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if again {
				again = false
				l.armWrite(true)
				continue
			}
			l.sendFull(rs)
			return
		}
		if len(rs) > 0 && (err != nil || n == 0) {
			// The first reply left failed: on its own, with its retry.
			if !l.sendOne(ctx, &rs[0]) {
				l.sendFull(rs[1:])
				return
			}
			rs, msgs = rs[1:], msgs[1:]
		}
	}
}

// armWrite sets the socket's write deadline SendWait from now, or, unless
// fresh, keeps the one an earlier send set while it leaves at least half
// of SendWait: a send then waits at least SendWait/2 for room, and a busy
// loop changes its deadline (a runtime timer, whose change wakes the
// thread polling the network) once per SendWait/2 instead of once per
// send.
func (l *Loop[P, M]) armWrite(fresh bool) {
	now := time.Now()
	if !fresh && l.writeDeadline.Load()-now.UnixNano() >= int64(SendWait/2) {
		return
	}
	d := now.Add(SendWait)
	l.writeDeadline.Store(d.UnixNano())
	_ = l.Conn.SetWriteDeadline(d)
}

// message is r as one message to send.
func (l *Loop[P, M]) message(r *Reply[M]) ipv4.Message {
	return ipv4.Message{Buffers: [][]byte{r.Wire}, OOB: l.OOB, Addr: net.UDPAddrFromAddrPort(r.To)}
}

// sendFull counts and reports replies dropped because the send buffer
// stayed full for SendWait.
func (l *Loop[P, M]) sendFull(rs []Reply[M]) {
	if len(rs) == 0 {
		return
	}
	l.Counters.sendErrs.Add(uint64(len(rs)))
	if ok, n := l.Counters.warnings.Allow("send-buffer-full"); ok {
		l.Logger.Warn(l.Name+" replies dropped: the socket's send buffer is full (replies to addresses that do not answer ARP?)",
			"dropped", len(rs), "first_dst", rs[0].To.String(), "suppressed", n)
	}
}

// sendOne writes one reply, once more when it fails and Handler.Retry
// says so; false when the send buffer stayed full (the caller drops the
// rest).
func (l *Loop[P, M]) sendOne(ctx context.Context, r *Reply[M]) bool {
	l.armWrite(false)
	err := l.writeOne(r)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && l.Handler.Retry(r, err) {
		err = l.writeOne(r)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		l.sendFull([]Reply[M]{*r})
		return false
	}
	if err != nil {
		l.Counters.sendErrs.Add(1)
		if ok, n := l.Counters.warnings.Allow("send-failed"); ok {
			l.Logger.Warn(l.Name+" send failed", append(l.Handler.ReplyAttrs(r), "dst", r.To.String(), "err", err, "suppressed", n)...)
		}
		return true
	}
	l.sent(ctx, r)
	return true
}

// writeOne writes r alone.
func (l *Loop[P, M]) writeOne(r *Reply[M]) error {
	msg := []ipv4.Message{l.message(r)}
	n, err := l.Conn.WriteBatch(msg, 0)
	if err == nil && n != 1 {
		err = errors.New("udploop: reply not sent")
	}
	return err
}

// sent counts a reply that left and has the Handler record it.
func (l *Loop[P, M]) sent(ctx context.Context, r *Reply[M]) {
	l.Counters.replied.Add(1)
	l.Handler.Sent(ctx, r)
}
