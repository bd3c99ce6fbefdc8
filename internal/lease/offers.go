package lease

import (
	"net"
	"net/netip"
	"time"
)

// Offers are held in memory, not in the Store: RFC 2131 §4.3.1 only asks
// the server to reserve an offered address until the client answers, not to
// remember it across a restart (a client whose offer is lost to a restart
// gets a DHCPNAK for its REQUEST and starts over). So a DHCPOFFER costs no
// disk write, and the first durable write of a new lease is its DHCPACK.
//
// The Store still decides who gets an address: binding writes the lease
// with a compare-and-swap on the Version the offer was made over (0 for an
// address with no row, an insert that the store's uniqueness refuses if
// another server took the address meanwhile). Two Managers sharing a Store
// do not see each other's offers and may offer one address to two clients;
// only the first REQUEST commits, the other is refused.

// offer is a DHCPOFFER held by the Manager.
type offer struct {
	key     ClientKey
	mac     net.HardwareAddr
	host    string
	expires time.Time // end of the offer hold
	updated time.Time // when offered
	version uint64    // Version of the stored lease offered over; 0: no row
}

// lease returns the offer as the Offered lease it stands for.
func (o *offer) lease(addr netip.Addr) Lease {
	return Lease{Addr: addr, Key: o.key, MAC: o.mac, Hostname: o.host, State: Offered,
		Expires: o.expires, Updated: o.updated, Version: o.version}
}

// due is an entry of an offer queue: o is due at the time the queue is for.
type due struct {
	addr netip.Addr
	o    *offer
}

// offerTable holds a Manager's offers: at most one per address and one
// per client. An offer lapses at its expiry (the address is free for
// others again) and is forgotten one offer hold later, so a client that
// answers a little late is still acknowledged if nobody took the address.
// It is guarded by Manager.mu.
type offerTable struct {
	byAddr map[netip.Addr]*offer
	byKey  map[ClientKey]netip.Addr
	lapse  []due // by expiry, oldest first (the hold is one constant)
	forget []due // lapsed, by expiry
}

func newOfferTable() offerTable {
	return offerTable{byAddr: make(map[netip.Addr]*offer), byKey: make(map[ClientKey]netip.Addr)}
}

// offerOn returns a copy of the offer on addr, if any (m.mu held).
func (m *Manager) offerOn(addr netip.Addr) (offer, bool) {
	if o := m.offers.byAddr[addr]; o != nil {
		return *o, true
	}
	return offer{}, false
}

// offerOf returns the address and a copy of the client's offer, if any
// (m.mu held).
func (m *Manager) offerOf(key ClientKey) (netip.Addr, offer, bool) {
	a, ok := m.offers.byKey[key]
	if !ok {
		return netip.Addr{}, offer{}, false
	}
	return a, *m.offers.byAddr[a], true
}

// addOffer records an offer of addr, replacing any offer on addr and the
// client's offer of another address (m.mu held).
func (m *Manager) addOffer(addr netip.Addr, o offer) {
	if prev, ok := m.offers.byKey[o.key]; ok && prev != addr {
		m.dropOffer(prev)
	}
	if old := m.offers.byAddr[addr]; old != nil && m.offers.byKey[old.key] == addr {
		delete(m.offers.byKey, old.key)
	}
	p := &o
	m.offers.byAddr[addr] = p
	m.offers.byKey[o.key] = addr
	m.offers.lapse = append(m.offers.lapse, due{addr, p})
}

// dropOffer forgets the offer on addr, if any, and gives the address back
// to the never-used scan when it has no row (m.mu held).
func (m *Manager) dropOffer(addr netip.Addr) {
	o := m.offers.byAddr[addr]
	if o == nil {
		return
	}
	delete(m.offers.byAddr, addr)
	if m.offers.byKey[o.key] == addr {
		delete(m.offers.byKey, o.key)
	}
	if o.version == 0 {
		m.rewindLocked(addr)
	}
}

// bound forgets the client's offer of addr once a lease for it is stored
// (m.mu held).
func (m *Manager) bound(addr netip.Addr, key ClientKey) {
	if o := m.offers.byAddr[addr]; o != nil && o.key == key {
		delete(m.offers.byAddr, addr)
		delete(m.offers.byKey, key)
	}
}

// sweep lapses the offers whose hold ended by now, giving addresses with
// no row back to the never-used scan, and forgets those lapsed one hold
// ago (m.mu held). Queue entries of replaced offers are skipped.
func (m *Manager) sweep(now time.Time) {
	t := &m.offers
	for len(t.lapse) > 0 && !t.lapse[0].o.expires.After(now) {
		d := t.lapse[0]
		t.lapse[0] = due{}
		t.lapse = t.lapse[1:]
		if t.byAddr[d.addr] != d.o {
			continue
		}
		if d.o.version == 0 {
			m.rewindLocked(d.addr)
		}
		t.forget = append(t.forget, d)
	}
	for len(t.forget) > 0 && !t.forget[0].o.expires.Add(m.sn.OfferHold).After(now) {
		d := t.forget[0]
		t.forget[0] = due{}
		t.forget = t.forget[1:]
		if t.byAddr[d.addr] != d.o {
			continue
		}
		delete(t.byAddr, d.addr)
		if t.byKey[d.o.key] == d.addr {
			delete(t.byKey, d.o.key)
		}
	}
}
