package tftp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// mcClient is one client of a multicast session.
type mcClient struct {
	addr   netip.AddrPort
	req    Request
	neg    Negotiated
	start  time.Time
	master bool // told mc=1 (RFC 2090) or the PXE requester
	done   bool // reported: finished, failed or aborted
}

// mcSession sends one file to one group. Its goroutine (run) owns the
// stream: which client is master, what it acknowledged, what to send next.
// Clients join from the listener's goroutine under mu.
type mcSession struct {
	srv       *Server
	mc        *Multicast
	key       mcKey
	group     netip.AddrPort
	conn      *net.UDPConn
	f, data   File // f as opened; data reads it (maybe from the shared cache)
	release   func()
	size      int64
	bs        int
	last      int // number of the last block, the short one
	start     time.Time
	allocated bool // group taken by allocGroup, freed at the end

	mu      sync.Mutex
	clients []*mcClient // in join order
	byAddr  map[netip.AddrPort]*mcClient
	ended   bool
	doneOK  int // clients that got the whole file

	bytes, packets int64 // run's goroutine only
}

// join adds a client (or answers a repeated request again); false when the
// session is full or ending. Callers hold srv.mu.
func (ss *mcSession) join(from netip.AddrPort, req Request, neg Negotiated) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ended {
		return false
	}
	if c := ss.byAddr[from]; c != nil {
		if !c.done && !ss.key.pxe {
			ss.sendOACK(c) // its OACK was lost
		}
		return true
	}
	if len(ss.clients) >= ss.mc.maxClients() {
		return false
	}
	c := &mcClient{addr: from, req: req, neg: neg, start: time.Now()}
	ss.clients = append(ss.clients, c)
	ss.byAddr[from] = c
	if s := ss.srv; s.OnStart != nil {
		s.OnStart(req)
	}
	ss.srv.logger().Debug("tftp: multicast client joined", "file", ss.key.name, "client", from,
		"group", ss.group, "clients", len(ss.clients))
	if !ss.key.pxe && len(ss.clients) > 1 {
		ss.sendOACK(c) // mc=0 until run makes it master
	}
	return true
}

// sendOACK tells c the session's options and whether it is master; ss.mu held.
func (ss *mcSession) sendOACK(c *mcClient) {
	opts := append(append([]Option(nil), c.neg.Ack...), multicastOption(ss.group, c.master))
	ss.write(AppendPacket(nil, Packet{Op: OpOACK, Options: opts}), c.addr)
}

func (ss *mcSession) write(b []byte, to netip.AddrPort) {
	if _, err := ss.conn.WriteToUDPAddrPort(b, to); err != nil && !errors.Is(err, net.ErrClosed) {
		// ENOBUFS and the like are packet loss: retransmission deals with it.
		ss.srv.logger().Debug("tftp: multicast send failed", "to", to, "err", err)
	}
}

// nextMaster makes the oldest client not done master and returns it; with
// none left it ends the session (no new client can join it) and returns nil.
func (ss *mcSession) nextMaster() *mcClient {
	s := ss.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, c := range ss.clients {
		if !c.done {
			c.master = true
			if !ss.key.pxe {
				ss.sendOACK(c)
			}
			return c
		}
	}
	ss.ended = true
	if s.sessions[ss.key] == ss {
		delete(s.sessions, ss.key)
	}
	return nil
}

