package tftp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Option names we understand (RFC 2348, 2349, 7440). Compared case-insensitively.
const (
	OptBlksize    = "blksize"
	OptTsize      = "tsize"
	OptTimeout    = "timeout"
	OptWindowsize = "windowsize"
)

// Protocol limits.
const (
	DefaultBlksize    = 512   // RFC 1350
	MinBlksize        = 8     // RFC 2348
	MaxBlksize        = 65464 // RFC 2348
	MaxWindowsize     = 65535 // RFC 7440
	DefaultWindowsize = 64    // our default cap for Server.MaxWindowsize
)

// Limits bound what Negotiate grants.
type Limits struct {
	MaxBlksize    int   // upper bound for blksize (already clamped to the path)
	MaxWindowsize int   // upper bound for windowsize
	Size          int64 // file size for tsize; < 0 if unknown (tsize not acknowledged)
	// WindowBytes caps windowsize so that one window fits this many bytes of
	// the client's socket receive buffer (kernel accounting, see truesize);
	// 0 = no cap.
	WindowBytes int
	// MaxTimeout is the largest RFC 2349 timeout acknowledged; a larger one
	// is not (the server's own timeout applies). 0 = RFC 2349's 255 s.
	MaxTimeout time.Duration
}

// DefaultWindowBytes is the Server's default Limits.WindowBytes: a little under
// Linux's default socket receive buffer (net.core.rmem_default = 212992).
// Clients such as atftp read with that buffer; a window that overflows it
// loses its tail, and only a timeout recovers a lost tail (RFC 7440 §4).
const DefaultWindowBytes = 200000

// truesize estimates the kernel memory one DATA datagram of blksize bytes
// takes in a receive queue (skb truesize), from measurements on Linux 6.x:
// small datagrams use a power-of-two slab, 4-16 KiB ones about 17.7 KiB,
// bigger ones page fragments plus about 1/8.
func truesize(blksize int) int {
	n := blksize + 4 + 8 + 40 // TFTP, UDP, IP headers (IPv6 worst case)
	switch {
	case n+320 <= 4096:
		p := 1024
		for p < n+320 {
			p <<= 1
		}
		return p + 256
	case n <= 16384+512:
		return 17800
	}
	return n + n/8 + 1024
}

// Negotiated is the outcome of RFC 2347 option negotiation.
type Negotiated struct {
	Blksize    int
	Windowsize int
	Timeout    time.Duration // 0 if the client did not ask
	Ack        []Option      // what goes in the OACK, in request order; empty = no OACK
	// TimeoutOverMax is set when the client asked a timeout above
	// Limits.MaxTimeout, which was therefore not acknowledged.
	TimeoutOverMax bool
}

// NegotiationError is returned when a request must be refused with ERROR 8.
type NegotiationError struct {
	Option Option
	Reason string
}

func (e *NegotiationError) Error() string {
	return fmt.Sprintf("tftp: option %s=%q: %s", e.Option.Name, e.Option.Value, e.Reason)
}

// OptionMap returns the options as a map keyed by lower-case name; on
// duplicates the first occurrence wins, as in Negotiate.
func OptionMap(opts []Option) map[string]string {
	if len(opts) == 0 {
		return nil
	}
	m := make(map[string]string, len(opts))
	for _, o := range opts {
		k := strings.ToLower(o.Name)
		if _, dup := m[k]; !dup {
			m[k] = o.Value
		}
	}
	return m
}

