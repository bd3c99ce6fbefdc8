// Package connlimit bounds the TCP connections a server holds: in total and
// per client address. Past a bound it closes the connection idle the longest
// (of that client, or of anybody for the total) to make room, and refuses
// the new one only when every connection is busy. It knows which connections
// are idle from net/http's ConnState hook.
package connlimit

import (
	"container/list"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"pxed/internal/lograte"
)

// Listener wraps a net.Listener with the bounds. Set Max and PerClient
// before Accept is first called; install ConnState as the http.Server's
// ConnState hook so idle connections can be reclaimed.
type Listener struct {
	net.Listener
	Max       int          // connections open at once; <= 0 means no bound
	PerClient int          // connections per client address; <= 0 means no bound
	Logger    *slog.Logger // refusals, at most once per interval; nil discards

	mu       sync.Mutex
	open     int
	byIP     map[netip.Addr]*client
	idle     list.List // of *conn, idle the longest first
	refused  atomic.Uint64
	reclaims atomic.Uint64
	warn     lograte.Limiter
}

type client struct {
	open int
	idle list.List // of *conn, this client's, idle the longest first
}

// conn is an accepted connection; its idle elements are set while net/http
// reports it idle.
type conn struct {
	net.Conn
	l        *Listener
	ip       netip.Addr
	once     sync.Once
	idleAll  *list.Element
	idleMine *list.Element
}

// Stats are the listener's counters.
type Stats struct {
	Open      int    // connections open now
	Refused   uint64 // connections closed at once: every slot busy
	Reclaimed uint64 // idle connections closed to make room for new ones
}

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Open: l.open, Refused: l.refused.Load(), Reclaimed: l.reclaims.Load()}
}

// Accept returns the next connection within the bounds; connections over a
// bound that no idle connection can make room for are closed and counted.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := netip.Addr{}
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = ta.AddrPort().Addr().Unmap()
		}
		if wc, ok := l.admit(c, ip); ok {
			return wc, nil
		}
		c.Close()
	}
}

// admit takes a slot for a connection from ip, reclaiming idle ones.
func (l *Listener) admit(c net.Conn, ip netip.Addr) (net.Conn, bool) {
	var victims []*conn
	l.mu.Lock()
	if l.byIP == nil {
		l.byIP = make(map[netip.Addr]*client)
	}
	cl := l.byIP[ip]
	if cl == nil {
		cl = &client{}
		l.byIP[ip] = cl
	}
	why := ""
	if l.PerClient > 0 && cl.open >= l.PerClient {
		if e := cl.idle.Front(); e != nil {
			victims = append(victims, l.unidleLocked(e.Value.(*conn)))
		} else {
			why = "per-client connection limit"
		}
	}
	if why == "" && l.Max > 0 && l.open-len(victims) >= l.Max {
		if e := l.idle.Front(); e != nil {
			victims = append(victims, l.unidleLocked(e.Value.(*conn)))
		} else {
			why = "connection limit"
		}
	}
	if why != "" {
		if cl.open == 0 {
			delete(l.byIP, ip)
		}
		l.mu.Unlock()
		// Victims reclaimed for a connection that is refused anyway would
		// have been closed for nothing; there are none: a refusal happens
		// only when no idle connection was found at that step.
		for _, v := range victims {
			v.reclaim()
		}
		n := l.refused.Add(1)
		if ok, sup := l.warn.Allow(why); ok && l.Logger != nil {
			l.Logger.Warn("http connection refused", "why", why, "client", ip.String(), "open", l.Stats().Open,
				"max", l.Max, "per_client", l.PerClient, "refused_total", n, "suppressed", sup)
		}
		return nil, false
	}
	cl.open++
	l.open++
	l.mu.Unlock()
	for _, v := range victims {
		v.reclaim()
	}
	return &conn{Conn: c, l: l, ip: ip}, true
}

// unidleLocked takes c off the idle lists so nobody else reclaims it.
func (l *Listener) unidleLocked(c *conn) *conn {
	if c.idleAll != nil {
		l.idle.Remove(c.idleAll)
		c.idleAll = nil
	}
	if c.idleMine != nil {
		if cl := l.byIP[c.ip]; cl != nil {
			cl.idle.Remove(c.idleMine)
		}
		c.idleMine = nil
	}
	return c
}

func (c *conn) reclaim() {
	c.l.reclaims.Add(1)
	c.Close()
}

// ReadFrom hands r to the connection's own ReadFrom: net/http sends a file
// with sendfile(2) only through a connection that has one (response.ReadFrom
// asks its connection for io.ReaderFrom); without it every download was read
// into user memory and written back, 40 % of pxed's CPU in a 500-machine
// storm.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// Close closes the connection and frees its slot (once).
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		l := c.l
		l.mu.Lock()
		l.unidleLocked(c)
		l.open--
		if cl := l.byIP[c.ip]; cl != nil {
			if cl.open--; cl.open <= 0 {
				delete(l.byIP, c.ip)
			}
		}
		l.mu.Unlock()
	})
	return err
}

// ConnState is the http.Server ConnState hook: it tracks which connections
// are idle (between keep-alive requests) and may be reclaimed.
func (l *Listener) ConnState(nc net.Conn, s http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch s {
	case http.StateIdle:
		if c.idleAll == nil {
			c.idleAll = l.idle.PushBack(c)
			if cl := l.byIP[c.ip]; cl != nil {
				c.idleMine = cl.idle.PushBack(c)
			}
		}
	default:
		l.unidleLocked(c)
	}
}
