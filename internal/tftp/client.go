package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Client downloads files over TFTP. The zero value asks for no options
// (RFC 1350 lockstep, 512-byte blocks).
type Client struct {
	Blksize    int  // 0 or 512: do not ask
	Windowsize int  // 0 or 1: do not ask (lockstep)
	Tsize      bool // ask for the transfer size
	// Timeout is the retransmit timeout; from 1s up it is also asked from the
	// server (RFC 2349, whole seconds). 0 => 1s, not asked.
	Timeout time.Duration
	Retries int // 0 => 5
	// Dial returns the socket of one transfer; nil => a new UDP socket.
	// Tests wrap it to inject loss and delay.
	Dial func() (net.PacketConn, error)
	// Connect connects a *net.UDPConn socket to the server's transfer
	// port (TID) once it answers: the kernel then drops datagrams from any
	// other source (they get no "unknown transfer ID" ERROR), and packets
	// go out without an address lookup each. A load generator (pxed storm)
	// sets it to spend less CPU per block; probes leave it off.
	Connect bool
}

// pconn is the socket of one client transfer with allocation-free paths for
// *net.UDPConn.
type pconn struct {
	net.PacketConn
	udp  *net.UDPConn
	peer netip.AddrPort // the address the socket is connected to (connect)
}

func (c pconn) read(b []byte) (int, netip.AddrPort, error) {
	if c.peer.IsValid() {
		n, err := c.udp.Read(b)
		return n, c.peer, err
	}
	if c.udp != nil {
		return c.udp.ReadFromUDPAddrPort(b)
	}
	n, a, err := c.ReadFrom(b)
	var ap netip.AddrPort
	if ua, ok := a.(*net.UDPAddr); ok {
		ap = ua.AddrPort()
	}
	return n, ap, err
}

func (c pconn) write(b []byte, to netip.AddrPort) error {
	var err error
	switch {
	case c.peer.IsValid() && to == c.peer:
		_, err = c.udp.Write(b)
	case c.peer.IsValid():
		return fmt.Errorf("tftp: send to %v: the socket is connected to %v", to, c.peer)
	case c.udp != nil:
		_, err = c.udp.WriteToUDPAddrPort(b, to)
	default:
		_, err = c.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
	if err != nil {
		return fmt.Errorf("tftp: send to %v: %w", to, err)
	}
	return nil
}

// connect connects the socket to peer (connect(2) on a UDP socket): from
// then on read and write use it without addresses.
func (c *pconn) connect(peer netip.AddrPort) error {
	if c.udp == nil {
		return errors.New("tftp: connect: not a UDP socket")
	}
	rc, err := c.udp.SyscallConn()
	if err != nil {
		return fmt.Errorf("tftp: connect to %v: %w", peer, err)
	}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		local, err := unix.Getsockname(int(fd))
		if err != nil {
			cerr = err
			return
		}
		var sa unix.Sockaddr
		switch local.(type) {
		case *unix.SockaddrInet4:
			if !peer.Addr().Unmap().Is4() {
				cerr = errors.New("an IPv6 peer on an IPv4 socket")
				return
			}
			sa = &unix.SockaddrInet4{Port: int(peer.Port()), Addr: peer.Addr().Unmap().As4()}
		default:
			sa = &unix.SockaddrInet6{Port: int(peer.Port()), Addr: peer.Addr().As16()}
		}
		cerr = unix.Connect(int(fd), sa)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("tftp: connect to %v: %w", peer, err)
	}
	c.peer = peer
	return nil
}

// Get downloads filename from server into w. The returned Transfer describes
// the transfer even when err is not nil.
func (c *Client) Get(ctx context.Context, server netip.AddrPort, filename string, w io.Writer) (Transfer, error) {
	tr := Transfer{Filename: filename, Client: server, Blksize: DefaultBlksize, Windowsize: 1, Size: -1, Start: time.Now()}
	err := c.get(ctx, server, filename, w, &tr)
	tr.Dur = time.Since(tr.Start)
	tr.Err = err
	var pe *PeerError
	tr.Aborted = errors.As(err, &pe)
	return tr, err
}