// Negotiate applies RFC 2347 to the options of a read request: only options we
// understand and whose values are acceptable are acknowledged, with the value
// we will use; unknown options are ignored. A duplicate option after the first
// is ignored.
//
//   - blksize (RFC 2348): 8..65464; larger requests are clamped to lim.MaxBlksize;
//     a value below 8 fails negotiation (ERROR 8).
//   - tsize (RFC 2349): answered with the file size when it is known and not 0.
//   - timeout (RFC 2349): 1..255 seconds, acknowledged as asked; out of range is
//     ignored, and so is a value above lim.MaxTimeout (TimeoutOverMax).
//   - windowsize (RFC 7440): 1..65535, clamped to lim.MaxWindowsize and to what
//     fits lim.WindowBytes at the granted blksize; 0 fails negotiation.
//
// Values that are not decimal numbers are ignored (not acknowledged).
func Negotiate(opts []Option, lim Limits) (Negotiated, error) {
	n := Negotiated{Blksize: DefaultBlksize, Windowsize: 1}
	maxBlk := lim.MaxBlksize
	if maxBlk <= 0 || maxBlk > MaxBlksize {
		maxBlk = MaxBlksize
	}
	maxBlk = max(maxBlk, MinBlksize)
	maxWin := lim.MaxWindowsize
	if maxWin <= 0 || maxWin > MaxWindowsize {
		maxWin = MaxWindowsize
	}
	seen := 0 // bit set of handled options
	winAck := -1
	for _, o := range opts {
		name := strings.ToLower(o.Name)
		var bit int
		switch name {
		case OptBlksize:
			bit = 1
		case OptTsize:
			bit = 2
		case OptTimeout:
			bit = 4
		case OptWindowsize:
			bit = 8
		default:
			continue // RFC 2347: unknown options are not acknowledged
		}
		if seen&bit != 0 {
			continue
		}
		seen |= bit
		v, err := strconv.ParseInt(strings.TrimSpace(o.Value), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case OptBlksize:
			if v < MinBlksize {
				return Negotiated{}, &NegotiationError{o, "blksize below 8 (RFC 2348)"}
			}
			n.Blksize = int(min(v, int64(maxBlk)))
			n.Ack = append(n.Ack, Option{o.Name, strconv.Itoa(n.Blksize)})
		case OptTsize:
			// Size 0 is not acknowledged: curl (through 8.x) refuses an
			// OACK with tsize 0, and an empty file needs no size.
			if lim.Size <= 0 {
				continue
			}
			n.Ack = append(n.Ack, Option{o.Name, strconv.FormatInt(lim.Size, 10)})
		case OptTimeout:
			if v < 1 || v > 255 {
				continue // RFC 2349: out of range, do not acknowledge
			}
			if lim.MaxTimeout > 0 && time.Duration(v)*time.Second > lim.MaxTimeout {
				// RFC 2349: a server that does not accept the value omits
				// the option from the OACK; the client then uses its
				// default and we ours.
				n.TimeoutOverMax = true
				continue
			}
			n.Timeout = time.Duration(v) * time.Second
			n.Ack = append(n.Ack, Option{o.Name, strconv.FormatInt(v, 10)})
		case OptWindowsize:
			if v < 1 {
				return Negotiated{}, &NegotiationError{o, "windowsize below 1 (RFC 7440)"}
			}
			n.Windowsize = int(min(v, int64(maxWin)))
			winAck = len(n.Ack)
			n.Ack = append(n.Ack, Option{o.Name, strconv.Itoa(n.Windowsize)})
		}
	}
	if winAck >= 0 && lim.WindowBytes > 0 {
		// RFC 7440 lets the server answer a smaller windowsize.
		if c := max(1, lim.WindowBytes/truesize(n.Blksize)); n.Windowsize > c {
			n.Windowsize = c
			n.Ack[winAck].Value = strconv.Itoa(c)
		}
	}
	return n, nil
}

// AcceptOACK checks a server's OACK against what a client asked (RFC 2347: a
// server may only acknowledge options the client sent, and RFC 2348/7440 let
// it lower blksize/windowsize, never raise them). It returns the settings to use
// and the tsize the server announced (-1 if none).
func AcceptOACK(asked, oack []Option) (n Negotiated, tsize int64, err error) {
	n = Negotiated{Blksize: DefaultBlksize, Windowsize: 1}
	tsize = -1
	req := OptionMap(asked)
	for _, o := range oack {
		name := strings.ToLower(o.Name)
		want, ok := req[name]
		if !ok {
			return n, -1, &NegotiationError{o, "not requested"}
		}
		v, perr := strconv.ParseInt(strings.TrimSpace(o.Value), 10, 64)
		w, _ := strconv.ParseInt(strings.TrimSpace(want), 10, 64)
		if perr != nil {
			return n, -1, &NegotiationError{o, "not a number"}
		}
		switch name {
		case OptBlksize:
			if v < MinBlksize || v > w {
				return n, -1, &NegotiationError{o, "blksize out of range"}
			}
			n.Blksize = int(v)
		case OptWindowsize:
			if v < 1 || v > w {
				return n, -1, &NegotiationError{o, "windowsize out of range"}
			}
			n.Windowsize = int(v)
		case OptTimeout:
			if v < 1 || v > 255 {
				return n, -1, &NegotiationError{o, "timeout out of range"}
			}
			n.Timeout = time.Duration(v) * time.Second
		case OptTsize:
			if v < 0 {
				return n, -1, &NegotiationError{o, "negative tsize"}
			}
			tsize = v
		default:
			continue
		}
		n.Ack = append(n.Ack, o)
	}
	return n, tsize, nil
}
