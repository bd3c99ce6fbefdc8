// Package events keeps the boot timeline of every machine: each protocol step
// (DHCP offer, NBP download, script, kernel, initrd) is an Event, kept per
// machine in a bounded ring and fanned out to subscribers (the demo, the API,
// the web page, metrics).
package events

import (
	"container/list"
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"pxed/internal/lograte"
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
	StageImage       Stage = "image"         // a profile's ISO or disk image was served over HTTP
	StageHTTP        Stage = "http"          // another file was served over HTTP
	StageHTTPError   Stage = "http-error"    // an HTTP request failed
	StageUnknownArch Stage = "unknown-arch"  // a PXE client with an architecture pxed has no NBP for

	// PXE boot menus (PXE 2.1 §2.2.5).
	StageMenu        Stage = "pxe-menu"         // a reply carried a boot menu (the firmware shows it)
	StageMenuItem    Stage = "pxe-menu-item"    // a boot server request for a menu item and layer was answered
	StageMenuUnknown Stage = "pxe-menu-unknown" // a boot server request for an item or layer not served (silent)

	// Anomalies on the boot network (issue 13): recorded on the machine
	// involved, and logged at warn level at most once per interval.
	StagePoolExhausted Stage = "dhcp-pool-exhausted" // a client got no address: its pool is empty
	StageStarvation    Stage = "dhcp-starvation"     // many new client IDs in a short time
	StageForeign       Stage = "dhcp-foreign"        // DECLINE/RELEASE from an address other than the lease holder's
	StageClaimMismatch Stage = "claim-mismatch"      // a URL names another machine than the one at its source address
	StageRefused       Stage = "limit-refused"       // a request refused by a resource limit
)

// Loaders (issue 10): what pxed generates for GRUB and PXELINUX.
const (
	StageLoaderConfig Stage = "loader-config" // a generated GRUB or PXELINUX configuration was served (TFTP or HTTP)
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
	// Claimed is the MAC a request named about itself (an HTTP URL's
	// /boot/MAC/…), which anybody can write: it never decides whose
	// timeline the event joins. When the address's machine is known and
	// differs, the event joins that machine and a claim-mismatch is
	// recorded beside it.
	Claimed string `json:"claimed_mac,omitempty"`
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
const DefaultMaxMachines = 20000

// DefaultMaxBytes is Log.MaxBytes when 0: the memory all timelines may use
// together (as accounted by eventSize).
const DefaultMaxBytes = 64 << 20

// DefaultMaxAddresses is Log.MaxAddresses when 0.
const DefaultMaxAddresses = 65536

// MaxDetail is the longest Detail kept (and logged), in bytes; a longer
// one (a URL of a megabyte, say) is cut and says how long it was.
const MaxDetail = 512

// eventOverhead approximates an Event's memory besides its strings.
const eventOverhead = 128

// Log keeps the recent events of each machine and fans them out to
// subscribers. The zero value is ready to use. It also learns which address
// each MAC has (from DHCP, through Learn), so TFTP and HTTP, which see only
// addresses, can name the machine. Everything it keeps is bounded: events
// per machine, machines, bytes in all, learned addresses.
type Log struct {
	PerMachine   int          // events kept per machine; 0 means DefaultPerMachine
	MaxMachines  int          // machines kept; 0 means DefaultMaxMachines
	MaxBytes     int64        // bytes of events kept in all; 0 means DefaultMaxBytes
	MaxAddresses int          // address→MAC associations kept; 0 means DefaultMaxAddresses
	Logger       *slog.Logger // each event is logged here at Info; nil logs nothing
	// LogRate is the most events logged per second; past it events are
	// still kept and sent, and one line a second later says how many were
	// not logged (a flood must not flood the log). 0 means DefaultLogRate.
	LogRate int
	Now     func() time.Time

	mu       sync.Mutex
	machines map[string]*machine
	lru      list.List // of *machine, least recently seen first
	bytes    int64
	byIP     map[netip.Addr]*learned
	byMAC    map[string]netip.Addr // the address each learned MAC had last
	ipOrder  list.List             // of netip.Addr, oldest learned first
	subs     map[int]*subscriber
	nextSub  int
	// Subscribers get their events in batches (see FollowDelay): the
	// time of the last delivery and the timer of the next one.
	delivered time.Time
	deliver   *time.Timer
	pending   bool // deliver is set to run

	evicted, mismatches, recorded atomic.Uint64
	warn                          lograte.Limiter

	logMu         sync.Mutex
	logSecond     time.Time // start of the current one-second window
	logCount      int       // events logged in it
	logSuppressed int       // events not logged in it
}

// DefaultLogRate is Log.LogRate when 0.
const DefaultLogRate = 200

type machine struct {
	key    string
	events []Event
	bytes  int64
	last   time.Time
	elem   *list.Element
}

type learned struct {
	mac  string
	elem *list.Element
}

// Stats are the log's counters and sizes.
type Stats struct {
	Machines      int    // machines with a timeline
	Bytes         int64  // accounted bytes of all timelines
	Addresses     int    // learned address→MAC associations
	Evicted       uint64 // machines forgotten to stay within MaxMachines or MaxBytes
	ClaimMismatch uint64 // requests whose claimed MAC was not their address's machine
	Recorded      uint64 // events recorded (stored and sent to the subscribers)
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Machines: len(l.machines), Bytes: l.bytes, Addresses: len(l.byIP),
		Evicted: l.evicted.Load(), ClaimMismatch: l.mismatches.Load(), Recorded: l.recorded.Load()}
}

