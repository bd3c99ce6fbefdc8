package rogue

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/events"
	"pxed/internal/lograte"
)

// StageRogueServer is the event of a reply from another DHCP or ProxyDHCP
// server on pxed's networks.
const StageRogueServer = events.StageRogueServer

// DefaultMaxServers is Detector.MaxServers when 0.
const DefaultMaxServers = 64

// ownRefresh is how old the list of the host's own addresses may be when a
// reply that looks foreign is classified (addresses come and go).
const ownRefresh = 10 * time.Second

// Entry is one rogue server seen on one interface.
type Entry struct {
	Server     netip.Addr       // option 54, else the IP source
	MAC        net.HardwareAddr // the frame's source (a relay agent's when relayed)
	Interface  string
	Family     int
	FirstSeen  time.Time
	LastSeen   time.Time
	Count      uint64 // replies seen
	Kind       string // of the last reply: KindDHCP, KindDHCPBoot, KindProxyDHCP
	Type       string // of the last reply: offer, ack, bootp, advertise, reply
	Relayed    bool   // the last reply went through a relay agent
	LastClient net.HardwareAddr

	// What the last reply offered.
	YIAddr, SIAddr netip.Addr
	File           string
	VendorClass    string
}

// Detector keeps the table of rogue servers and reports each new reply.
// Observe is its policy entry point (tests call it directly); Open and Run
// add the packet sockets. The zero value works once Roles are set.
type Detector struct {
	Role4, Role6 Role // pxed's role per family (RoleOff: not watched)

	// Events receives a rogue-server event per server and log interval
	// (on the server's address), and one per reply on the client's
	// timeline when Seen says pxed knows the client. nil: no events.
	Events events.Recorder
	// Seen reports whether pxed has seen the machine with this MAC (it has
	// a timeline); nil: never.
	Seen   func(mac string) bool
	Logger *slog.Logger // nil logs nothing
	// Log limits the warning (and the server event) to one per server and
	// interval; its zero value is one per lograte.DefaultInterval.
	Log lograte.Limiter
	// MaxServers bounds the table (and the metric's label values); replies
	// from servers past it are counted in Stats().Overflow. 0 means
	// DefaultMaxServers.
	MaxServers int
	// OwnFunc lists the host's MACs and addresses; nil lists every
	// interface of the host (net.Interfaces).
	OwnFunc func() (Own, error)
	// Peer, when set, reports whether a server address belongs to a
	// server pxed works with (a member of its cluster, internal/cluster):
	// its replies are expected, not reported.
	Peer func(server netip.Addr) bool
	Now  func() time.Time

	mu       sync.Mutex
	table    map[entryKey]*Entry
	overflow uint64
	ignored  uint64
	frames   atomic.Uint64
	own      Own
	ownAt    time.Time
}

type entryKey struct {
	server netip.Addr
	iface  string
}

// Stats are the detector's counters.
type Stats struct {
	Servers  int    // rows in the table
	Overflow uint64 // rogue replies from servers past MaxServers (not in the table)
	Ignored  uint64 // replies seen and not reported (pxed's own, expected)
	// Frames is every frame the sockets' filters passed up: server →
	// client DHCP only, so it stays near the replies seen however much
	// other traffic the interfaces carry.
	Frames uint64
}

// Stats returns the detector's counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return Stats{Servers: len(d.table), Overflow: d.overflow, Ignored: d.ignored, Frames: d.frames.Load()}
}

// Rogues returns the table, most recently seen first.
func (d *Detector) Rogues() []Entry {
	d.mu.Lock()
	out := make([]Entry, 0, len(d.table))
	for _, e := range d.table {
		out = append(out, *e)
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastSeen.Equal(out[j].LastSeen) {
			return out[i].LastSeen.After(out[j].LastSeen)
		}
		return out[i].Server.Less(out[j].Server)
	})
	return out
}

func (d *Detector) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// ownNow returns the host's identity, listed again when older than
// ownRefresh. Called only for replies the kernel let through, which are
// rare.
func (d *Detector) ownNow(t time.Time) Own {
	d.mu.Lock()
	if d.own.MACs != nil && t.Sub(d.ownAt) < ownRefresh {
		o := d.own
		d.mu.Unlock()
		return o
	}
	d.mu.Unlock()
	f := d.OwnFunc
	if f == nil {
		f = HostOwn
	}
	o, err := f()
	if err != nil && d.Logger != nil {
		d.Logger.Warn("rogue detection: cannot list this host's addresses; replies may be misjudged", "err", err)
	}
	d.mu.Lock()
	d.own, d.ownAt = o, t
	d.mu.Unlock()
	return o
}

