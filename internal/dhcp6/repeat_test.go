package dhcp6

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// TestRepeaterSendsCopies: each delay sends one copy of the reply as it
// was, whatever the loop writes into its buffer afterwards, and then no
// more.
func TestRepeaterSendsCopies(t *testing.T) {
	r := &repeater{delays: []time.Duration{time.Millisecond, 5 * time.Millisecond}}
	got := make(chan []byte, 4)
	wire := []byte("reply one")
	start := time.Now()
	to := netip.MustParseAddrPort("[2001:db8::1000]:4011")
	if !r.repeat(wire, to, func(b []byte) { got <- b }) {
		t.Fatal("repeat refused with nothing pending")
	}
	copy(wire, "XXXXX") // the loop reuses its buffer at once
	if r.repeat([]byte("reply two"), to, func(b []byte) { t.Errorf("second reply to %v repeated: %q", to, b) }) {
		t.Error("a second reply to the same destination accepted while the first one's copies wait")
	}
	for i := range 2 {
		select {
		case b := <-got:
			if !bytes.Equal(b, []byte("reply one")) {
				t.Errorf("copy %d = %q, want the reply as sent", i, b)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("copy %d never sent", i)
		}
	}
	if d := time.Since(start); d < 5*time.Millisecond {
		t.Errorf("both copies within %v, want the second after 5ms", d)
	}
	waitFor(t, func() bool { return r.waiting() == 0 })
	select {
	case b := <-got:
		t.Errorf("a third copy %q", b)
	default:
	}
}

// TestRepeaterBounded: beyond maxRepeating destinations waiting, a reply
// is not repeated (a flood of requests to 4011 costs no more memory).
func TestRepeaterBounded(t *testing.T) {
	r := &repeater{delays: []time.Duration{time.Hour}}
	base := netip.MustParseAddr("2001:db8::").As16()
	for i := range maxRepeating {
		a := base
		a[14], a[15] = byte(i>>8), byte(i)
		if !r.repeat([]byte("x"), netip.AddrPortFrom(netip.AddrFrom16(a), 4011), func([]byte) {}) {
			t.Fatalf("reply %d refused below maxRepeating", i)
		}
	}
	if r.repeat([]byte("x"), netip.MustParseAddrPort("[2001:db8:1::1]:4011"), func([]byte) { t.Error("sent") }) {
		t.Error("repeat accepted beyond maxRepeating")
	}
	if n := r.waiting(); n != maxRepeating {
		t.Errorf("waiting = %d after a refusal, want %d", n, maxRepeating)
	}
	none := &repeater{}
	if !none.repeat([]byte("x"), netip.AddrPort{}, func([]byte) { t.Error("sent without delays") }) {
		t.Error("no delays: repeat refused")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
