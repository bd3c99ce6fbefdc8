// Package lease allocates DHCPv4 and DHCPv6 (IA_NA) addresses and runs the
// lease state machine (offer hold, bind, renew, release, decline, expiry)
// of RFC 2131 and RFC 8415 over a small Store interface. Leases of both
// families live in one Store; a DHCPv6 lease is keyed by DUID and IAID
// (DUIDKey).
//
// The package knows nothing of the DHCP wire format: requests come in as
// plain Go values (netip.Addr, net.HardwareAddr, time.Time) and decisions go
// out as a Decision plus a Lease, so every rule is a table-testable function
// of the store contents, the configuration and the clock.
//
// Safety rests on the store, not on this process: every write is a
// compare-and-swap on the lease's Version, and the store refuses two rows for
// one address. Offers are held in the Manager's memory (RFC 2131 does not
// ask for them to be durable), so a DISCOVER costs no disk write and a
// lease's first write is its ACK. Two Managers (or two pxed servers sharing
// one database) may offer one address to two clients; exactly one REQUEST
// binds it and the other client is told DHCPNAK and starts over.
package lease

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Errors returned by Manager and Store.
var (
	// ErrExhausted means no address of the subnet can be offered.
	ErrExhausted = errors.New("lease: address pool exhausted")
	// ErrNotFound means the store has no lease for the address.
	ErrNotFound = errors.New("lease: not found")
	// ErrConflict means a Store.Put lost a race: the stored lease is not the
	// version the caller read (or, for Version 0, the address is taken).
	ErrConflict = errors.New("lease: conflicting update")
	// ErrNotHeld means the client does not hold the address it named.
	ErrNotHeld = errors.New("lease: address not held by this client")
	// ErrForeign means the address a client named is held (leased or
	// offered) by another client: a DHCPDECLINE or DHCPRELEASE for it is
	// foreign. It wraps ErrNotHeld.
	ErrForeign = fmt.Errorf("%w: held by another client", ErrNotHeld)
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("lease: store closed")
	// ErrBusy means a Manager call given a Deferred, which must not
	// wait, found another call of the same client in progress (an Offer
	// probing an address): ask again where waiting is allowed.
	ErrBusy = errors.New("lease: client busy")
)

// ClientKey identifies a DHCP client: the bytes of option 61 (client
// identifier) when the client sends it, else the hardware type followed by
// chaddr (RFC 2131 §4.2, RFC 6842). It is a string so it can be a map key;
// the bytes are raw, use String to print them.
type ClientKey string

// NewClientKey returns the key of a client that sent clientID (option 61,
// nil when absent) from hardware type htype (1 = Ethernet) and address
// chaddr. The common option 61 form, type 1 followed by the MAC, yields the
// same key as the chaddr form.
func NewClientKey(clientID []byte, htype byte, chaddr net.HardwareAddr) ClientKey {
	if len(clientID) > 0 {
		return ClientKey(clientID)
	}
	b := make([]byte, 0, 1+len(chaddr))
	b = append(b, htype)
	b = append(b, chaddr...)
	return ClientKey(b)
}

// MACKey returns the key of an Ethernet client that sends no option 61.
func MACKey(mac net.HardwareAddr) ClientKey { return NewClientKey(nil, 1, mac) }

// DUIDKey returns the key of one IA_NA of a DHCPv6 client: type 255, the
// IAID (4 bytes, network order) and the DUID. That is the form of RFC
// 4361's node-specific client identifier, so an IPv4 client sending one
// (iPXE, systemd-networkd) shares its key space with DHCPv6.
func DUIDKey(iaid uint32, duid []byte) ClientKey {
	b := make([]byte, 0, 5+len(duid))
	b = append(b, 0xff, byte(iaid>>24), byte(iaid>>16), byte(iaid>>8), byte(iaid))
	return ClientKey(append(b, duid...))
}

// DUID returns the DUID of a key of DUIDKey's form (RFC 4361), and false
// for any other key.
func (k ClientKey) DUID() ([]byte, bool) {
	if len(k) < 6 || k[0] != 0xff {
		return nil, false
	}
	return []byte(k[5:]), true
}

// String returns the key as colon-separated hex bytes, e.g. "01:52:54:00:12:34:56"
// (net.HardwareAddr prints any bytes so).
func (k ClientKey) String() string { return net.HardwareAddr(k).String() }

// State is the state of a lease.
type State uint8