// finish reports c's transfer once.
func (ss *mcSession) finish(c *mcClient, err error) {
	ss.mu.Lock()
	if c.done {
		ss.mu.Unlock()
		return
	}
	c.done, c.master = true, false
	if err == nil {
		ss.doneOK++
	}
	ss.mu.Unlock()
	s := ss.srv
	tr := Transfer{Filename: c.req.Filename, Client: c.addr, Blksize: ss.bs, Windowsize: c.neg.Windowsize,
		Size: ss.size, Start: c.start, Dur: time.Since(c.start), Err: err, Multicast: ss.group}
	var pe *PeerError
	switch {
	case err == nil:
		tr.Bytes = ss.size
		s.ok.Add(1)
		s.bytes.Add(ss.size)
		s.logger().Info("tftp: multicast transfer done", "file", tr.Filename, "client", c.addr, "group", ss.group,
			"bytes", ss.size, "dur", tr.Dur)
	case errors.As(err, &pe):
		tr.Aborted = true
		s.aborted.Add(1)
		s.logger().Debug("tftp: multicast transfer aborted by client", "file", tr.Filename, "client", c.addr, "err", err)
	default:
		s.failed.Add(1)
		s.logger().Warn("tftp: multicast transfer failed", "file", tr.Filename, "client", c.addr, "group", ss.group, "err", err)
	}
	if s.OnDone != nil {
		s.OnDone(tr)
	}
}

// run is the session's goroutine: master after master, it sends what the
// master acknowledges it lacks, to the group, until no client is left.
func (ss *mcSession) run() {
	s := ss.srv
	defer ss.close()
	buf := make([]byte, 4+ss.bs)
	rbuf := make([]byte, 1500)
	rto := s.timeout()
	var (
		master     *mcClient
		acked      int  // blocks the master has from block 1 on
		next       int  // next block to send
		awaiting   bool // master told, no ACK from it yet
		tries      int
		win        int
		lastActive time.Time
		handover   time.Time // when master was made master
	)
	send := func(from, to int, unicast bool) error {
		for k := from; k <= to && k <= ss.last; k++ {
			pkt, err := ss.block(buf, k)
			if err != nil {
				return err
			}
			copies := 1
			if unicast {
				ss.write(pkt, master.addr)
				copies++
			}
			ss.write(pkt, ss.group)
			ss.bytes += int64(copies * (len(pkt) - 4))
			ss.packets += int64(copies)
			s.mcBytes.Add(int64(copies * (len(pkt) - 4)))
		}
		return nil
	}
	for {
		if master == nil {
			if master = ss.nextMaster(); master == nil {
				return
			}
			acked, next, tries, win = -1, 0, 0, max(1, master.neg.Windowsize)
			rto = s.timeout()
			if master.neg.Timeout > 0 {
				rto = master.neg.Timeout
			}
			awaiting, handover = !ss.key.pxe, time.Now()
			if ss.key.pxe {
				// PXE 2.1 MTFTP: block 1 to the requester, which then
				// acknowledges, and to the group for the listeners.
				acked, next = 0, 2
				if err := send(1, 1, true); err != nil {
					ss.failAll(err)
					return
				}
			}
			lastActive = time.Now()
		}
		ss.conn.SetReadDeadline(lastActive.Add(rto))
		n, from, err := ss.conn.ReadFromUDPAddrPort(rbuf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if tries++; tries >= ss.mc.tries() {
				ss.finish(master, fmt.Errorf("tftp: %q: multicast master client silent after %d timeouts of %v: %w",
					ss.key.name, tries, rto, errNoAck))
				master = nil
				continue
			}
			s.resent.Add(1)
			s.logger().Debug("tftp: multicast master silent: sending again", "file", ss.key.name, "client", master.addr,
				"acked", acked, "awaiting_first_ack", awaiting, "tries", tries, "timeout", rto)
			switch {
			case awaiting:
				ss.mu.Lock()
				ss.sendOACK(master)
				ss.mu.Unlock()
			default:
				next = acked + 1
				if err := send(next, acked+win, ss.key.pxe && acked == 0); err != nil {
					ss.failAll(err)
					return
				}
				next = min(acked+win, ss.last) + 1
			}
			lastActive = time.Now()
			continue
		}
		if err != nil {
			ss.failAll(fmt.Errorf("%w: %w", errSessionClosed, err))
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		p, err := ParsePacket(rbuf[:n])
		if err != nil {
			s.malformed.Add(1)
			continue
		}
		ss.mu.Lock()
		c := ss.byAddr[from]
		ss.mu.Unlock()
		if c == nil || c.done {
			if p.Op != OpERROR {
				ss.write(appendError(nil, ErrCodeUnknownTID, "unknown transfer ID"), from)
			}
			continue
		}
		switch p.Op {
		case OpERROR:
			ss.finish(c, &PeerError{Code: p.ErrCode, Message: p.ErrMsg})
			if c == master {
				master = nil
			}
		case OpACK:
			k := int(p.Block)
			if c != master {
				// RFC 2090: only the master acknowledges. A client done
				// with the file says so; another is told it is not master.
				if k >= ss.last {
					ss.finish(c, nil)
				} else if !ss.key.pxe {
					ss.mu.Lock()
					ss.sendOACK(c)
					ss.mu.Unlock()
				}
				continue
			}
			if awaiting {
				s.logger().Debug("tftp: multicast master acknowledged", "file", ss.key.name, "client", c.addr,
					"block", k, "of", ss.last, "after", time.Since(handover))
			}
			awaiting, tries, lastActive = false, 0, time.Now()
			if k >= ss.last {
				ss.finish(c, nil)
				master = nil
				continue
			}
			if k < acked {
				continue // late ACK of a block already acknowledged
			}
			if k == acked && win > 1 {
				next = k + 1 // a repeated ACK names a gap (atftp's extra ACK): go back
			}
			acked = k
			next = max(next, k+1)
			end := min(acked+win, ss.last)
			if next <= end {
				if err := send(next, end, false); err != nil {
					ss.failAll(err)
					return
				}
				next = end + 1
			}
		default:
			ss.write(appendError(nil, ErrCodeIllegalOperation, "expected ACK"), from)
		}
	}
}

// block encodes DATA block k (1-based) into buf.
func (ss *mcSession) block(buf []byte, k int) ([]byte, error) {
	putDataHeader(buf, uint16(k))
	off := int64(k-1) * int64(ss.bs)
	n := int(max(0, min(int64(ss.bs), ss.size-off)))
	m, err := ss.data.ReadAt(buf[4:4+n], off)
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("tftp: read %q at %d: %w", ss.key.name, off, err)
	}
	return buf[:4+n], nil
}

