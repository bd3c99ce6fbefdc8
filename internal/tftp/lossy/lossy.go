// Package lossy wraps a net.PacketConn to drop a fraction of datagrams and
// delay the rest, standing in for tc netem (not available on our machines) in
// tests and benchmarks of TFTP under loss and latency.
package lossy

import (
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Conn drops each datagram it sends or receives with probability Loss (from a
// seeded RNG, so a run is reproducible in its sequence of decisions) and
// delivers received datagrams RTT after they arrived. Wrapping one end of a
// path adds the whole RTT and loses in both directions.
type Conn struct {
	inner net.PacketConn
	loss  float64
	rtt   time.Duration

	mu  sync.Mutex
	rng *rand.Rand

	queue    chan packet
	pending  *packet
	deadline atomic.Pointer[time.Time]
	done     chan struct{}
	once     sync.Once
	readErr  error

	dropped atomic.Int64
}

type packet struct {
	b    []byte
	from net.Addr
	due  time.Time
}

// New wraps pc. loss is in [0, 1); rtt >= 0; seed fixes the drop decisions.
// New starts one goroutine reading pc; Close stops it.
func New(pc net.PacketConn, loss float64, rtt time.Duration, seed uint64) *Conn {
	c := &Conn{
		inner: pc, loss: loss, rtt: rtt,
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		queue: make(chan packet, 4096),
		done:  make(chan struct{}),
	}
	go c.pump()
	return c
}

// Dropped reports how many datagrams were dropped so far.
func (c *Conn) Dropped() int64 { return c.dropped.Load() }

func (c *Conn) drop() bool {
	if c.loss <= 0 {
		return false
	}
	c.mu.Lock()
	d := c.rng.Float64() < c.loss
	c.mu.Unlock()
	if d {
		c.dropped.Add(1)
	}
	return d
}

func (c *Conn) pump() {
	defer close(c.queue)
	buf := make([]byte, 65536)
	for {
		n, from, err := c.inner.ReadFrom(buf)
		if err != nil {
			c.readErr = err
			return
		}
		if c.drop() {
			continue
		}
		p := packet{b: append([]byte(nil), buf[:n]...), from: from, due: time.Now().Add(c.rtt)}
		select {
		case c.queue <- p:
		case <-c.done:
			return
		}
	}
}

// ReadFrom returns the next datagram that survived, once its delay is over.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	var timer <-chan time.Time
	if d := c.deadline.Load(); d != nil && !d.IsZero() {
		wait := time.Until(*d)
		if wait <= 0 {
			return 0, nil, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	if c.pending == nil {
		select {
		case p, ok := <-c.queue:
			if !ok {
				if c.readErr != nil {
					return 0, nil, c.readErr
				}
				return 0, nil, net.ErrClosed
			}
			c.pending = &p
		case <-timer:
			return 0, nil, os.ErrDeadlineExceeded
		}
	}
	if wait := time.Until(c.pending.due); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-timer:
			return 0, nil, os.ErrDeadlineExceeded
		}
	}
	p := c.pending
	c.pending = nil
	return copy(b, p.b), p.from, nil
}

// WriteTo sends b unless the RNG drops it (then it reports success, as the
// network would).
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.drop() {
		return len(b), nil
	}
	return c.inner.WriteTo(b, addr)
}

// Close closes the wrapped conn and stops the reader.
func (c *Conn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.inner.Close()
}

// LocalAddr returns the wrapped conn's address.
func (c *Conn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

// SetDeadline sets the read deadline and the wrapped conn's write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.inner.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline for ReadFrom.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.deadline.Store(&t)
	return nil
}

// SetWriteDeadline sets the wrapped conn's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.inner.SetWriteDeadline(t) }

var _ net.PacketConn = (*Conn)(nil)
