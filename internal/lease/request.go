package lease

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Action is what the server does with a DHCPREQUEST.
type Action uint8

// Actions of a Decision.
const (
	Ignore Action = iota // send nothing
	Ack                  // send DHCPACK with the returned lease
	Nak                  // send DHCPNAK
)

// String returns "ack", "nak" or "ignore".
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Nak:
		return "nak"
	default:
		return "ignore"
	}
}

// Decision is the answer to a DHCPREQUEST and why, for the log and events.
type Decision struct {
	Action Action
	Reason string
}

// RequestRequest is what Request needs from a DHCPREQUEST.
type RequestRequest struct {
	Key       ClientKey        // see NewClientKey
	MAC       net.HardwareAddr // chaddr
	Hostname  string           // option 12, if any
	ServerID  netip.Addr       // option 54, if any
	Requested netip.Addr       // option 50, if any
	CIAddr    netip.Addr       // ciaddr, if not 0.0.0.0
	Broadcast bool             // received as broadcast (REBINDING rather than RENEWING); only changes the reason
	// LeaseTime, when positive, replaces the subnet's lease time for this
	// binding (a BOOTP client's lease is for ever: InfiniteLease).
	LeaseTime time.Duration
	// Selected says the client chose this server by other means than
	// ServerID (a DHCPv6 Request naming this server's DUID, RFC 8415
	// §18.3.2): SELECTING with Requested, without comparing ServerID.
	Selected bool
	// Adopt says the client requests an offer a cluster peer made before
	// it died (the offer died with it): bind the requested address if the
	// store shows it free and it is usable by this client, as if this
	// Manager had offered it. The store's compare-and-swap still decides.
	Adopt bool
}

// Request decides a DHCPREQUEST by the client state RFC 2131 §4.3.2
// distinguishes, and on Ack returns the Bound lease, already durable:
//
//   - SELECTING (option 54 present): if it names our ServerID, Ack when the
//     requested address is offered or leased to this client, else Nak; if it
//     names another server, the client declined our offer: drop it, Ignore.
//   - INIT-REBOOT (no option 54, option 50, no ciaddr) and RENEWING /
//     REBINDING (ciaddr, no option 54): Ack and extend when the address is
//     this client's. Otherwise, when Authoritative, Nak (wrong network,
//     another client's, reserved for another, excluded, quarantined, or no
//     record of it); when not authoritative, Ignore.
//
// A client with a reservation on this subnet that asks for another address
// is told Nak when Authoritative so that it comes back for its reservation.
// err is set only for store failures; the Decision is then Ignore. With
// d, Request does not wait: see Deferred.
func (m *Manager) Request(ctx context.Context, d *Deferred, req RequestRequest) (Decision, Lease, error) {
	turn, err := m.lockKey(req.Key, d)
	if err != nil {
		return Decision{Ignore, "client busy"}, Lease{}, err
	}
	defer turn.unlock()
	now := m.now()
	switch {
	case req.Selected:
		if !valid(req.Requested) {
			return Decision{Ignore, "selecting: no requested address"}, Lease{}, nil
		}
		return m.confirm(ctx, d, req, req.Requested, true, "selecting", now)
	case valid(req.ServerID):
		addr := req.Requested
		if !valid(addr) {
			addr = req.CIAddr // some clients put the offered address there
		}
		if !valid(addr) {
			return Decision{Ignore, "selecting: no requested address"}, Lease{}, nil
		}
		if req.ServerID != m.sn.ServerID {
			// RFC 2131 §4.3.2: a server not selected takes the REQUEST as
			// notice that the client declined its offer.
			if err := m.dropOffers(ctx, req.Key, now); err != nil {
				return Decision{Ignore, "selecting another server"}, Lease{}, err
			}
			return Decision{Ignore, fmt.Sprintf("selecting: client chose server %v", req.ServerID)}, Lease{}, nil
		}
		return m.confirm(ctx, d, req, addr, true, "selecting", now)
	case valid(req.Requested) && !valid(req.CIAddr):
		return m.confirm(ctx, d, req, req.Requested, m.auth, "init-reboot", now)
	case valid(req.CIAddr):
		state := "renewing"
		if req.Broadcast {
			state = "rebinding"
		}
		return m.confirm(ctx, d, req, req.CIAddr, m.auth, state, now)
	default:
		return Decision{Ignore, "request without server id, requested address or ciaddr"}, Lease{}, nil
	}
}

func valid(a netip.Addr) bool { return a.IsValid() && !a.IsUnspecified() }

