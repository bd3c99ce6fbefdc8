// Package udploop serves one UDP socket for a request/reply protocol (DHCPv4
// now, DHCPv6 next), protocol-neutral: batched reads (recvmmsg) paced under
// load, a bounded worker pool for the packets whose answer may wait,
// replies released once the lease writes they announce are durable
// (lease.Deferred; the commit that makes them durable sends them), and
// batched sends (sendmmsg) that never wait long for a full send buffer. The protocol decodes, answers, names the
// destinations and records what was sent, through a Handler.
package udploop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"pxed/internal/lease"
	"pxed/internal/lograte"
)

// Conn is the socket a Loop serves: golang.org/x/net's ipv4.PacketConn or
// ipv6.PacketConn (their Message is one type).
type Conn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
	SetWriteDeadline(t time.Time) error
}

// Packet is one packet read. Data and OOB are the reader's buffers: valid
// only during Handler.Decode.
type Packet struct {
	Data []byte
	OOB  []byte         // the control messages received (ancillary data)
	Src  netip.AddrPort // the sender, an IPv4 address unmapped
	// Truncated says the packet was longer than MaxPacket: Data holds its
	// start only.
	Truncated bool
}

// Outcome is what Handler.Answer did with a request.
type Outcome uint8

// The outcomes of Handler.Answer.
const (
	// Silent: no reply (ignored, or nothing to say).
	Silent Outcome = iota
	// Send: the Reply is to be sent.
	Send
	// Busy: on the reader only, the answer would have to wait (another
	// packet of the same client is being handled): the loop hands the
	// request to a worker, which asks again.
	Busy
)

// Reply is an answer ready to send: its bytes, where to, and what the
// protocol keeps with it (M) to record it once sent.
type Reply[M any] struct {
	Wire []byte
	To   netip.AddrPort
	Meta M
	// durable, when set, holds the lease writes the reply announces: it
	// is sent only once they are on disk.
	durable *lease.Deferred
}

// Handler is the protocol's part of a Loop. P is a decoded request, M what
// a Reply carries for the protocol. Its methods are called from the
// reader, the workers and the lease store's committer at once.
type Handler[P, M any] interface {
	// Decode decodes one packet read; false drops it (Decode counts and
	// logs why).
	Decode(Packet) (P, bool)
	// Quick reports whether the reader may answer p itself: its answer
	// needs no address probe, and its lease writes can be deferred.
	// Every other request goes to a worker.
	Quick(P) bool
	// Answer answers p, encoding the reply into buf (which it may grow).
	// On a worker d is nil and Answer may wait. On the reader d is a fresh
	// lease.Deferred: Answer must not wait, it queues its lease writes
	// under d (or says Busy), and the loop sends the reply once they are
	// durable.
	Answer(ctx context.Context, p P, d *lease.Deferred, buf []byte) (Reply[M], Outcome)
	// Retry is called when sending r failed with err (not for a full send
	// buffer): it may change r (its destination) and return true to send
	// it once more.
	Retry(r *Reply[M], err error) bool
	// Sent records a reply that left.
	Sent(ctx context.Context, r *Reply[M])
	// RequestAttrs and ReplyAttrs name a request and a reply in the
	// loop's log lines (key, value pairs as slog takes them).
	RequestAttrs(P) []any
	ReplyAttrs(*Reply[M]) []any
}

// Stats counts what loops did; read with Counters.Stats.
type Stats struct {
	Received uint64 // packets read
	Replied  uint64 // replies sent
	SendErrs uint64 // replies that could not be sent (counted with those dropped on a full send buffer)
	Overload uint64 // requests dropped because every worker was busy
	Unsaved  uint64 // replies withheld because the lease write they announce failed
}

// Counters are the counts of one or more Loops (the sockets of one
// server), with the limiter that keeps their warnings to one per interval.
// The zero value is ready.
type Counters struct {
	received, replied, sendErrs, overload, unsaved atomic.Uint64
	warnings                                       lograte.Limiter
}