// failAll reports every client not done with err.
func (ss *mcSession) failAll(err error) {
	ss.mu.Lock()
	list := append([]*mcClient(nil), ss.clients...)
	ss.mu.Unlock()
	for _, c := range list {
		if !c.done && errors.Is(err, errSessionClosed) {
			err = fmt.Errorf("%w: %w", err, ErrServerClosed)
		}
		ss.finish(c, err)
	}
}

// close releases what the session holds: socket, file, group, its place.
func (ss *mcSession) close() {
	s := ss.srv
	s.mu.Lock()
	ss.mu.Lock()
	ss.ended = true
	ss.mu.Unlock()
	if s.sessions[ss.key] == ss {
		delete(s.sessions, ss.key)
	}
	s.mu.Unlock()
	ss.conn.Close()
	if ss.release != nil {
		ss.release()
	}
	ss.f.Close()
	if ss.allocated {
		ss.mc.freeGroup(ss.group.Addr())
	}
	s.mcActive.Add(-1)
	ss.mu.Lock()
	clients, doneOK := len(ss.clients), ss.doneOK
	ss.mu.Unlock()
	if ss.mc.OnSession != nil {
		ss.mc.OnSession(MulticastSession{Filename: ss.key.name, Group: ss.group, PXE: ss.key.pxe, Size: ss.size,
			Blksize: ss.bs, Clients: clients, Done: doneOK, Bytes: ss.bytes, Packets: ss.packets,
			Start: ss.start, Dur: time.Since(ss.start)})
	}
	s.logger().Info("tftp: multicast session ended", "file", ss.key.name, "group", ss.group, "clients", clients,
		"done", doneOK, "bytes", ss.bytes, "dur", time.Since(ss.start))
	s.wg.Done()
}
