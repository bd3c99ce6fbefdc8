package dhcp6

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// bootServiceRepeats are when a boot service Reply (port 4011) goes again
// after the first, counted from it. EDK II sends its boot service Request
// once and reads the answer for 3 s (PxeBcRequestBootService in
// UefiPxeBcDxe/PxeBcDhcp6.c, PXEBC_UDP_TIMEOUT), with no retransmission,
// and it opens the reader only after the Request has left: a Reply that
// its network stack takes in before that is lost, and the machine gives
// up PXE over IPv6 for its next boot option a minute later. pxed's answer
// comes within a millisecond; under an emulator's slow firmware (OVMF in
// QEMU without KVM, 2 boots in 8 on a loaded 2-core host) it lost that
// race; with the copies, 8 in 8 went on, 2 of them on the copy at 200 ms.
// Copies at 200 ms and 1 s arrive once the reader is open and
// cover a reply lost on the wire; a client that already has its answer
// has closed its port and drops them. IPv4 needs none: EDK II's DHCPv4
// boot server discovery retransmits (PxeBcDhcp4Discover).
var bootServiceRepeats = []time.Duration{200 * time.Millisecond, time.Second}

// maxRepeating bounds the destinations with boot service replies waiting
// to be sent again: a flood of requests to 4011 gets its first answers,
// and no more memory than this many copies.
const maxRepeating = 1024

// repeater sends copies of a reply later (see bootServiceRepeats), one
// reply per destination at a time: requests forged with a victim's
// address as their source get it no more than one reply's copies.
type repeater struct {
	delays  []time.Duration
	mu      sync.Mutex
	pending map[netip.AddrPort]bool // destinations with copies still to send
}

// repeat sends a copy of wire to `to` with send at each delay, the first
// counted from now; it reports false (and sends nothing) when copies to
// `to` already wait or maxRepeating replies do. send runs on a timer's
// goroutine; its errors are its own to log.
func (r *repeater) repeat(wire []byte, to netip.AddrPort, send func([]byte)) bool {
	if len(r.delays) == 0 {
		return true
	}
	r.mu.Lock()
	if r.pending[to] || len(r.pending) >= maxRepeating {
		r.mu.Unlock()
		return false
	}
	if r.pending == nil {
		r.pending = make(map[netip.AddrPort]bool)
	}
	r.pending[to] = true
	r.mu.Unlock()
	b := slices.Clone(wire) // the loop reuses its buffer
	last := len(r.delays) - 1
	for i, d := range r.delays { // ascending: the last one frees the destination
		time.AfterFunc(d, func() {
			send(b)
			if i == last {
				r.mu.Lock()
				delete(r.pending, to)
				r.mu.Unlock()
			}
		})
	}
	return true
}

// waiting is how many destinations have copies still to send.
func (r *repeater) waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}