// Stats returns the counts.
func (c *Counters) Stats() Stats {
	return Stats{Received: c.received.Load(), Replied: c.replied.Load(), SendErrs: c.sendErrs.Load(),
		Overload: c.overload.Load(), Unsaved: c.unsaved.Load()}
}

// Loop serves one socket. Set the fields, then call Serve.
type Loop[P, M any] struct {
	Conn    Conn          // required
	Handler Handler[P, M] // required
	// Counters receives the counts; nil counts in a Counters of the Loop's own.
	Counters *Counters
	// Name starts the loop's log lines ("dhcp").
	Name   string
	Logger *slog.Logger // nil discards
	// OOB is the control message sent with every reply (e.g. IP_PKTINFO
	// naming the interface); OOBSpace the room for those a read receives.
	OOB      []byte
	OOBSpace int
	// Workers is the number of requests answered at once by workers;
	// 0 means DefaultWorkers. Requests beyond Workers plus a queue of
	// 4×Workers are dropped and counted (clients retransmit).
	Workers int
	// BatchWait paces the reader under load: after a read of several
	// packets, or of one that came within BatchWait of the read before
	// as that one did of its own (a lone exchange's reply and next
	// request come that close, a load's packets keep coming),
	// the reader waits BatchWait before it reads again, so that one
	// wake-up takes many packets instead of one each (as a NIC moderates
	// its interrupts). A lone packet is answered at once. 0 means
	// DefaultBatchWait; negative reads again at once.
	BatchWait time.Duration

	waitMu sync.Mutex // held by the send that waits for room (write)
}

// DefaultBatchWait is Loop.BatchWait when 0: at most 1 ms added to a reply
// under load, for about a third less CPU per DHCPv4 DORA at 8,000/s.
const DefaultBatchWait = time.Millisecond

// DefaultWorkers is Loop.Workers when 0.
const DefaultWorkers = 256

// ReadBatch is the most packets one read takes from a socket's queue.
const ReadBatch = 32

// MaxPacket is the size of each packet's read buffer: a DHCP message in a
// jumbo frame fits; a longer one is read Truncated.
const MaxPacket = 9216

// Serve reads the socket until it is closed (ReadBatch fails with
// net.ErrClosed), then stops the workers and returns once
// they are done. ctx bounds the Handler's work and the sends: the owner of
// the socket cancels ctx, then closes the socket; a reply still waiting for
// its writes is then never sent.
func (l *Loop[P, M]) Serve(ctx context.Context) {
	if l.Counters == nil {
		l.Counters = new(Counters)
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	workers := l.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	jobs := make(chan P, 4*workers)
	// The buffers of replies that waited for their writes come back
	// through spare once sent.
	spare := make(chan []byte, 1024)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { l.work(ctx, jobs) })
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	l.read(ctx, jobs, spare)
}

// work is a worker: it answers the requests of jobs (and may wait) until
// jobs is closed.
func (l *Loop[P, M]) work(ctx context.Context, jobs <-chan P) {
	out := make([]Reply[M], 0, 1)
	buf := make([]byte, 0, replyCapacity)
	for p := range jobs {
		if r, how := l.Handler.Answer(ctx, p, nil, buf[:0]); how == Send {
			out = append(out[:0], r)
			l.send(ctx, out)
			buf = r.Wire // keep a buffer that grew
		}
	}
}

// replyCapacity is the capacity of a new reply buffer: a reply of the
// minimum message size fits (RFC 2131 §2: 576 bytes).
const replyCapacity = 576

// reader is the state of a Loop's reader: its read buffers, the replies
// of the read at hand and the buffers each is encoded into.
type reader[M any] struct {
	msgs    []ipv4.Message
	out     []Reply[M] // sent at once, in one sendmmsg
	bufs    [][]byte   // the wire form of out[i], reused
	waiting []Reply[M] // sent once their writes are durable
	// held are the Deferreds of the read at hand whose writes the store
	// holds for the reader to commit (lease.Deferred.Hold).
	held     []*lease.Deferred
	deadline time.Time // the read deadline set for them, if any
	lastRead time.Time
	close    int // reads in a row that came within BatchWait of the one before
}

