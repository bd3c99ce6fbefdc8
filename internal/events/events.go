// Package events keeps the boot timeline of every machine: each protocol step
// (DHCP offer, NBP download, script, kernel, initrd) is an Event, kept per
// machine in a bounded ring and fanned out to subscribers (the demo, the API,
// the web page, metrics).
package events

import (
	"context"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Stage names one step of a network boot.
type Stage string

// The stages of a boot, in the order a machine normally goes through them.
const (
	StageDiscover    Stage = "dhcp-discover" // a PXE DHCPDISCOVER was seen
	StageOffer       Stage = "dhcp-offer"    // pxed answered with boot info
	StageRequest     Stage = "dhcp-request"  // a DHCPREQUEST was seen
	StageAck         Stage = "dhcp-ack"      // pxed acknowledged (boot server or full DHCP)
	StageNak         Stage = "dhcp-nak"      // pxed refused a DHCPREQUEST (full DHCP)
	StageIgnored     Stage = "dhcp-ignored"  // a packet from this machine was not answered
	StageTFTPStart   Stage = "tftp-start"    // a TFTP read request was accepted
	StageTFTPDone    Stage = "tftp-done"     // a TFTP transfer completed
	StageTFTPError   Stage = "tftp-error"    // a TFTP transfer failed or was aborted
	StageScript      Stage = "script"        // the per-machine iPXE script was served
	StageKernel      Stage = "kernel"        // the kernel was served over HTTP
	StageInitrd      Stage = "initrd"        // an initrd was served over HTTP
	StageHTTP        Stage = "http"          // another file was served over HTTP
	StageHTTPError   Stage = "http-error"    // an HTTP request failed
	StageUnknownArch Stage = "unknown-arch"  // a PXE client with an architecture pxed has no NBP for

	// Anomalies on the boot network (issue 13): recorded on the machine
	// involved, and logged at warn level at most once per interval.
	StagePoolExhausted Stage = "dhcp-pool-exhausted" // a client got no address: its pool is empty
	StageStarvation    Stage = "dhcp-starvation"     // many new client IDs in a short time
	StageForeign       Stage = "dhcp-foreign"        // DECLINE/RELEASE from an address other than the lease holder's
	StageClaimMismatch Stage = "claim-mismatch"      // a URL names another machine than the one at its source address
	StageRefused       Stage = "limit-refused"       // a request refused by a resource limit
)

// Event is one step of one machine's boot.
type Event struct {
	Time   time.Time     `json:"time"`
	MAC    string        `json:"mac"`                // lower-case colon form; "" when unknown
	IP     netip.Addr    `json:"ip,omitzero"`        // the machine's address when known
	Stage  Stage         `json:"stage"`              // what happened
	Detail string        `json:"detail,omitempty"`   // file name, URL, reason
	Bytes  int64         `json:"bytes,omitempty"`    // bytes transferred, for downloads
	Dur    time.Duration `json:"duration,omitempty"` // how long a download took
}

// Recorder takes events. Protocol packages depend on this interface only.
type Recorder interface {
	Record(Event)
}

// Discard is a Recorder that drops every event.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(Event) {}

// DefaultPerMachine is the number of events kept per machine when Log.PerMachine is 0.
const DefaultPerMachine = 256

// DefaultMaxMachines is the number of machines kept when Log.MaxMachines is 0;
// past it the machine seen least recently is forgotten.
const DefaultMaxMachines = 100000

// Log keeps the recent events of each machine and fans them out to
// subscribers. The zero value is ready to use. It also learns which address
// each MAC has, so TFTP and HTTP (which see only addresses) can name the machine.
type Log struct {
	PerMachine  int          // events kept per machine; 0 means DefaultPerMachine
	MaxMachines int          // machines kept; 0 means DefaultMaxMachines
	Logger      *slog.Logger // each event is logged here at Info; nil logs nothing
	Now         func() time.Time

	mu       sync.Mutex
	machines map[string]*machine
	byIP     map[netip.Addr]string
	subs     map[int]chan Event
	nextSub  int
}

type machine struct {
	events []Event
	last   time.Time
}

// Learn records that mac currently uses ip.
func (l *Log) Learn(ip netip.Addr, mac string) {
	if !ip.IsValid() || mac == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP == nil {
		l.byIP = make(map[netip.Addr]string)
	}
	l.byIP[ip.Unmap()] = mac
}

// MACForIP returns the MAC last learned for ip, or "".
func (l *Log) MACForIP(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byIP[ip.Unmap()]
}

// Record stores e (filling in Time and, from the address, MAC when missing),
// logs it and sends it to every subscriber that keeps up; a subscriber whose
// buffer is full misses the event rather than slowing the server down.
func (l *Log) Record(e Event) {
	if e.Time.IsZero() {
		if l.Now != nil {
			e.Time = l.Now()
		} else {
			e.Time = time.Now()
		}
	}
	l.mu.Lock()
	if e.MAC == "" && e.IP.IsValid() {
		e.MAC = l.byIP[e.IP.Unmap()]
	}
	if e.MAC != "" && e.IP.IsValid() {
		if l.byIP == nil {
			l.byIP = make(map[netip.Addr]string)
		}
		l.byIP[e.IP.Unmap()] = e.MAC
	}
	key := e.MAC
	if key == "" && e.IP.IsValid() {
		key = e.IP.String()
	}
	if l.machines == nil {
		l.machines = make(map[string]*machine)
	}
	m := l.machines[key]
	if m == nil {
		l.evictLocked()
		m = &machine{}
		l.machines[key] = m
	}
	per := l.PerMachine
	if per <= 0 {
		per = DefaultPerMachine
	}
	if len(m.events) >= per {
		copy(m.events, m.events[1:])
		m.events = m.events[:len(m.events)-1]
	}
	m.events = append(m.events, e)
	m.last = e.Time
	for _, ch := range l.subs {
		select {
		case ch <- e:
		default:
		}
	}
	l.mu.Unlock()
	if l.Logger != nil && l.Logger.Enabled(context.Background(), slog.LevelInfo) {
		attrs := []any{"mac", e.MAC, "stage", string(e.Stage)}
		if e.IP.IsValid() {
			attrs = append(attrs, "ip", e.IP.String())
		}
		if e.Detail != "" {
			attrs = append(attrs, "detail", e.Detail)
		}
		if e.Bytes != 0 {
			attrs = append(attrs, "bytes", e.Bytes)
		}
		if e.Dur != 0 {
			attrs = append(attrs, "duration", e.Dur)
		}
		l.Logger.Info("boot event", attrs...)
	}
}

func (l *Log) evictLocked() {
	max := l.MaxMachines
	if max <= 0 {
		max = DefaultMaxMachines
	}
	if len(l.machines) < max {
		return
	}
	// Forget the least recently seen tenth at once: one sort per max/10
	// new machines keeps Record cheap when a storm brings more machines
	// than the log keeps.
	keys := make([]string, 0, len(l.machines))
	for k := range l.machines {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return l.machines[keys[i]].last.Before(l.machines[keys[j]].last) })
	n := max / 10
	if n < 1 {
		n = 1
	}
	for _, k := range keys[:min(n, len(keys))] {
		delete(l.machines, k)
	}
}

// Timeline returns a copy of the events kept for mac, oldest first.
func (l *Log) Timeline(mac string) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.machines[mac]
	if m == nil {
		return nil
	}
	return append([]Event(nil), m.events...)
}

// Machines returns the keys (MACs, or addresses for machines whose MAC is
// unknown) of every machine with events, sorted.
func (l *Log) Machines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.machines))
	for k := range l.machines {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Subscribe returns a channel that receives every event recorded from now on
// (buffered; events are dropped for a subscriber that falls behind) and a
// function that ends the subscription.
func (l *Log) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer <= 0 {
		buffer = 1024
	}
	ch := make(chan Event, buffer)
	l.mu.Lock()
	if l.subs == nil {
		l.subs = make(map[int]chan Event)
	}
	id := l.nextSub
	l.nextSub++
	l.subs[id] = ch
	l.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.subs, id)
			l.mu.Unlock()
			close(ch)
		})
	}
}
