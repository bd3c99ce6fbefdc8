package lease

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// maxCandidates bounds the addresses one Offer examines in each of the
// never-used and reuse steps, so a DHCPDISCOVER is answered (or refused)
// in bounded time even when many probes say "in use".
const maxCandidates = 256

// Config configures a Manager. The zero value of every field but Subnet
// works.
type Config struct {
	Subnet Subnet
	// Authoritative makes the server NAK requests for addresses it knows to
	// be wrong or does not know (RFC 2131 §4.3.2); otherwise it stays silent
	// unless the address is the client's.
	Authoritative bool
	// Probe, when set, is asked whether addr answers on the network (an
	// ICMP echo) before an address not currently held by the client is
	// offered. true quarantines the address for DeclineHold and the Manager
	// tries the next one. Reservations are not probed.
	Probe func(ctx context.Context, addr netip.Addr) (inUse bool)
	// DeclineHold is how long a declined or probed-in-use address stays
	// quarantined; 0 means DefaultDeclineHold.
	DeclineHold time.Duration
	// Owns, when set, says whether this Manager may offer addr when it is
	// free (never used, or expired): servers sharing one store split the
	// free addresses (internal/cluster) so that two of them never offer
	// one at once. An address the client holds, asks for or has reserved
	// is offered whoever owns it; the store's compare-and-swap decides.
	// nil owns every address. Call Rescan when its answers change.
	Owns func(addr netip.Addr) bool
	// Shared says other servers write to the same durable store. The
	// Manager then re-reads an address from it (Refresher) before it
	// refuses a client's REQUEST for it: the lease may have been bound by
	// a peer that has since died, and this server's cache never saw it.
	Shared bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives quarantine notices; nil discards.
	Logger *slog.Logger
}

