package dhcp6

import (
	"bytes"
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
	if !r.repeat(wire, func(b []byte) { got <- b }) {
		t.Fatal("repeat refused with nothing pending")
	}
	copy(wire, "XXXXX") // the loop reuses its buffer at once
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
	waitFor(t, func() bool { return r.pending.Load() == 0 })
	select {
	case b := <-got:
		t.Errorf("a third copy %q", b)
	default:
	}
}

// TestRepeaterBounded: beyond maxRepeating replies waiting, a reply is
// not repeated (a flood of requests to 4011 costs no more memory).
func TestRepeaterBounded(t *testing.T) {
	r := &repeater{delays: []time.Duration{time.Hour}}
	r.pending.Store(maxRepeating)
	if r.repeat([]byte("x"), func([]byte) { t.Error("sent") }) {
		t.Error("repeat accepted beyond maxRepeating")
	}
	if n := r.pending.Load(); n != maxRepeating {
		t.Errorf("pending = %d after a refusal, want %d", n, maxRepeating)
	}
	none := &repeater{}
	if !none.repeat([]byte("x"), func([]byte) { t.Error("sent without delays") }) {
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
