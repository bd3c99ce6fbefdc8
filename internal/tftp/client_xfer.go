package tftp

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// xfer is one client download as a state machine, driven by the packets
// that arrive and by its retransmit timeout: Client.Get drives it from a
// blocking socket, ClientEngine from one epoll loop for many transfers.
// It sends nothing itself; each step returns the packet to send.
type xfer struct {
	filename string
	server   netip.AddrPort
	w        io.Writer
	tr       *Transfer
	asked    []Option
	rrq      []byte
	rto      time.Duration
	retries  int

	tid      netip.AddrPort // the server's transfer port, once known
	bs, ws   int
	expected uint64 // next block wanted
	inWin    int    // blocks received since our last ACK
	nudged   bool   // sent an ACK for an out-of-order block since progress
	lastSent []byte // packet to resend on timeout
	ack      []byte
	tries    int
	curRTO   time.Duration // the current retransmit timeout (doubles per retry)
	last     uint16        // the final block, once complete
}

// out is a packet an xfer step asks to send; b nil: nothing. A quiet
// packet (an ERROR) may fail to go without failing the transfer.
type out struct {
	b     []byte
	to    netip.AddrPort
	quiet bool
}

func newXfer(c *Client, server netip.AddrPort, filename string, w io.Writer, tr *Transfer) *xfer {
	x := &xfer{filename: filename, server: server, w: w, tr: tr, rto: c.Timeout, retries: c.Retries,
		bs: DefaultBlksize, ws: 1, expected: 1, ack: make([]byte, 0, 4)}
	if x.rto <= 0 {
		x.rto = time.Second
	}
	if x.retries <= 0 {
		x.retries = 5
	}
	if c.Blksize > 0 && c.Blksize != DefaultBlksize {
		x.asked = append(x.asked, Option{OptBlksize, strconv.Itoa(c.Blksize)})
	}
	if c.Windowsize > 1 {
		x.asked = append(x.asked, Option{OptWindowsize, strconv.Itoa(c.Windowsize)})
	}
	if c.Tsize {
		x.asked = append(x.asked, Option{OptTsize, "0"})
	}
	if c.Timeout >= time.Second {
		x.asked = append(x.asked, Option{OptTimeout, strconv.Itoa(min(int(c.Timeout/time.Second), 255))})
	}
	x.rrq = AppendPacket(nil, Packet{Op: OpRRQ, Filename: filename, Mode: "octet", Options: x.asked})
	x.lastSent, x.curRTO = x.rrq, x.rto
	return x
}

// request is the read request that starts the transfer.
func (x *xfer) request() out { return out{b: x.rrq, to: x.server} }

func (x *xfer) sendAck(block uint16) out {
	x.ack = appendAck(x.ack[:0], block)
	x.lastSent, x.inWin = x.ack, 0
	return out{b: x.ack, to: x.tid}
}

// timeout is a retransmit timeout: the last packet again, or the error
// that ends the transfer after Retries tries.
func (x *xfer) timeout() (out, error) {
	if x.tries++; x.tries > x.retries {
		return out{}, fmt.Errorf("tftp: get %q: block %d: no answer after %d tries: %w", x.filename, x.expected, x.tries, os.ErrDeadlineExceeded)
	}
	x.curRTO = min(x.curRTO*2, maxRTO)
	x.tr.Resent++
	to := x.tid
	if !to.IsValid() {
		to = x.server
	}
	x.nudged = false
	return out{b: x.lastSent, to: to}, nil
}

// packet handles the datagram b from from. done means the file is
// complete (the final ACK is in o); err ends the transfer (after o is sent).
func (x *xfer) packet(b []byte, from netip.AddrPort) (o out, done bool, err error) {
	if !x.tid.IsValid() {
		// RFC 1350 §4: the first answer's source port is the server's TID.
		if from.Addr().Unmap() != x.server.Addr().Unmap() {
			return out{}, false, nil
		}
		x.tid = from
		x.tr.Client = from
		x.tr.FirstReply = time.Since(x.tr.Start)
	} else if from != x.tid {
		return out{b: appendError(nil, ErrCodeUnknownTID, "unknown transfer ID"), to: from, quiet: true}, false, nil
	}
	p, err := ParsePacket(b)
	if err != nil {
		return out{}, false, nil
	}
	switch p.Op {
	case OpERROR:
		return out{}, false, fmt.Errorf("tftp: get %q: %w", x.filename, &PeerError{Code: p.ErrCode, Message: p.ErrMsg})
	case OpOACK:
		if x.expected != 1 || x.inWin != 0 {
			return out{}, false, nil // a resent OACK after data started
		}
		neg, tsize, err := AcceptOACK(x.asked, p.Options)
		if err != nil {
			return out{b: appendError(nil, ErrCodeOptionNegotiation, err.Error()), to: x.tid, quiet: true}, false,
				fmt.Errorf("tftp: get %q: %w", x.filename, err)
		}
		x.bs, x.ws = neg.Blksize, neg.Windowsize
		x.tr.Blksize, x.tr.Windowsize, x.tr.Size = x.bs, x.ws, tsize
		x.tries, x.curRTO = 0, x.rto
		return x.sendAck(0), false, nil
	case OpDATA:
		if len(p.Data) > x.bs {
			return out{}, false, nil
		}
		if p.Block != uint16(x.expected) {
			// A gap (RFC 7440: ACK the last block in order so the server
			// resends from there) or a resent old block (our ACK was
			// lost). One ACK per event, not one per packet.
			if !x.nudged || x.ws == 1 {
				x.nudged = true
				return x.sendAck(uint16(x.expected - 1)), false, nil
			}
			return out{}, false, nil
		}
		if _, err := x.w.Write(p.Data); err != nil {
			return out{b: appendError(nil, ErrCodeDiskFull, "write failed"), to: x.tid, quiet: true}, false,
				fmt.Errorf("tftp: get %q: write: %w", x.filename, err)
		}
		x.tr.Bytes += int64(len(p.Data))
		x.expected++
		x.inWin++
		x.tries, x.curRTO, x.nudged = 0, x.rto, false
		if len(p.Data) < x.bs {
			x.last = p.Block
			return x.sendAck(p.Block), true, nil
		}
		if x.inWin >= x.ws {
			return x.sendAck(p.Block), false, nil
		}
	}
	return out{}, false, nil
}

// finalData reports whether b is the server's final DATA block again (our
// final ACK was lost: RFC 1350 §6, the client dallies and ACKs it again).
func (x *xfer) finalData(b []byte, from netip.AddrPort) bool {
	return from == x.tid && len(b) >= 4 && Opcode(uint16(b[0])<<8|uint16(b[1])) == OpDATA &&
		uint16(b[2])<<8|uint16(b[3]) == x.last
}