// read is the reader: one recvmmsg takes every packet already queued (up
// to ReadBatch), the reader answers those it may (Handler.Quick) and
// hands the others to the workers, and the replies it made leave in one
// sendmmsg.
func (l *Loop[P, M]) read(ctx context.Context, jobs chan<- P, spare chan []byte) {
	rd := &reader[M]{msgs: make([]ipv4.Message, ReadBatch), out: make([]Reply[M], 0, ReadBatch), bufs: make([][]byte, ReadBatch)}
	for i := range rd.msgs {
		rd.msgs[i].Buffers = [][]byte{make([]byte, MaxPacket)}
		rd.msgs[i].OOB = make([]byte, l.OOBSpace)
	}
	for i := range rd.bufs {
		rd.bufs[i] = make([]byte, 0, replyCapacity)
	}
	batchWait := l.BatchWait
	if batchWait == 0 {
		batchWait = DefaultBatchWait
	}
	for {
		n, err := l.Conn.ReadBatch(rd.msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				// Writes still held: the store's committer makes them
				// durable (their replies are not sent once ctx ends).
				l.commitHeld(rd, false)
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && !rd.deadline.IsZero() {
				// The held writes' commit is due.
				rd.deadline = time.Time{}
				if dl, ok := l.Conn.(readDeadliner); ok {
					_ = dl.SetReadDeadline(time.Time{})
				}
				l.commitHeld(rd, true)
				continue
			}
			l.Logger.Warn(l.Name+" read", "err", err)
			time.Sleep(10 * time.Millisecond) // avoid a hot loop on a persistent error
			continue
		}
		now := time.Now()
		if now.Sub(rd.lastRead) < batchWait {
			rd.close++
		} else {
			rd.close = 0
		}
		busy := batchWait > 0 && n < len(rd.msgs) && (n > 1 || rd.close >= 2)
		rd.lastRead = now
		rd.out, rd.waiting = rd.out[:0], nil
		for i := range rd.msgs[:n] {
			l.handle(ctx, rd, &rd.msgs[i], jobs, spare)
		}
		l.send(ctx, rd.out)
		if len(rd.waiting) > 0 {
			l.release(ctx, rd.waiting, spare)
		}
		l.commitHeld(rd, n <= inlineCommitMax)
		if busy {
			time.Sleep(batchWait)
		}
	}
}

// inlineCommitMax is the most packets a read may hold for the reader to
// commit their leases itself: a busier reader (a load of thousands of
// packets a second) hands the commit to the store's committer and reads
// on, so that a slow fdatasync (a busy disk) does not hold back the
// answers that need no commit.
const inlineCommitMax = ReadBatch / 4

// readDeadliner is a Conn whose reads can time out (all but tests'
// fakes).
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

// commitHeld commits the lease writes the store holds for the reader
// (lease.Deferred.Hold) on the reader: with the lease journal one pwrite
// and one fdatasync (raw system calls), and the replies waiting for them
// sent from here, with no other goroutine woken for either. Packets that
// come meanwhile queue in the socket and make the next read's batch. The
// store paces its commits (a commit interval): when the last one is too
// recent the writes stay held and a read deadline brings the reader back
// when the commit is due, unless a packet does first. inline false (the
// read held more than inlineCommitMax packets: the reader is busy) hands
// them to the store's committer instead, which commits while the reader
// reads on.
func (l *Loop[P, M]) commitHeld(rd *reader[M], inline bool) {
	if len(rd.held) == 0 {
		return
	}
	dl, _ := l.Conn.(readDeadliner)
	var wait time.Duration
	keep := rd.held[:0]
	for _, d := range rd.held {
		if w := d.Commit(inline); w > 0 {
			if dl == nil {
				d.Commit(false)
				continue
			}
			keep = append(keep, d)
			wait = w
		}
	}
	clear(rd.held[len(keep):])
	rd.held = keep
	switch {
	case len(keep) > 0 && rd.deadline.IsZero():
		rd.deadline = time.Now().Add(wait)
		if err := dl.SetReadDeadline(rd.deadline); err != nil {
			// No deadline: the committer commits them.
			for _, d := range keep {
				d.Commit(false)
			}
			clear(keep)
			rd.held, rd.deadline = keep[:0], time.Time{}
		}
	case len(keep) == 0 && !rd.deadline.IsZero():
		rd.deadline = time.Time{}
		_ = dl.SetReadDeadline(time.Time{})
	}
}