// Learn records that mac currently uses ip. Only what the server knows
// should be learned (an address it leased, or the address a PXE client's
// DHCP exchange used): events of that address are attributed to mac. The
// oldest association is forgotten past MaxAddresses.
func (l *Log) Learn(ip netip.Addr, mac string) {
	if !ip.IsValid() || mac == "" {
		return
	}
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byIP == nil {
		l.byIP = make(map[netip.Addr]*learned)
		l.byMAC = make(map[string]netip.Addr)
	}
	if e := l.byIP[ip]; e != nil {
		if e.mac != mac && l.byMAC[e.mac] == ip {
			delete(l.byMAC, e.mac)
		}
		e.mac = mac
		l.byMAC[mac] = ip
		l.ipOrder.MoveToBack(e.elem)
		return
	}
	max := l.MaxAddresses
	if max <= 0 {
		max = DefaultMaxAddresses
	}
	for len(l.byIP) >= max {
		old := l.ipOrder.Front()
		l.ipOrder.Remove(old)
		oldIP := old.Value.(netip.Addr)
		if m := l.byIP[oldIP].mac; l.byMAC[m] == oldIP {
			delete(l.byMAC, m)
		}
		delete(l.byIP, oldIP)
	}
	l.byIP[ip] = &learned{mac: mac, elem: l.ipOrder.PushBack(ip)}
	l.byMAC[mac] = ip
	l.adoptLocked(ip, mac)
}

// MACForIP returns the MAC last learned for ip, or "".
func (l *Log) MACForIP(ip netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.macLocked(ip)
}

func (l *Log) macLocked(ip netip.Addr) string {
	if e := l.byIP[ip.Unmap()]; e != nil {
		return e.mac
	}
	return ""
}

// Record stores e (filling in Time and, from the address, MAC when missing),
// logs it and sends it to every subscriber that keeps up (within
// FollowDelay); a subscriber whose
// buffer is full misses the event rather than slowing the server down. A
// Detail longer than MaxDetail is cut. An event that claims a MAC (Claimed)
// joins the timeline of the machine DHCP taught for its address, or of the
// address itself when none is known, never the claimed machine's.
func (l *Log) Record(e Event) {
	if e.Time.IsZero() {
		if l.Now != nil {
			e.Time = l.Now()
		} else {
			e.Time = time.Now()
		}
	}
	e.Detail = cut(e.Detail)
	e.Claimed = cut(e.Claimed)
	var mismatch *Event
	l.mu.Lock()
	if e.MAC == "" && e.IP.IsValid() {
		e.MAC = l.macLocked(e.IP)
	}
	if e.Claimed != "" && e.Claimed != e.MAC {
		// A mismatch when the address belongs to another machine, or the
		// claimed machine is known at another address. Neither known: the
		// claim cannot be checked and the event stays on the address.
		claimedAt, known := l.byMAC[e.Claimed]
		if e.MAC != "" || (known && claimedAt != e.IP.Unmap()) {
			l.mismatches.Add(1)
			d := "request from " + e.IP.String() + " named machine " + e.Claimed
			if known {
				d += " (at " + claimedAt.String() + ")"
			}
			mismatch = &Event{Time: e.Time, MAC: e.MAC, IP: e.IP, Stage: StageClaimMismatch, Detail: d}
		}
	} else if e.Claimed == e.MAC {
		e.Claimed = "" // the claim is the machine's own: nothing to say
	}
	l.storeLocked(e)
	if mismatch != nil {
		l.storeLocked(*mismatch)
	}
	l.mu.Unlock()
	l.log(e)
	if mismatch != nil {
		if ok, n := l.warn.Allow("claim-mismatch"); ok && l.Logger != nil {
			l.Logger.Warn("request names another machine than its address's", "ip", e.IP.String(), "mac", e.MAC,
				"claimed_mac", e.Claimed, "stage", string(e.Stage), "suppressed", n)
		}
	}
}