// confirm binds addr to the client if it is the client's, else answers Nak
// (nak true) or Ignore.
func (m *Manager) confirm(ctx context.Context, d *Deferred, req RequestRequest, addr netip.Addr, nak bool, state string, now time.Time) (Decision, Lease, error) {
	refuse := func(why string) (Decision, Lease, error) {
		if nak {
			return Decision{Nak, state + ": " + why}, Lease{}, nil
		}
		return Decision{Ignore, state + ": " + why}, Lease{}, nil
	}
	if !m.sn.Prefix.Contains(addr) {
		return refuse(fmt.Sprintf("%v is not on network %v", addr, m.sn.Prefix))
	}
	if r, ok := m.sn.reservationFor(req.Key, req.MAC); ok && r.Addr != addr {
		return refuse(fmt.Sprintf("client has reservation %v, not %v", r.Addr, addr))
	}
	if !m.sn.usableBy(addr, req.Key, req.MAC) {
		if r, ok := m.sn.reservedFor(addr); ok && !r.matches(req.Key, req.MAC) {
			return refuse(fmt.Sprintf("%v is reserved for another client", addr))
		}
		return refuse(fmt.Sprintf("%v is not in a pool of %v", addr, m.sn.Prefix))
	}
	bind := func(cur Lease) (Lease, error) {
		l := cur
		l.State = Bound
		if !bytes.Equal(l.MAC, req.MAC) {
			// A copy: the caller's may point into its decoded packet
			// (dhcp6's fastDecode), which the lease must not keep.
			l.MAC = slices.Clone(req.MAC)
		}
		t := m.sn.LeaseTime
		if req.LeaseTime > 0 {
			t = req.LeaseTime
		}
		l.Expires, l.Updated = now.Add(t), now
		if req.Hostname != "" {
			l.Hostname = req.Hostname
		} else if l.Hostname == "" {
			l.Hostname = m.hostname("", addr)
		}
		out, err := m.put(ctx, d, l)
		if err == nil {
			m.mu.Lock()
			m.bound(addr, req.Key)
			m.mu.Unlock()
		}
		return out, err
	}
	storeErr := func(err error) (Decision, Lease, error) {
		return Decision{Ignore, state + ": store error"}, Lease{}, fmt.Errorf("lease: %s bind %v to %v: %w", state, addr, req.Key, err)
	}
	// Fast path: our offer to this client, bound over the very lease it
	// was made over (a compare-and-swap on its Version, or an insert when
	// there was no row). The lease was free then; unless it changed since
	// (ErrConflict) it still is, so no read is needed.
	m.mu.Lock()
	o, offered := m.offerOn(addr)
	m.mu.Unlock()
	if offered && o.key == req.Key {
		out, err := bind(o.lease(addr))
		if err == nil {
			return Decision{Ack, boundReason(state)}, out, nil
		}
		if !errors.Is(err, ErrConflict) {
			return storeErr(err)
		}
		// Changed since the offer: decide on the stored lease.
	}
	refreshed := false
	for range 8 {
		cur, err := m.store.Get(ctx, addr)
		found := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return Decision{Ignore, state + ": store error"}, Lease{}, fmt.Errorf("lease: %s %v for %v: %w", state, addr, req.Key, err)
		}
		if r, ok := m.store.(Refresher); ok && m.shared && !refreshed && (!found || cur.Key != req.Key) {
			// Not the client's in this server's cache: a peer sharing the
			// store may have bound it. Ask the store before refusing.
			if d != nil {
				return Decision{Ignore, state + ": re-reading the lease"}, Lease{}, ErrBusy // a worker may wait
			}
			if err := r.Refresh(ctx, addr); err != nil {
				return storeErr(err)
			}
			refreshed = true
			continue
		}
		m.mu.Lock()
		o, offered := m.offerOn(addr)
		m.mu.Unlock()
		if req.Adopt && (!offered || o.key == req.Key || !o.expires.After(now)) && (!found || cur.Key == req.Key || cur.Free(now)) {
			v := cur.Version
			cur = Lease{Addr: addr, Key: req.Key, Version: v}
			found = true
		}
		switch {
		case found && cur.Key != req.Key && !cur.Free(now):
			m.lostOffer(addr, req.Key)
			return refuse(fmt.Sprintf("%v is leased to another client", addr))
		case offered && o.key != req.Key && o.expires.After(now):
			return refuse(fmt.Sprintf("%v is offered to another client", addr))
		case offered && o.key == req.Key && (!found || cur.Free(now)):
			// Our offer (even if its hold just ended: nobody has taken
			// the address since), bound over the stored lease it was
			// made over.
			v := cur.Version
			cur = o.lease(addr)
			cur.Version = v
		case !found:
			if _, ok := m.sn.reservationFor(req.Key, req.MAC); !ok {
				return refuse(fmt.Sprintf("no lease on record for %v", addr))
			}
			// The client's own reservation: no row yet is fine.
			cur = Lease{Addr: addr, Key: req.Key}
		}
		switch {
		case cur.Key != req.Key:
			return refuse(fmt.Sprintf("%v was not leased to this client", addr))
		case cur.State == Declined:
			return refuse(fmt.Sprintf("%v is quarantined", addr))
		}
		out, err := bind(cur)
		if errors.Is(err, ErrConflict) {
			continue // raced with expiry or another server: look again
		}
		if err != nil {
			return storeErr(err)
		}
		return Decision{Ack, boundReason(state)}, out, nil
	}
	return Decision{Ignore, state + ": too many concurrent updates"}, Lease{}, nil
}

// lostOffer forgets the client's offer of addr after another client (of
// another server sharing the store) was bound to it first.
func (m *Manager) lostOffer(addr netip.Addr, key ClientKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.offers.byAddr[addr]; o != nil && o.key == key {
		m.dropOffer(addr)
	}
}

// dropOffers forgets the client's outstanding offer after it selected
// another server (offers live in memory; see offers.go), so its address
// is free for others at once.
func (m *Manager) dropOffers(_ context.Context, key ClientKey, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.offers.byKey[key]; ok {
		m.dropOffer(a)
	}
	return nil
}

// boundReason is state + ": bound", without the concatenation for the
// states Request passes (one allocation per ACK).
func boundReason(state string) string {
	switch state {
	case "selecting":
		return "selecting: bound"
	case "init-reboot":
		return "init-reboot: bound"
	case "renewing":
		return "renewing: bound"
	case "rebinding":
		return "rebinding: bound"
	}
	return state + ": bound"
}