// Manager allocates the addresses of one subnet and runs the lease state
// machine over a Store. It is safe for concurrent use; several Managers
// (one per subnet, or one per server) may share a Store.
type Manager struct {
	store       Store
	sn          *subnet
	auth        bool
	probe       func(context.Context, netip.Addr) bool
	owns        func(netip.Addr) bool
	shared      bool
	declineHold time.Duration
	now         func() time.Time
	log         *slog.Logger
	spanFirst   netip.Addr // lowest First of the ranges
	spanLast    netip.Addr // highest Last of the ranges

	mu      sync.Mutex
	pending map[netip.Addr]bool    // addresses being claimed by a call in flight
	keys    map[ClientKey]*keyLock // per-client serialisation
	cursors []cursor               // never-used scan position per range
	offers  offerTable             // outstanding DHCPOFFERs (see offers.go)
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// cursor is the never-used scan position of one range: every address of
// the range below next has a row in the store (rows are never deleted).
type cursor struct {
	next netip.Addr
	init bool
	done bool
}

// New returns a Manager for cfg.Subnet over store.
func New(store Store, cfg Config) (*Manager, error) {
	if store == nil {
		return nil, errors.New("lease: new manager: nil store")
	}
	sn, err := cfg.Subnet.validate()
	if err != nil {
		return nil, err
	}
	m := &Manager{
		store:       store,
		sn:          sn,
		auth:        cfg.Authoritative,
		probe:       cfg.Probe,
		owns:        cfg.Owns,
		shared:      cfg.Shared,
		declineHold: cfg.DeclineHold,
		now:         cfg.Now,
		log:         cfg.Logger,
		pending:     make(map[netip.Addr]bool),
		keys:        make(map[ClientKey]*keyLock),
		cursors:     make([]cursor, len(sn.Ranges)),
		offers:      newOfferTable(),
	}
	if m.declineHold <= 0 {
		m.declineHold = DefaultDeclineHold
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for i, r := range sn.Ranges {
		if i == 0 || r.First.Less(m.spanFirst) {
			m.spanFirst = r.First
		}
		if i == 0 || m.spanLast.Less(r.Last) {
			m.spanLast = r.Last
		}
	}
	return m, nil
}

// Subnet returns the subnet served, with defaults filled in.
func (m *Manager) Subnet() Subnet { return m.sn.Subnet }

// OfferRequest is what Offer needs from a DHCPDISCOVER.
type OfferRequest struct {
	Key       ClientKey        // see NewClientKey
	MAC       net.HardwareAddr // chaddr
	Hostname  string           // option 12, if any
	Requested netip.Addr       // option 50, if any
}

// errSkip means "this candidate cannot be used, try the next one".
var errSkip = errors.New("lease: candidate unavailable")

// claim options.
type claimOpts struct {
	probe bool      // probe unless the client holds the address now
	fresh bool      // only an address with no row (never used)
	d     *Deferred // the call's, if any (see put)
}

// Offer picks an address for a DHCPDISCOVER and holds it for the subnet's
// OfferHold, in this order (RFC 2131 §4.3.1): the client's reservation,
// its current lease or offer, its previous address if free, the requested
// address (option 50) if free and in a range, a never-used address, then
// the free address that expired or was released longest ago. It returns
// the Offered lease (or the client's Bound lease unchanged, when it lasts
// longer than an offer hold), or an error wrapping ErrExhausted.
//
// The offer is held in this Manager's memory, not written to the Store
// (see offers.go): the Offered lease's Version is that of the stored lease
// it was made over, 0 when the address has no row. Request makes it
// durable.
//
// With d, Offer does not wait: see Deferred.
func (m *Manager) Offer(ctx context.Context, d *Deferred, req OfferRequest) (Lease, error) {
	turn, err := m.lockKey(req.Key, d)
	if err != nil {
		return Lease{}, err
	}
	defer turn.unlock()
	now := m.now()
	m.mu.Lock()
	m.sweep(now)
	m.mu.Unlock()
	try := func(addr netip.Addr, o claimOpts) (Lease, bool, error) {
		o.d = d
		l, err := m.claim(ctx, addr, req.Key, req.MAC, m.hostname(req.Hostname, addr), now, o)
		if errors.Is(err, errSkip) {
			return Lease{}, false, nil
		}
		if err != nil {
			return Lease{}, false, fmt.Errorf("lease: offer %v to %v: %w", addr, req.Key, err)
		}
		return l, true, nil
	}

	// 1. Reservation.
	if r, ok := m.sn.reservationFor(req.Key, req.MAC); ok {
		if l, ok, err := try(r.Addr, claimOpts{}); ok || err != nil {
			return l, err
		}
	}
	// 2. Current lease, then 3. previous address, most recent first.
	held, err := m.store.ByKey(ctx, req.Key)
	if err != nil {
		return Lease{}, fmt.Errorf("lease: offer to %v: %w", req.Key, err)
	}
	m.mu.Lock()
	if a, o, ok := m.offerOf(req.Key); ok {
		held = slices.DeleteFunc(held, func(l Lease) bool { return l.Addr == a })
		held = append(held, o.lease(a))
	}
	m.mu.Unlock()
	held = slices.DeleteFunc(held, func(l Lease) bool {
		return l.State == Declined || !m.sn.usableBy(l.Addr, req.Key, req.MAC)
	})
	slices.SortStableFunc(held, func(a, b Lease) int {
		if a.Active(now) != b.Active(now) {
			if a.Active(now) {
				return -1
			}
			return 1
		}
		return b.Updated.Compare(a.Updated)
	})
	for _, h := range held {
		if l, ok, err := try(h.Addr, claimOpts{probe: true}); ok || err != nil {
			return l, err
		}
	}
	// 4. Requested address.
	if a := req.Requested; a.IsValid() && m.sn.usableBy(a, req.Key, req.MAC) {
		if l, ok, err := try(a, claimOpts{probe: true}); ok || err != nil {
			return l, err
		}
	}
	// 5. Never-used addresses.
	for range maxCandidates {
		a, ok, err := m.nextUnused(ctx)
		if err != nil {
			return Lease{}, fmt.Errorf("lease: offer to %v: %w", req.Key, err)
		}
		if !ok {
			break
		}
		l, ok, err := try(a, claimOpts{probe: true, fresh: true})
		if err != nil {
			m.rewind(a)
		}
		if ok || err != nil {
			return l, err
		}
	}
	// 6. Free addresses, oldest first.
	if len(m.sn.Ranges) > 0 {
		limit := maxCandidates + len(m.sn.Reservations) + len(m.sn.Exclude)
		if m.owns != nil {
			limit *= 8 // a share of the free addresses: look further
		}
		free, err := m.store.Find(ctx, Filter{First: m.spanFirst, Last: m.spanLast, ExpiresBy: now, Limit: limit})
		if err != nil {
			return Lease{}, fmt.Errorf("lease: offer to %v: %w", req.Key, err)
		}
		for _, f := range free {
			if !m.sn.usableBy(f.Addr, req.Key, req.MAC) || m.owns != nil && !m.owns(f.Addr) {
				continue
			}
			if l, ok, err := try(f.Addr, claimOpts{probe: true}); ok || err != nil {
				return l, err
			}
		}
	}
	return Lease{}, fmt.Errorf("lease: offer to %v in %v: %w", req.Key, m.sn.Prefix, ErrExhausted)
}

// hostname returns the client's name or, failing that, its reservation's.
func (m *Manager) hostname(name string, addr netip.Addr) string {
	if name != "" {
		return name
	}
	if r, ok := m.sn.reservedFor(addr); ok {
		return r.Hostname
	}
	return ""
}

// claim offers addr to the client if nobody else holds it, returning
// errSkip when the address is taken, offered to another client,
// quarantined, in flight or (with o.fresh) already used. A Bound lease of
// the client that outlasts an offer hold is returned as it is; otherwise
// the address is Offered for OfferHold, in memory.
func (m *Manager) claim(ctx context.Context, addr netip.Addr, key ClientKey, mac net.HardwareAddr, host string, now time.Time, o claimOpts) (Lease, error) {
	held, ok := m.reserve(addr)
	if !ok {
		return Lease{}, errSkip
	}
	defer m.unreserve(addr)
	if held.key != "" && held.key != key && held.expires.After(now) {
		return Lease{}, errSkip // offered to another client
	}
	cur, err := m.store.Get(ctx, addr)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Lease{}, err
	}
	if exists {
		if o.fresh {
			return Lease{}, errSkip
		}
		if !cur.Free(now) && (cur.Key != key || cur.State == Declined) {
			return Lease{}, errSkip
		}
	}
	offeredToMe := held.key == key && held.expires.After(now)
	mine := (exists && cur.Key == key && cur.Active(now)) || offeredToMe
	if o.probe && !mine && m.probe != nil && m.probe(ctx, addr) {
		q := Lease{Addr: addr, MAC: nil, State: Declined, Expires: now.Add(m.declineHold), Updated: now, Version: cur.Version}
		if _, err := m.put(ctx, o.d, q); err != nil && !errors.Is(err, ErrConflict) {
			return Lease{}, fmt.Errorf("quarantine %v: %w", addr, err)
		}
		m.mu.Lock()
		m.dropOffer(addr)
		m.mu.Unlock()
		m.log.Warn("address in use, quarantined", "addr", addr, "until", q.Expires, "for", key.String())
		return Lease{}, errSkip
	}
	expires := now.Add(m.sn.OfferHold)
	if host == "" {
		if offeredToMe {
			host = held.host
		} else if mine {
			host = cur.Hostname
		}
	}
	if exists && cur.Key == key && cur.State == Bound && cur.Expires.After(expires) {
		// The client's lease outlasts an offer hold: offer it as it is.
		if host != "" {
			cur.Hostname = host
		}
		return cur, nil
	}
	off := offer{key: key, mac: slices.Clone(mac), host: host, expires: expires, updated: now, version: cur.Version}
	m.mu.Lock()
	m.addOffer(addr, off)
	m.mu.Unlock()
	return off.lease(addr), nil
}

// nextUnused returns the next address of a range that may never have been
// used, advancing the range's cursor past it.
func (m *Manager) nextUnused(ctx context.Context) (netip.Addr, bool, error) {
	for i := range m.cursors {
		if err := m.initCursor(ctx, i); err != nil {
			return netip.Addr{}, false, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.cursors {
		c, r := &m.cursors[i], m.sn.Ranges[i]
		for !c.done {
			a := c.next
			if a == r.Last {
				c.done = true
			} else {
				c.next = a.Next()
			}
			if m.pending[a] || m.sn.excluded(a) || m.owns != nil && !m.owns(a) {
				continue
			}
			if _, reserved := m.sn.reservedFor(a); reserved {
				continue
			}
			return a, true, nil
		}
	}
	return netip.Addr{}, false, nil
}

// Rescan restarts the never-used scan of every range from its lowest
// address without a row: after Config.Owns changed (a peer server died and
// its addresses are now this Manager's), the addresses the scan skipped
// are candidates again.
func (m *Manager) Rescan() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.cursors {
		m.cursors[i] = cursor{}
	}
}

// initCursor places cursor i on the lowest address of its range with no
// row in the store.
func (m *Manager) initCursor(ctx context.Context, i int) error {
	m.mu.Lock()
	ready := m.cursors[i].init
	m.mu.Unlock()
	if ready {
		return nil
	}
	r := m.sn.Ranges[i]
	rows, err := m.store.Find(ctx, Filter{First: r.First, Last: r.Last})
	if err != nil {
		return fmt.Errorf("scan range %v-%v: %w", r.First, r.Last, err)
	}
	c := cursor{next: r.First, init: true}
	for _, l := range rows {
		if l.Addr != c.next {
			break
		}
		if c.next == r.Last {
			c.done = true
			break
		}
		c.next = c.next.Next()
	}
	m.mu.Lock()
	if !m.cursors[i].init {
		m.cursors[i] = c
	}
	m.mu.Unlock()
	return nil
}

// rewind moves the cursor of a's range back to a after a failed claim or
// a lapsed offer, so an address left without a row is not lost to the
// never-used scan.
func (m *Manager) rewind(a netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rewindLocked(a)
}

func (m *Manager) rewindLocked(a netip.Addr) {
	for i, r := range m.sn.Ranges {
		c := &m.cursors[i]
		if r.Contains(a) && (c.done || a.Less(c.next)) {
			c.next, c.done = a, false
		}
	}
}

// reserve marks addr as being claimed; false if another call is on it.
// It returns the offer on addr, if any.
func (m *Manager) reserve(addr netip.Addr) (offer, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[addr] {
		return offer{}, false
	}
	m.pending[addr] = true
	o, _ := m.offerOn(addr)
	return o, true
}

func (m *Manager) unreserve(addr netip.Addr) {
	m.mu.Lock()
	delete(m.pending, addr)
	m.mu.Unlock()
}

// Probes reports whether Offer checks an address with Config.Probe
// before offering it, and so may wait.
func (m *Manager) Probes() bool { return m.probe != nil }

// lockKey serialises the calls of one client; the caller ends its turn
// with the returned heldKey's unlock. A caller with a Deferred must not
// wait (it is the DHCP socket's reader): when another call holds the
// client, e.g. an Offer probing an address, lockKey returns ErrBusy
// instead. Neither the lock nor its release allocates (a keyLock comes
// from a pool, the release is a value, not a closure): two lease
// operations per DHCPv6 exchange, three allocations each before.
func (m *Manager) lockKey(key ClientKey, d *Deferred) (heldKey, error) {
	m.mu.Lock()
	kl := m.keys[key]
	if kl == nil {
		kl = keyLocks.Get().(*keyLock)
		m.keys[key] = kl
	}
	kl.refs++
	m.mu.Unlock()
	h := heldKey{m: m, kl: kl, key: key}
	if d != nil {
		if !kl.mu.TryLock() {
			h.release()
			return heldKey{}, fmt.Errorf("lease: client %v: %w", key, ErrBusy)
		}
	} else {
		kl.mu.Lock()
	}
	return h, nil
}

// keyLocks recycles the keyLocks of clients no call holds any more.
var keyLocks = sync.Pool{New: func() any { return new(keyLock) }}

// heldKey is one client's turn, from lockKey.
type heldKey struct {
	m   *Manager
	kl  *keyLock
	key ClientKey
}

// unlock ends the turn.
func (h heldKey) unlock() {
	h.kl.mu.Unlock()
	h.release()
}

// release drops the turn's reference to its keyLock, which goes back to
// the pool when it was the last: nobody else can reach it then.
func (h heldKey) release() {
	h.m.mu.Lock()
	if h.kl.refs--; h.kl.refs == 0 {
		delete(h.m.keys, h.key)
		keyLocks.Put(h.kl)
	}
	h.m.mu.Unlock()
}

// Decline quarantines addr for DeclineHold after the client holding it
// reported it in use (DHCPDECLINE, RFC 2131 §4.3.3). It returns an error
// wrapping ErrNotHeld if the client does not hold addr. With d, Decline
// does not wait: see Deferred.
func (m *Manager) Decline(ctx context.Context, d *Deferred, key ClientKey, addr netip.Addr) error {
	turn, err := m.lockKey(key, d)
	if err != nil {
		return err
	}
	defer turn.unlock()
	now := m.now()
	err = m.update(ctx, d, key, addr, func(l *Lease) error {
		if err := heldBy(*l, key, now); err != nil {
			return err
		}
		l.State, l.Expires = Declined, now.Add(m.declineHold)
		return nil
	})
	if err != nil {
		return fmt.Errorf("lease: decline %v by %v: %w", addr, key, err)
	}
	m.log.Warn("address declined by client, quarantined", "addr", addr, "client", key.String(), "until", now.Add(m.declineHold))
	return nil
}

// Release ends the client's lease on addr (DHCPRELEASE, RFC 2131 §4.3.4).
// The row keeps the client's key so a later Offer returns the same address
// if it is still free. It returns an error wrapping ErrNotHeld if the
// client does not hold addr. With d, Release does not wait: see Deferred.
func (m *Manager) Release(ctx context.Context, d *Deferred, key ClientKey, addr netip.Addr) error {
	turn, err := m.lockKey(key, d)
	if err != nil {
		return err
	}
	defer turn.unlock()
	now := m.now()
	err = m.update(ctx, d, key, addr, func(l *Lease) error {
		if err := heldBy(*l, key, now); err != nil {
			return err
		}
		l.State, l.Expires = Released, now
		return nil
	})
	if err != nil {
		return fmt.Errorf("lease: release %v by %v: %w", addr, key, err)
	}
	return nil
}

// heldBy returns nil when l is key's offer or lease, ErrForeign when it is
// another client's that still holds the address at now, else ErrNotHeld.
func heldBy(l Lease, key ClientKey, now time.Time) error {
	switch {
	case l.Key == key && (l.State == Offered || l.State == Bound):
		return nil
	case l.Key != key && l.Active(now):
		return ErrForeign
	}
	return ErrNotHeld
}

// Reservation returns the client's reservation on this subnet, if any.
func (m *Manager) Reservation(key ClientKey, mac net.HardwareAddr) (Reservation, bool) {
	return m.sn.reservationFor(key, mac)
}

// Known reports whether the Manager knows the client: it has a
// reservation, an outstanding offer or any lease row (history included).
// A DHCP server counts the DISCOVERs of clients it does not know to tell
// a starvation flood (many new client IDs) from known machines booting.
func (m *Manager) Known(ctx context.Context, key ClientKey, mac net.HardwareAddr) (bool, error) {
	if _, ok := m.sn.reservationFor(key, mac); ok {
		return true, nil
	}
	m.mu.Lock()
	_, _, offered := m.offerOf(key)
	m.mu.Unlock()
	if offered {
		return true, nil
	}
	ls, err := m.store.ByKey(ctx, key)
	if err != nil {
		return false, fmt.Errorf("lease: known %v: %w", key, err)
	}
	return len(ls) > 0, nil
}

// update applies change to the lease on addr, or to the client's offer of
// addr when the stored lease is free, retrying on conflicts. An address
// offered to another client (its stored lease free) is ErrForeign.
func (m *Manager) update(ctx context.Context, d *Deferred, key ClientKey, addr netip.Addr, change func(*Lease) error) error {
	for range 8 {
		l, err := m.store.Get(ctx, addr)
		found := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		now := m.now()
		m.mu.Lock()
		o, offered := m.offerOn(addr)
		m.mu.Unlock()
		switch {
		case offered && o.key == key && o.expires.After(now) && (!found || l.Free(now)):
			v := l.Version // of the stored lease; 0 if none
			l = o.lease(addr)
			l.Version = v
		case offered && o.key != key && o.expires.After(now) && (!found || l.Free(now)):
			return ErrForeign
		case !found:
			return ErrNotHeld
		}
		if err := change(&l); err != nil {
			return err
		}
		l.Updated = now
		_, err = m.put(ctx, d, l)
		if err == nil {
			m.mu.Lock()
			m.bound(addr, key)
			m.mu.Unlock()
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return ErrConflict
}

// put writes l to the store: under d, when the store can defer the
// durable write (DeferringStore), without waiting for it.
func (m *Manager) put(ctx context.Context, d *Deferred, l Lease) (Lease, error) {
	if ds, ok := m.store.(DeferringStore); ok && d != nil {
		return ds.PutDeferred(ctx, d, l)
	}
	return m.store.Put(ctx, l)
}

// Expire marks stored Offered and Bound leases whose time ran out by now
// as Expired and returns how many it changed; it also lets the offers held
// in memory lapse. Allocation does not depend on it (a lease past Expires
// is free either way); it keeps the listing truthful. Call it
// periodically, e.g. with RunExpiry.
func (m *Manager) Expire(ctx context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	m.sweep(now)
	m.mu.Unlock()
	first, last := m.sn.first, m.sn.last
	n := 0
	for {
		due, err := m.store.Find(ctx, Filter{First: first, Last: last, States: []State{Offered, Bound}, ExpiresBy: now, Limit: 256})
		if err != nil {
			return n, fmt.Errorf("lease: expire: %w", err)
		}
		changed := 0
		for _, l := range due {
			l.State, l.Updated = Expired, now
			if _, err := m.store.Put(ctx, l); err != nil {
				if errors.Is(err, ErrConflict) {
					continue
				}
				return n, fmt.Errorf("lease: expire %v: %w", l.Addr, err)
			}
			changed++
		}
		n += changed
		if len(due) < 256 || changed == 0 {
			return n, nil
		}
	}
}

// RunExpiry calls Expire every interval until ctx is done, logging errors.
func (m *Manager) RunExpiry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := m.Expire(ctx, m.now()); err != nil && ctx.Err() == nil {
				m.log.Error("lease expiry", "err", err)
			}
		}
	}
}

// Leases returns every lease row of the subnet in address order, for
// `pxed leases` and the API, with this Manager's outstanding offers in
// place of the free rows (or missing rows) they cover.
func (m *Manager) Leases(ctx context.Context) ([]Lease, error) {
	first, last := m.sn.first, m.sn.last
	ls, err := m.store.Find(ctx, Filter{First: first, Last: last})
	if err != nil {
		return nil, fmt.Errorf("lease: list %v: %w", m.sn.Prefix, err)
	}
	now := m.now()
	at := make(map[netip.Addr]int, len(ls))
	for i, l := range ls {
		at[l.Addr] = i
	}
	m.mu.Lock()
	for a, o := range m.offers.byAddr {
		if !o.expires.After(now) {
			continue
		}
		i, ok := at[a]
		switch {
		case !ok:
			ls = append(ls, o.lease(a))
		case ls[i].Free(now):
			ls[i] = o.lease(a)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(ls, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return ls, nil
}