// Lease states. Only Offered and Bound leases that have not expired hold
// their address; every other row records history used to return a client's
// previous address and to reuse addresses oldest first.
const (
	// Offered: sent in a DHCPOFFER, held for the subnet's OfferHold. The
	// Manager keeps offers in memory and never stores this state (rows
	// written by older versions may carry it).
	Offered State = iota + 1
	// Bound: acknowledged with DHCPACK until Expires.
	Bound
	// Released: the client sent DHCPRELEASE; Expires is the release time.
	Released
	// Expired: the offer hold or the lease ran out (see Manager.Expire).
	Expired
	// Declined: quarantined until Expires after a DHCPDECLINE or a positive
	// probe; Key is the client that declined, empty for a probe.
	Declined
)

var stateNames = [...]string{"", "offered", "bound", "released", "expired", "declined"}

// String returns the lower-case state name ("bound"), as stored and printed.
func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && n == s {
			return State(i), nil
		}
	}
	return 0, errors.New("lease: unknown state " + strconv.Quote(s))
}

// Lease is one row of the lease table: the last known use of an address.
type Lease struct {
	Addr     netip.Addr       // the leased address; one lease per address
	Key      ClientKey        // the client holding (or last holding) Addr
	MAC      net.HardwareAddr // chaddr of that client, for display
	Hostname string           // option 12 or the reservation's name
	State    State            // see State
	Expires  time.Time        // end of the offer hold, lease or quarantine
	Updated  time.Time        // time of the last change
	// Version is managed by the Store: 0 for a lease not yet stored, then
	// incremented by every successful Put. It makes Put a compare-and-swap.
	Version uint64
}

// Active reports whether l holds its address at now: Offered or Bound and
// not expired.
func (l Lease) Active(now time.Time) bool {
	return (l.State == Offered || l.State == Bound) && l.Expires.After(now)
}

// Free reports whether the address of l may be given to a new client at
// now: its lease, offer hold or quarantine has ended.
func (l Lease) Free(now time.Time) bool { return !l.Expires.After(now) }

// Filter selects leases for Store.Find.
type Filter struct {
	// First and Last bound the addresses, inclusive; an invalid (zero)
	// Addr leaves that end open.
	First, Last netip.Addr
	// States, when not empty, keeps only leases in one of these states.
	States []State
	// ExpiresBy, when not zero, keeps only leases with Expires <= ExpiresBy
	// and orders them by Expires (oldest first, then address) instead of
	// by address.
	ExpiresBy time.Time
	// Limit caps the number of leases returned; 0 means no limit.
	Limit int
}

// Match reports whether l passes the filter's address, state and expiry
// conditions (not Limit). Store implementations may use it.
func (f Filter) Match(l Lease) bool {
	if f.First.IsValid() && l.Addr.Less(f.First) {
		return false
	}
	if f.Last.IsValid() && f.Last.Less(l.Addr) {
		return false
	}
	if !f.ExpiresBy.IsZero() && l.Expires.After(f.ExpiresBy) {
		return false
	}
	if len(f.States) == 0 {
		return true
	}
	for _, s := range f.States {
		if l.State == s {
			return true
		}
	}
	return false
}

// Store persists leases. Implementations must be safe for concurrent use
// and must never hold two leases for one address. Put is the only write and
// it is a compare-and-swap, so decisions made on a stale read cannot
// overwrite a newer lease: this is what keeps one address from going to
// two clients, also across processes sharing a database.
//
// Times keep at least microsecond precision (SQLite keeps nanoseconds,
// PostgreSQL microseconds) and must lie between the years 1678 and 2262;
// they may come back in another location, compare with time.Time.Equal.
type Store interface {
	// Get returns the lease on addr, or an error wrapping ErrNotFound.
	Get(ctx context.Context, addr netip.Addr) (Lease, error)
	// ByKey returns every lease whose Key is key, in address order.
	ByKey(ctx context.Context, key ClientKey) ([]Lease, error)
	// Find returns the leases selected by f (see Filter for the order).
	Find(ctx context.Context, f Filter) ([]Lease, error)
	// Put stores l if the stored lease on l.Addr has Version l.Version
	// (0: there must be none) and returns it with its new Version; else it
	// returns an error wrapping ErrConflict and changes nothing. When Put
	// returns nil the lease is durable (committed to disk for a persistent
	// store). When it returns another error (I/O, ctx) the write may or may
	// not have happened.
	Put(ctx context.Context, l Lease) (Lease, error)
}

// notFound is Get's miss: "lease: get ADDR: lease: not found", wrapping
// ErrNotFound. A type rather than fmt.Errorf: a miss is the common case
// of choosing a never-used address, on every new client's exchange, and
// the message is only formatted when someone reads it.
type notFound struct{ addr netip.Addr }

func (e notFound) Error() string { return "lease: get " + e.addr.String() + ": " + ErrNotFound.Error() }
func (e notFound) Unwrap() error { return ErrNotFound }
