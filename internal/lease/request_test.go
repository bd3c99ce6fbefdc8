package lease

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestRequest covers RFC 2131 §4.3.2: each case prepares the store, sends
// one DHCPREQUEST from client 1 and checks the decision.
func TestRequest(t *testing.T) {
	ours := ip("192.0.2.1")
	type req = RequestRequest
	cases := []struct {
		name    string
		nonAuth bool
		cfg     func(*Config)
		setup   func(*fixture)
		req     req // Key and MAC default to client 1
		want    Action
		reason  string // substring of Decision.Reason
		check   func(*testing.T, *fixture, Lease)
	}{
		// SELECTING
		{name: "selecting: our offer is acknowledged",
			setup: func(f *fixture) { f.mustOffer(1, "", "192.0.2.10") },
			req:   req{ServerID: ours, Requested: ip("192.0.2.10")}, want: Ack, reason: "selecting",
			check: func(t *testing.T, f *fixture, l Lease) {
				if l.State != Bound || !l.Expires.Equal(start.Add(time.Hour)) || l.Addr != ip("192.0.2.10") {
					t.Fatalf("lease = %+v, want bound for 1h", l)
				}
				if got := f.get("192.0.2.10"); got.State != Bound || got.Version != l.Version {
					t.Fatalf("stored = %+v, want the acknowledged lease", got)
				}
			}},
		{name: "selecting: address offered to another client is refused",
			setup: func(f *fixture) { f.mustOffer(2, "", "192.0.2.10") },
			req:   req{ServerID: ours, Requested: ip("192.0.2.10")}, want: Nak, reason: "another client"},
		{name: "selecting: address never offered is refused",
			req: req{ServerID: ours, Requested: ip("192.0.2.15")}, want: Nak, reason: "no lease on record"},
		{name: "selecting: refused even when not authoritative", nonAuth: true,
			req: req{ServerID: ours, Requested: ip("192.0.2.15")}, want: Nak},
		{name: "selecting: late request after the offer hold, address still free",
			setup: func(f *fixture) { f.mustOffer(1, "", "192.0.2.10"); f.clock.Advance(5 * time.Minute) },
			req:   req{ServerID: ours, Requested: ip("192.0.2.10")}, want: Ack},
		{name: "selecting: offered address in ciaddr instead of option 50",
			setup: func(f *fixture) { f.mustOffer(1, "", "192.0.2.10") },
			req:   req{ServerID: ours, CIAddr: ip("192.0.2.10")}, want: Ack},
		{name: "selecting: no address at all",
			req: req{ServerID: ours}, want: Ignore, reason: "no requested address"},
		{name: "selecting another server drops our offer",
			setup: func(f *fixture) { f.mustOffer(1, "", "192.0.2.10") },
			req:   req{ServerID: ip("192.0.2.2"), Requested: ip("198.51.100.7")}, want: Ignore, reason: "chose server 192.0.2.2",
			check: func(t *testing.T, f *fixture, _ Lease) {
				// The offer was only in memory: dropped, nothing stored.
				if _, err := f.store.Get(context.Background(), ip("192.0.2.10")); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(192.0.2.10) err = %v, want ErrNotFound", err)
				}
				f.mustOffer(2, "", "192.0.2.10")
			}},
		{name: "selecting another server keeps a bound lease",
			setup: func(f *fixture) { f.bind(1, "192.0.2.10") },
			req:   req{ServerID: ip("192.0.2.2"), Requested: ip("198.51.100.7")}, want: Ignore,
			check: func(t *testing.T, f *fixture, _ Lease) {
				if l := f.get("192.0.2.10"); l.State != Bound {
					t.Fatalf("lease = %v, want still bound", l.State)
				}
			}},

		// INIT-REBOOT
		{name: "init-reboot: own lease is acknowledged",
			setup: func(f *fixture) { f.bind(1, "192.0.2.10"); f.clock.Advance(time.Minute) },
			req:   req{Requested: ip("192.0.2.10")}, want: Ack, reason: "init-reboot",
			check: func(t *testing.T, f *fixture, l Lease) {
				if !l.Expires.Equal(f.clock.Now().Add(time.Hour)) {
					t.Fatalf("expires %v, want extended to now+1h", l.Expires)
				}
			}},
		{name: "init-reboot: own expired lease still free is acknowledged",
			setup: func(f *fixture) { f.bind(1, "192.0.2.10"); f.clock.Advance(3 * time.Hour) },
			req:   req{Requested: ip("192.0.2.10")}, want: Ack},
		{name: "init-reboot: wrong network, authoritative",
			req: req{Requested: ip("198.51.100.10")}, want: Nak, reason: "not on network"},
		{name: "init-reboot: wrong network, not authoritative", nonAuth: true,
			req: req{Requested: ip("198.51.100.10")}, want: Ignore, reason: "not on network"},
		{name: "init-reboot: another client's lease, authoritative",
			setup: func(f *fixture) { f.bind(2, "192.0.2.10") },
			req:   req{Requested: ip("192.0.2.10")}, want: Nak, reason: "leased to another client"},
		{name: "init-reboot: another client's lease, not authoritative", nonAuth: true,
			setup: func(f *fixture) { f.bind(2, "192.0.2.10") },
			req:   req{Requested: ip("192.0.2.10")}, want: Ignore},
		{name: "init-reboot: another client's expired lease is not this client's",
			setup: func(f *fixture) { f.bind(2, "192.0.2.10"); f.clock.Advance(3 * time.Hour) },
			req:   req{Requested: ip("192.0.2.10")}, want: Nak, reason: "not leased to this client"},
		{name: "init-reboot: unknown address, authoritative",
			req: req{Requested: ip("192.0.2.15")}, want: Nak, reason: "no lease on record"},
		{name: "init-reboot: unknown address, not authoritative", nonAuth: true,
			req: req{Requested: ip("192.0.2.15")}, want: Ignore, reason: "no lease on record"},
		{name: "init-reboot: excluded address",
			req: req{Requested: ip("192.0.2.11")}, want: Nak, reason: "not in a pool"},
		{name: "init-reboot: address outside the ranges",
			req: req{Requested: ip("192.0.2.100")}, want: Nak, reason: "not in a pool"},
		{name: "init-reboot: address reserved for another client",
			cfg: func(c *Config) { c.Subnet.Reservations = []Reservation{{MAC: hw(2), Addr: ip("192.0.2.10")}} },
			setup: func(f *fixture) {
				// Leased before the reservation existed.
				f.put(Lease{Addr: ip("192.0.2.10"), Key: key(1), State: Bound, Expires: start.Add(time.Hour), Updated: start})
			},
			req: req{Requested: ip("192.0.2.10")}, want: Nak, reason: "reserved for another client"},
		{name: "init-reboot: own reservation with no row yet is acknowledged",
			cfg: func(c *Config) {
				c.Subnet.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.200"), Hostname: "node1"}}
			},
			req: req{Requested: ip("192.0.2.200")}, want: Ack,
			check: func(t *testing.T, f *fixture, l Lease) {
				if l.Hostname != "node1" || l.Key != key(1) || !bytes.Equal(l.MAC, hw(1)) {
					t.Fatalf("lease = %+v", l)
				}
			}},
		{name: "init-reboot: client with a reservation asking for another address",
			cfg: func(c *Config) { c.Subnet.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.200")}} },
			setup: func(f *fixture) {
				f.put(Lease{Addr: ip("192.0.2.10"), Key: key(1), State: Bound, Expires: start.Add(time.Hour), Updated: start})
			},
			req: req{Requested: ip("192.0.2.10")}, want: Nak, reason: "has reservation 192.0.2.200"},
		{name: "init-reboot: quarantined address",
			setup: func(f *fixture) {
				f.bind(1, "192.0.2.10")
				f.must(f.m.Decline(context.Background(), nil, key(1), ip("192.0.2.10")))
			},
			req: req{Requested: ip("192.0.2.10")}, want: Nak, reason: "quarantined"},

		// RENEWING and REBINDING
		{name: "renewing: own lease is extended",
			setup: func(f *fixture) { f.bind(1, "192.0.2.10"); f.clock.Advance(30 * time.Minute) },
			req:   req{CIAddr: ip("192.0.2.10"), Hostname: "renamed"}, want: Ack, reason: "renewing",
			check: func(t *testing.T, f *fixture, l Lease) {
				if !l.Expires.Equal(start.Add(90*time.Minute)) || l.Hostname != "renamed" {
					t.Fatalf("lease = %+v, want expiry +90m and the new hostname", l)
				}
			}},
		{name: "rebinding: own lease is extended",
			setup: func(f *fixture) { f.bind(1, "192.0.2.10"); f.clock.Advance(50 * time.Minute) },
			req:   req{CIAddr: ip("192.0.2.10"), Broadcast: true}, want: Ack, reason: "rebinding"},
		{name: "renewing: another client's lease, authoritative",
			setup: func(f *fixture) { f.bind(2, "192.0.2.10") },
			req:   req{CIAddr: ip("192.0.2.10")}, want: Nak, reason: "another client",
			check: func(t *testing.T, f *fixture, _ Lease) {
				if l := f.get("192.0.2.10"); l.Key != key(2) || l.State != Bound {
					t.Fatalf("holder changed: %+v", l)
				}
			}},
		{name: "rebinding: another client's lease, not authoritative", nonAuth: true,
			setup: func(f *fixture) { f.bind(2, "192.0.2.10") },
			req:   req{CIAddr: ip("192.0.2.10"), Broadcast: true}, want: Ignore, reason: "rebinding"},
		{name: "renewing: unknown address, authoritative",
			req: req{CIAddr: ip("192.0.2.15")}, want: Nak, reason: "no lease on record"},
		{name: "renewing: lease released by the client",
			setup: func(f *fixture) {
				f.bind(1, "192.0.2.10")
				f.must(f.m.Release(context.Background(), nil, key(1), ip("192.0.2.10")))
			},
			req: req{CIAddr: ip("192.0.2.10")}, want: Ack},
		{name: "renewing: address reused by another client after expiry",
			setup: func(f *fixture) {
				f.bind(1, "192.0.2.10")
				f.clock.Advance(2 * time.Hour)
				f.mustOffer(2, "192.0.2.10", "192.0.2.10")
			},
			req: req{CIAddr: ip("192.0.2.10")}, want: Nak, reason: "another client"},
		{name: "no server id, requested address or ciaddr",
			req: req{}, want: Ignore, reason: "without"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, func(cfg *Config) {
				cfg.Authoritative = !c.nonAuth
				if c.cfg != nil {
					c.cfg(cfg)
				}
			})
			if c.setup != nil {
				c.setup(f)
			}
			r := c.req
			if r.Key == "" {
				r.Key, r.MAC = key(1), hw(1)
			}
			d, l, err := f.m.Request(context.Background(), nil, r)
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if d.Action != c.want || !strings.Contains(d.Reason, c.reason) {
				t.Fatalf("decision = %v %q, want %v with %q", d.Action, d.Reason, c.want, c.reason)
			}
			if (d.Action == Ack) != l.Addr.IsValid() {
				t.Fatalf("decision %v with lease %+v", d.Action, l)
			}
			if c.check != nil {
				c.check(t, f, l)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	mac := hw(0x56)
	cases := []struct {
		name string
		got  ClientKey
		want string
	}{
		{"chaddr with htype", NewClientKey(nil, 1, mac), "01:52:54:00:00:00:56"},
		{"option 61 type 1 + MAC equals the chaddr key", NewClientKey(append([]byte{1}, mac...), 1, hw(9)), "01:52:54:00:00:00:56"},
		{"opaque option 61", NewClientKey([]byte{0xff, 0, 1}, 1, mac), "ff:00:01"},
		{"MACKey", MACKey(mac), "01:52:54:00:00:00:56"},
		{"empty", "", ""},
	}
	for _, c := range cases {
		if c.got.String() != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestSubnetValidation(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Subnet)
		want string // substring of the error, "" for none
	}{
		{"valid", func(*Subnet) {}, ""},
		{"IPv4 range in an IPv6 prefix", func(s *Subnet) { s.Prefix = mustPrefix("2001:db8::/64") }, "inside the prefix"},
		{"IPv4-mapped prefix", func(s *Subnet) { s.Prefix = mustPrefix("::ffff:192.0.2.0/120") }, "want a prefix"},
		{"range outside prefix", func(s *Subnet) { s.Ranges = []Range{{ip("192.0.2.10"), ip("192.0.3.1")}} }, "inside the prefix"},
		{"reversed range", func(s *Subnet) { s.Ranges = []Range{{ip("192.0.2.20"), ip("192.0.2.10")}} }, "FIRST <= LAST"},
		{"reservation outside prefix", func(s *Subnet) { s.Reservations = []Reservation{{MAC: hw(1), Addr: ip("198.51.100.1")}} }, "outside the prefix"},
		{"reservation without client", func(s *Subnet) { s.Reservations = []Reservation{{Addr: ip("192.0.2.5")}} }, "set a MAC"},
		{"address reserved twice", func(s *Subnet) {
			s.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.5")}, {MAC: hw(2), Addr: ip("192.0.2.5")}}
		}, "reserved twice"},
		{"client reserved twice", func(s *Subnet) {
			s.Reservations = []Reservation{{MAC: hw(1), Addr: ip("192.0.2.5")}, {MAC: hw(1), Addr: ip("192.0.2.6")}}
		}, "same client"},
	}
	for _, c := range cases {
		sn := testSubnet()
		c.edit(&sn)
		_, err := New(NewMemStore(), Config{Subnet: sn})
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}
