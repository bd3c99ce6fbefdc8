// Package tftp is a read-only TFTP server and a TFTP client.
//
// It implements RFC 1350 (each transfer runs from its own ephemeral port, its
// transfer ID), RFC 2347 option negotiation, RFC 2348 blksize, RFC 2349 tsize
// and timeout, and RFC 7440 windowsize, with block-number rollover past 65535
// and retransmission with exponential backoff. Write requests are refused.
// Mode "netascii" is served as "octet" (no conversion): boot files are binary.
//
// The package has three layers: packet.go and options.go are a pure codec and
// negotiation policy; a Handler decides which file a request gets (Dir serves a
// directory confined with os.Root); Server and Client are the loops, one
// goroutine and one reused buffer per transfer.
//
// What one client can make the Server hold is bounded (admission.go):
// MaxTransfers transfers, and so sockets, at once in total and MaxPerClient
// per client address; requests over a limit wait in a queue that holds no
// socket (QueueLen, QueueWait) and start oldest first among the clients under
// their cap, so one address cannot starve another. A full queue, an expired
// wait or a socket the system refuses (EMFILE) is answered ERROR 0 "server
// busy: ..." from the listener (ErrBusy). The RFC 2349 timeout option is
// honoured up to MaxTimeout, and a client that acknowledges nothing is given
// up after 4 timeouts (at least 5 s) rather than the whole retry schedule.
package tftp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// File is what a Handler opens: random access so windowed retransmits need no buffering.
type File interface {
	io.ReaderAt
	io.Closer
}

// Request describes a read request.
type Request struct {
	Filename string
	Client   netip.AddrPort
	Local    netip.Addr        // the server address the request was sent to (IP_PKTINFO); may be unspecified
	Options  map[string]string // lower-case option names as the client sent them
}

// Handler decides what a read request gets. Return an error wrapping ErrNotFound
// or ErrAccess (or any other error -> "undefined" code 0 with the message).
// size is the file length, or -1 if unknown (then tsize is not acknowledged and
// the end of the file is where ReadAt returns fewer bytes than asked).
type Handler func(req Request) (f File, size int64, err error)

var (
	// ErrNotFound makes the server answer ERROR 1 "file not found".
	ErrNotFound = errors.New("file not found")
	// ErrAccess makes the server answer ERROR 2 "access violation".
	ErrAccess = errors.New("access violation")
)

// errorCodeFor maps a Handler error to the code and message sent to the client.
func errorCodeFor(err error) (ErrorCode, string) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return ErrCodeNotFound, "file not found"
	case errors.Is(err, ErrAccess), errors.Is(err, fs.ErrPermission):
		return ErrCodeAccess, "access violation"
	}
	return ErrCodeUndefined, err.Error()
}

// Dir returns a Handler serving files confined to root: no "..", no absolute
// escape, no symlink out (os.Root), leading "/" stripped, backslashes treated
// as "/" (Windows NBPs ask for `boot\x64\...`), directories refused.
func Dir(root string) Handler {
	var (
		mu sync.Mutex
		r  *os.Root
	)
	openRoot := func() (*os.Root, error) {
		mu.Lock()
		defer mu.Unlock()
		if r != nil {
			return r, nil
		}
		var err error
		if r, err = os.OpenRoot(root); err != nil {
			return nil, fmt.Errorf("tftp: open root %q: %w", root, err)
		}
		return r, nil
	}
	return func(req Request) (File, int64, error) {
		rt, err := openRoot()
		if err != nil {
			return nil, 0, err
		}
		name := CleanName(req.Filename)
		if name == "" {
			return nil, 0, fmt.Errorf("tftp: %q: %w", req.Filename, ErrNotFound)
		}
		f, err := rt.Open(name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, 0, fmt.Errorf("tftp: open %q: %w", name, ErrNotFound)
			}
			// os.Root reports escapes ("path escapes from parent") and other
			// refusals; none of them may reveal more than "access violation".
			return nil, 0, fmt.Errorf("tftp: open %q: %w (%v)", name, ErrAccess, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("tftp: stat %q: %w", name, err)
		}
		if !st.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("tftp: %q is not a regular file: %w", name, ErrAccess)
		}
		return f, st.Size(), nil
	}
}

// CleanName turns a requested file name into a root-relative slash path:
// backslashes become "/", leading slashes are stripped. It does not resolve
// ".."; confinement is the job of os.Root.
func CleanName(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	return strings.TrimLeft(name, "/")
}

// Transfer reports the outcome of one transfer (for events/metrics).
type Transfer struct {
	Filename   string
	Client     netip.AddrPort // for Client.Get: the server's transfer address
	Blksize    int
	Windowsize int
	Size       int64 // file size, -1 if unknown
	Bytes      int64 // payload bytes delivered (acknowledged, for the server)
	Start      time.Time
	Dur        time.Duration
	Err        error // nil when complete
	Aborted    bool  // the peer sent ERROR, e.g. UEFI tsize probe error 8
	// Resent is, for the server, the DATA packets sent again after a
	// timeout; for Client.Get, the packets (RRQ, ACK) it sent again after
	// a timeout.
	Resent int64
	// FirstReply is, for Client.Get, the time from the request to the
	// server's first answer (OACK, DATA or ERROR); 0 if none came.
	FirstReply time.Duration
	// Multicast is the group and port of a multicast transfer (RFC 2090 or
	// PXE MTFTP), zero for unicast.
	Multicast netip.AddrPort
}

// PeerError is the error of a transfer the peer ended with an ERROR packet.
type PeerError struct {
	Code    ErrorCode
	Message string
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("tftp: peer error %d: %s", e.Code, e.Message)
}

// Is lets errors.Is(err, ErrNotFound), errors.Is(err, ErrAccess) and
// errors.Is(err, ErrBusy) match the corresponding remote errors (ErrBusy: code
// 0 with a message starting "server busy", as Server sends).
func (e *PeerError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == ErrCodeNotFound
	case ErrAccess:
		return e.Code == ErrCodeAccess
	case ErrBusy:
		return e.Code == ErrCodeUndefined && strings.HasPrefix(e.Message, "server busy")
	}
	return false
}