// FollowDelay is the longest a subscriber's event waits for the others
// that come after it: an event that follows a quiet spell is sent at once,
// the events of a busy spell together at most this often, so that a
// subscriber's goroutine is woken once per batch rather than once per
// event (a thread wake-up per DHCP packet otherwise). Each batch also
// costs a timer, whose firing wakes the Go runtime's monitor thread and
// starts a goroutine: at 10 ms that was ~90 wake-ups a second under a
// steady few hundred DHCP exchanges a second (every pxed runs the fleet
// inventory, a subscriber). 100 ms is still immediate on the web page.
const FollowDelay = 100 * time.Millisecond

// storeLocked appends e to its machine's timeline and queues it for the
// subscribers that have room.
func (l *Log) storeLocked(e Event) {
	l.recorded.Add(1)
	l.appendLocked(e)
	if len(l.subs) == 0 {
		return
	}
	for _, s := range l.subs {
		if len(s.ch)+len(s.pending) >= cap(s.ch) {
			s.dropped.Add(1)
			continue
		}
		s.pending = append(s.pending, e)
	}
	if l.pending {
		return
	}
	now := time.Now()
	if wait := FollowDelay - now.Sub(l.delivered); wait > 0 {
		l.pending = true
		if l.deliver == nil {
			l.deliver = time.AfterFunc(wait, l.deliverPending)
		} else {
			l.deliver.Reset(wait)
		}
		return
	}
	l.delivered = now
	l.sendLocked()
}

// Deliver sends the subscribers at once the events recorded and not yet
// sent (FollowDelay): a subscriber about to stop calls it, then drains its
// channel, to miss nothing recorded before.
func (l *Log) Deliver() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sendLocked()
}

// deliverPending sends the queued events (the timer of storeLocked).
func (l *Log) deliverPending() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = false
	l.delivered = time.Now()
	l.sendLocked()
}

// sendLocked sends the subscribers their queued events; none blocks, as
// storeLocked queued no more than their channels' room.
func (l *Log) sendLocked() {
	for _, s := range l.subs {
		s.sendLocked()
	}
}

// appendLocked adds e to its machine's timeline, within the bounds.
func (l *Log) appendLocked(e Event) {
	key := e.MAC
	if key == "" && e.IP.IsValid() {
		key = e.IP.Unmap().String()
	}
	if l.machines == nil {
		l.machines = make(map[string]*machine)
	}
	m := l.machines[key]
	if m == nil {
		m = &machine{key: key}
		m.elem = l.lru.PushBack(m)
		l.machines[key] = m
	} else {
		l.lru.MoveToBack(m.elem)
	}
	per := l.PerMachine
	if per <= 0 {
		per = DefaultPerMachine
	}
	if len(m.events) >= per {
		drop := eventSize(&m.events[0])
		m.bytes -= drop
		l.bytes -= drop
		copy(m.events, m.events[1:])
		m.events = m.events[:len(m.events)-1]
	}
	n := eventSize(&e)
	m.events = append(m.events, e)
	m.bytes += n
	l.bytes += n
	m.last = e.Time
	l.evictLocked(m)
}

// adoptLocked moves the events kept under address ip (recorded before DHCP
// taught who has it: a machine can fetch its script a moment before pxed
// reads the DHCP packet that names its address) to mac's timeline: those
// that claimed mac or nothing. Events that claimed another machine stay.
func (l *Log) adoptLocked(ip netip.Addr, mac string) {
	key := ip.String()
	m := l.machines[key]
	if m == nil || key == mac {
		return
	}
	var keep, move []Event
	for _, e := range m.events {
		if e.Claimed == "" || e.Claimed == mac {
			e.MAC, e.Claimed = mac, ""
			move = append(move, e)
		} else {
			keep = append(keep, e)
		}
	}
	if len(move) == 0 {
		return
	}
	l.lru.Remove(m.elem)
	delete(l.machines, key)
	l.bytes -= m.bytes
	for _, e := range keep {
		l.appendLocked(e)
	}
	for _, e := range move {
		l.appendLocked(e)
	}
	if t := l.machines[mac]; t != nil {
		slices.SortStableFunc(t.events, func(a, b Event) int { return a.Time.Compare(b.Time) })
	}
}