// Observe classifies r, read on interface iface, and when it comes from a
// rogue server records it in the table, the events and the log. It returns
// the verdict.
func (d *Detector) Observe(iface string, r Reply) Verdict {
	t := d.now()
	role := d.Role4
	if r.Family == 6 {
		role = d.Role6
	}
	v := Classify(r, d.ownNow(t), role)
	if v.Report && d.Peer != nil && d.Peer(r.Server()) {
		v = Verdict{Why: "a cluster peer"}
	}
	if !v.Report {
		d.mu.Lock()
		d.ignored++
		d.mu.Unlock()
		if d.Logger != nil {
			d.Logger.Debug("DHCP reply not reported", "iface", iface, "server", r.Server().String(), "why", v.Why)
		}
		return v
	}
	e, inTable := d.record(iface, r, v, t)
	detail := describe(e)
	if d.Events != nil && d.Seen != nil && len(r.Client) > 0 && d.Seen(r.Client.String()) {
		d.Events.Record(events.Event{Time: t, MAC: r.Client.String(), Stage: StageRogueServer, Detail: detail})
	}
	if ok, n := d.Log.Allow(e.Server.String() + "%" + iface); ok {
		if d.Events != nil {
			d.Events.Record(events.Event{Time: t, IP: e.Server, Stage: StageRogueServer, Detail: detail})
		}
		if d.Logger != nil {
			attrs := []any{"server", e.Server.String(), "server_mac", e.MAC.String(), "iface", iface, "kind", e.Kind, "type", e.Type,
				"client", r.Client.String(), "yiaddr", addrString(e.YIAddr), "siaddr", addrString(e.SIAddr), "file", e.File,
				"vendor_class", e.VendorClass, "suppressed", n}
			if e.Relayed {
				attrs = append(attrs, "relayed", true)
			}
			if !inTable {
				attrs = append(attrs, "table_full", true)
			}
			d.Logger.Warn("another DHCP server answers boot clients on this network", attrs...)
		}
	}
	return v
}

// record updates the table with r and returns the row (a copy), and false
// when the table was full and r counted as overflow.
func (d *Detector) record(iface string, r Reply, v Verdict, t time.Time) (Entry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.table == nil {
		d.table = make(map[entryKey]*Entry)
	}
	k := entryKey{server: r.Server(), iface: iface}
	e := d.table[k]
	max := d.MaxServers
	if max <= 0 {
		max = DefaultMaxServers
	}
	inTable := true
	if e == nil {
		e = &Entry{Server: k.server, Interface: iface, Family: r.Family, FirstSeen: t}
		if len(d.table) < max {
			d.table[k] = e
		} else {
			inTable = false
			d.overflow++
		}
	}
	e.MAC, e.LastSeen, e.Kind, e.Type, e.Relayed, e.LastClient = r.SrcMAC, t, v.Kind, r.Type, r.Relayed(), r.Client
	e.YIAddr, e.SIAddr, e.File, e.VendorClass = r.YIAddr, r.SIAddr, r.File, r.VendorClass
	e.Count++
	return *e, inTable
}

// describe is an event's detail: who offered what.
func describe(e Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s (%s) on %s: %s", e.Type, e.Server, e.MAC, e.Interface, e.Kind)
	if e.Relayed {
		b.WriteString(" via relay")
	}
	if e.YIAddr.IsValid() && !e.YIAddr.IsUnspecified() {
		fmt.Fprintf(&b, " yiaddr=%s", e.YIAddr)
	}
	if e.SIAddr.IsValid() && !e.SIAddr.IsUnspecified() {
		fmt.Fprintf(&b, " siaddr=%s", e.SIAddr)
	}
	if e.File != "" {
		fmt.Fprintf(&b, " file=%q", e.File)
	}
	if e.VendorClass != "" {
		fmt.Fprintf(&b, " vendor_class=%q", e.VendorClass)
	}
	if len(e.LastClient) > 0 {
		fmt.Fprintf(&b, " client=%s", e.LastClient)
	}
	return b.String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() || a.IsUnspecified() {
		return ""
	}
	return a.String()
}

// HostOwn lists every interface's MAC and addresses on this host.
func HostOwn() (Own, error) {
	o := Own{MACs: map[string]bool{}, Addrs: map[netip.Addr]bool{}}
	ifs, err := net.Interfaces()
	if err != nil {
		return o, fmt.Errorf("list interfaces: %w", err)
	}
	for _, ifi := range ifs {
		if len(ifi.HardwareAddr) > 0 {
			o.MACs[ifi.HardwareAddr.String()] = true
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				o.Addrs[p.Addr().Unmap()] = true
			}
		}
	}
	return o, nil
}