// handle decodes one packet read and answers it on the reader or hands it
// to a worker.
func (l *Loop[P, M]) handle(ctx context.Context, rd *reader[M], m *ipv4.Message, jobs chan<- P, spare <-chan []byte) {
	l.Counters.received.Add(1)
	pk := Packet{Data: m.Buffers[0][:m.N], OOB: m.OOB[:m.NN], Truncated: m.Flags&unix.MSG_TRUNC != 0}
	if ua, ok := m.Addr.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		pk.Src = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	p, ok := l.Handler.Decode(pk)
	if !ok {
		return
	}
	if !l.Handler.Quick(p) {
		l.dispatch(jobs, p)
		return
	}
	d := &lease.Deferred{Hold: true}
	slot := len(rd.out)
	r, how := l.Handler.Answer(ctx, p, d, rd.bufs[slot][:0])
	if d.Held() {
		rd.held = append(rd.held, d)
	}
	switch {
	case how == Busy:
		l.dispatch(jobs, p)
	case how != Send:
	case d.Queued():
		// Its buffer travels with it; the slot gets another.
		r.durable = d
		rd.waiting = append(rd.waiting, r)
		select {
		case rd.bufs[slot] = <-spare:
		default:
			rd.bufs[slot] = make([]byte, 0, replyCapacity)
		}
	default:
		rd.bufs[slot] = r.Wire
		rd.out = append(rd.out, r)
	}
}

// dispatch queues a request for the workers, or drops and counts it when
// every worker is busy and the queue is full (clients retransmit).
func (l *Loop[P, M]) dispatch(jobs chan<- P, p P) {
	select {
	case jobs <- p:
	default:
		l.Counters.overload.Add(1)
		l.Logger.Debug(l.Name+" overloaded, packet dropped", l.Handler.RequestAttrs(p)...)
	}
}

// release sends the replies of one read that wait for their lease writes
// once all of them are durable, in one sendmmsg, and returns their buffers
// to spare. No goroutine waits for them: the last write to finish sends
// them, on the goroutine that commits it (the reader itself when the
// store holds its writes for it, see commitHeld; otherwise the lease
// store's committer, usually one commit for the whole read), which saves
// a goroutine wake-up and a hand-off per commit. A reply whose write
// failed is withheld (the client asks again).
func (l *Loop[P, M]) release(ctx context.Context, rs []Reply[M], spare chan<- []byte) {
	g := &released[P, M]{l: l, ctx: ctx, rs: rs, errs: make([]error, len(rs)), left: len(rs), spare: spare}
	for i := range rs {
		rs[i].durable.Then(func(err error) { g.done(i, err) })
	}
}

// released is one read's replies waiting for their writes.
type released[P, M any] struct {
	l     *Loop[P, M]
	ctx   context.Context
	rs    []Reply[M]
	spare chan<- []byte

	mu   sync.Mutex
	errs []error // the outcome of rs[i]'s writes
	left int     // replies whose writes are pending
}

// done records the outcome of reply i's writes and sends the replies once
// none is pending.
func (g *released[P, M]) done(i int, err error) {
	g.mu.Lock()
	g.errs[i] = err
	g.left--
	last := g.left == 0
	g.mu.Unlock()
	if !last || g.ctx.Err() != nil {
		return // shutting down: nothing more is sent
	}
	l := g.l
	ok := g.rs[:0:0]
	for i, r := range g.rs {
		if g.errs[i] != nil {
			l.Counters.unsaved.Add(1)
			l.Logger.Warn(l.Name+" reply withheld: its lease was not saved", append(l.Handler.ReplyAttrs(&r), "err", g.errs[i])...)
			continue
		}
		ok = append(ok, r)
	}
	l.send(g.ctx, ok)
	for _, r := range g.rs {
		select {
		case g.spare <- r.Wire[:0]:
		default:
		}
	}
}