func (l *Log) log(e Event) {
	if l.Logger == nil || !l.Logger.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	if !l.logAllowed(e.Time) {
		return
	}
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
	if e.Claimed != "" {
		attrs = append(attrs, "claimed_mac", e.Claimed)
	}
	l.Logger.Info("boot event", attrs...)
}

// logAllowed applies LogRate: true when the event at t may be logged. The
// first event of a new second reports how many the previous one dropped.
func (l *Log) logAllowed(t time.Time) bool {
	rate := l.LogRate
	if rate <= 0 {
		rate = DefaultLogRate
	}
	l.logMu.Lock()
	defer l.logMu.Unlock()
	if t.Sub(l.logSecond) >= time.Second || t.Before(l.logSecond) {
		if l.logSuppressed > 0 {
			l.Logger.Warn("boot events not logged: more than the log rate", "events", l.logSuppressed, "per_second", rate)
		}
		l.logSecond, l.logCount, l.logSuppressed = t, 0, 0
	}
	if l.logCount >= rate {
		l.logSuppressed++
		return false
	}
	l.logCount++
	return true
}

// eventSize is what an event is accounted as: its strings and a fixed
// overhead.
func eventSize(e *Event) int64 {
	return int64(eventOverhead + len(e.MAC) + len(e.Detail) + len(e.Claimed) + len(e.Stage))
}

// cut shortens s to at most MaxDetail bytes (on a UTF-8 boundary) and says
// how long it was.
func cut(s string) string {
	if len(s) <= MaxDetail {
		return s
	}
	n := MaxDetail - 32
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

// evictLocked forgets the machines seen least recently until the log is
// within MaxMachines and MaxBytes; keep (the machine just written) goes last.
func (l *Log) evictLocked(keep *machine) {
	max := l.MaxMachines
	if max <= 0 {
		max = DefaultMaxMachines
	}
	maxBytes := l.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	for len(l.machines) > max || l.bytes > maxBytes {
		front := l.lru.Front()
		m := front.Value.(*machine)
		if m == keep {
			if len(l.machines) == 1 {
				return // one machine bigger than the budget: its ring bounds it
			}
			l.lru.MoveToBack(front)
			continue
		}
		l.lru.Remove(front)
		delete(l.machines, m.key)
		l.bytes -= m.bytes
		l.evicted.Add(1)
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
	s := l.Follow(buffer)
	return s.C, s.Close
}

// Subscription is a feed of the events recorded since Follow. A subscriber
// that falls behind misses events (the log never waits for it) and Dropped
// says how many.
type Subscription struct {
	C     <-chan Event // the events, in the order recorded; closed by Close
	s     *subscriber
	close func()
}

type subscriber struct {
	ch      chan Event
	pending []Event // recorded, not yet sent (under Log.mu)
	dropped atomic.Uint64
}

// sendLocked sends s its queued events; Log.mu is held.
func (s *subscriber) sendLocked() {
	for _, e := range s.pending {
		s.ch <- e
	}
	clear(s.pending)
	s.pending = s.pending[:0]
}

// Dropped returns how many events this subscription missed because its
// buffer was full.
func (s *Subscription) Dropped() uint64 { return s.s.dropped.Load() }

// Close ends the subscription and closes C; it may be called more than once.
func (s *Subscription) Close() { s.close() }

// Follow subscribes to the events recorded from now on, with a buffer of
// buffer events (1024 when 0 or less).
func (l *Log) Follow(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = 1024
	}
	sub := &subscriber{ch: make(chan Event, buffer)}
	l.mu.Lock()
	if l.subs == nil {
		l.subs = make(map[int]*subscriber)
	}
	id := l.nextSub
	l.nextSub++
	l.subs[id] = sub
	l.mu.Unlock()
	var once sync.Once
	return &Subscription{C: sub.ch, s: sub, close: func() {
		once.Do(func() {
			l.mu.Lock()
			sub.sendLocked()
			delete(l.subs, id)
			l.mu.Unlock()
			close(sub.ch)
		})
	}}
}
