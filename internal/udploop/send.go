package udploop

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
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
	for len(rs) > 0 {
		n, err := l.write(msgs)
		for i := range rs[:n] {
			l.sent(ctx, &rs[i])
		}
		rs, msgs = rs[n:], msgs[n:]
		if errors.Is(err, os.ErrDeadlineExceeded) {
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

// write sends msgs and returns how many left. While the send buffer has
// room that is one sendmmsg, with no write deadline: a deadline is a
// runtime timer, and one that fires (even with nobody waiting) wakes the
// runtime's monitor thread, which a few hundred replies a second kept
// awake. When the buffer is full, write waits for room SendWait at most,
// twice (the loop never waits long: replies to addresses nobody answers
// ARP or neighbour discovery for stay charged to the socket until the
// neighbour fails, seconds later; and a deadline that passed while the
// goroutine was not running, on busy cores, is no proof of a full buffer),
// then clears the deadline. An error other than a full buffer is returned
// at once.
func (l *Loop[P, M]) write(msgs []ipv4.Message) (int, error) {
	n, err := l.Conn.WriteBatch(msgs, unix.MSG_DONTWAIT)
	n = max(n, 0)
	if n == len(msgs) || !errors.Is(err, unix.EAGAIN) && !errors.Is(err, os.ErrDeadlineExceeded) {
		return n, err
	}
	// One waiter sets and clears the deadline at a time (the socket's
	// writes are serialized anyway).
	l.waitMu.Lock()
	defer l.waitMu.Unlock()
	defer func() { _ = l.Conn.SetWriteDeadline(time.Time{}) }()
	for again := true; ; again = false {
		_ = l.Conn.SetWriteDeadline(time.Now().Add(SendWait))
		m, err := l.Conn.WriteBatch(msgs[n:], 0)
		n += max(m, 0)
		if n == len(msgs) || !again || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
	}
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
	n, err := l.write([]ipv4.Message{l.message(r)})
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
