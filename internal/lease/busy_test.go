package lease

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// TestBusyUnderDeferred: a Manager call given a Deferred (the DHCP
// socket's reader) never waits for another call of the same client: while
// an Offer of that client is probing an address, Request, Release, Decline
// and Offer return ErrBusy at once; another client is served; without a
// Deferred the call is not refused (it decides once the probe is over).
func TestBusyUnderDeferred(t *testing.T) {
	probing, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f := newFixture(t, func(c *Config) {
		c.Probe = func(context.Context, netip.Addr) bool {
			once.Do(func() {
				close(probing)
				<-release
			})
			return false
		}
	})
	offered := make(chan error, 1)
	go func() {
		_, err := f.offer(1, "")
		offered <- err
	}()
	released := false
	defer func() {
		if !released {
			close(release) // let a call that waited (a failure) end
		}
	}()
	<-probing
	ctx, d := context.Background(), new(Deferred)
	// within runs call and fails the test when it waits (5 s).
	within := func(name string, call func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatalf("%s under a Deferred waited for the client's probe", name)
			return nil
		}
	}
	busy := map[string]func() error{
		"Request": func() error {
			_, _, err := f.m.Request(ctx, d, RequestRequest{Key: key(1), MAC: hw(1), Requested: ip("192.0.2.10")})
			return err
		},
		"Release": func() error { return f.m.Release(ctx, d, key(1), ip("192.0.2.10")) },
		"Decline": func() error { return f.m.Decline(ctx, d, key(1), ip("192.0.2.10")) },
		"Offer": func() error {
			_, err := f.m.Offer(ctx, d, OfferRequest{Key: key(1), MAC: hw(1)})
			return err
		},
	}
	for name, call := range busy {
		if err := within(name, call); !errors.Is(err, ErrBusy) {
			t.Errorf("%s of the client being probed: %v, want ErrBusy", name, err)
		}
	}
	// Another client is not held up.
	if d, _, err := f.m.Request(ctx, d, RequestRequest{Key: key(2), MAC: hw(2), Requested: ip("192.0.2.12")}); err != nil || d.Action != Nak {
		t.Errorf("Request of another client: %v, %v; want a NAK (no lease), no error", d, err)
	}
	// Without a Deferred the call waits for the probe, then decides.
	decided := make(chan error, 1)
	go func() {
		_, _, err := f.m.Request(context.Background(), nil, RequestRequest{Key: key(1), MAC: hw(1), Requested: ip("192.0.2.10")})
		decided <- err
	}()
	released = true
	close(release)
	if err := <-offered; err != nil {
		t.Fatalf("Offer: %v", err)
	}
	if err := <-decided; err != nil {
		t.Errorf("Request without a Deferred: %v, want a decision", err)
	}
}