func (c *Client) get(ctx context.Context, server netip.AddrPort, filename string, w io.Writer, tr *Transfer) error {
	var raw net.PacketConn
	var err error
	if c.Dial != nil {
		raw, err = c.Dial()
	} else {
		network := "udp"
		if server.Addr().Is4() {
			network = "udp4"
		}
		raw, err = net.ListenUDP(network, &net.UDPAddr{})
	}
	if err != nil {
		return fmt.Errorf("tftp: get %q: socket: %w", filename, err)
	}
	conn := pconn{PacketConn: raw}
	conn.udp, _ = raw.(*net.UDPConn)
	if conn.udp != nil && c.Windowsize > 1 {
		// A whole window must fit the receive buffer, or it overflows and
		// every window waits for a timeout (the kernel caps at rmem_max).
		conn.udp.SetReadBuffer(min(2*c.Windowsize*(max(c.Blksize, DefaultBlksize)+64), 8<<20))
	}
	closeConn := true
	defer func() {
		if closeConn {
			raw.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { raw.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	x := newXfer(c, server, filename, w, tr)
	// The timeout is due curRTO after the last packet received or sent.
	// The socket's deadline moves only when it would fire later than that,
	// or when it fires early (packets came since): one timer update per
	// timeout rather than one per block.
	var due, armed time.Time
	arm := func(at time.Time) error {
		if err := raw.SetReadDeadline(at); err != nil {
			return err
		}
		armed = at
		if ctx.Err() != nil { // canceled meanwhile: the deadline above replaced AfterFunc's
			raw.SetReadDeadline(time.Unix(1, 0))
		}
		return nil
	}
	read := func(buf []byte) (int, netip.AddrPort, error) {
		due = time.Now().Add(x.curRTO)
		if armed.IsZero() || due.Before(armed) {
			if err := arm(due); err != nil {
				return 0, netip.AddrPort{}, err
			}
		}
		for {
			n, from, err := conn.read(buf)
			switch {
			case err == nil || ctx.Err() != nil:
				return n, from, err
			case conn.peer.IsValid() && errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP error for the connected socket: firmware ignores those.
			case errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(due):
				if err := arm(due); err != nil {
					return 0, netip.AddrPort{}, err
				}
			default:
				if errors.Is(err, os.ErrDeadlineExceeded) {
					armed = time.Time{}
				}
				return n, from, err
			}
		}
	}
	send := func(o out) error {
		if o.b == nil {
			return nil
		}
		if err := conn.write(o.b, o.to); err != nil && !o.quiet {
			return err
		}
		return nil
	}
	if err := send(x.request()); err != nil {
		return err
	}
	buf := make([]byte, 4+MaxBlksize)
	for {
		n, from, err := read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("tftp: get %q: %w", filename, ctx.Err())
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("tftp: get %q: %w", filename, err)
			}
			o, err := x.timeout()
			if err != nil {
				return err
			}
			if err := send(o); err != nil {
				return err
			}
			continue
		}
		hadTID := x.tid.IsValid()
		o, done, err := x.packet(buf[:n], from)
		if !hadTID && x.tid.IsValid() && c.Connect && conn.udp != nil {
			if err := conn.connect(x.tid); err != nil {
				return fmt.Errorf("tftp: get %q: %w", filename, err)
			}
		}
		if serr := send(o); serr != nil && err == nil {
			return serr
		}
		if err != nil {
			return err
		}
		if done {
			closeConn = false
			go dally(raw, conn, x, x.rto)
			return nil
		}
	}
}

// dally re-acknowledges the last block for one timeout after the transfer,
// in case our final ACK was lost (RFC 1350 §6), then closes the socket.
func dally(raw net.PacketConn, conn pconn, x *xfer, wait time.Duration) {
	defer raw.Close()
	ack := appendAck(nil, x.last)
	buf := make([]byte, 4+MaxBlksize)
	raw.SetReadDeadline(time.Now().Add(wait))
	for range 16 {
		n, from, err := conn.read(buf)
		if err != nil {
			return
		}
		if x.finalData(buf[:n], from) {
			conn.write(ack, x.tid)
		}
	}
}
