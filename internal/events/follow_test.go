package events

import (
	"fmt"
	"testing"
)

// TestFollowCountsDrops: a subscriber that does not read keeps its buffer's
// worth of events, in order, and Dropped counts the rest; Close closes C.
func TestFollowCountsDrops(t *testing.T) {
	l := &Log{}
	s := l.Follow(3)
	for i := 0; i < 10; i++ {
		l.Record(Event{MAC: "52:54:00:00:00:01", Stage: StageHTTP, Detail: fmt.Sprint(i)})
	}
	if d := s.Dropped(); d != 7 {
		t.Fatalf("Dropped %d, want 7 (10 events, buffer 3)", d)
	}
	s.Close()
	s.Close() // twice is fine
	var got []string
	for e := range s.C {
		got = append(got, e.Detail)
	}
	if fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("kept %v, want the first 3 in order", got)
	}
	l.Record(Event{MAC: "52:54:00:00:00:01", Stage: StageHTTP}) // no send on a closed subscription
}

// BenchmarkRecordStalledSubscribers is what recording costs the boot path
// with event streams whose clients stopped reading (each event dropped for
// them and counted), against no subscriber.
func BenchmarkRecordStalledSubscribers(b *testing.B) {
	for _, subs := range []int{0, 1, 64} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			l := &Log{}
			for i := 0; i < subs; i++ {
				s := l.Follow(1)
				defer s.Close()
			}
			macs := make([]string, 1000)
			for i := range macs {
				macs[i] = fmt.Sprintf("52:54:00:00:%02x:%02x", i>>8, i&0xff)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l.Record(Event{MAC: macs[i%len(macs)], Stage: StageTFTPDone, Detail: "ipxe.efi"})
			}
		})
	}
}

// TestDeliver: events recorded in a burst reach a subscriber together
// within FollowDelay, in order; Deliver sends those not yet sent at once
// (a subscriber about to stop misses none).
func TestDeliver(t *testing.T) {
	l := &Log{}
	s := l.Follow(200)
	defer s.Close()
	for i := range 100 {
		l.Record(Event{MAC: "52:54:00:00:00:01", Stage: StageHTTP, Detail: fmt.Sprint(i)})
	}
	l.Deliver()
	if n := len(s.C); n != 100 {
		t.Fatalf("%d events in the channel after Deliver, want all 100", n)
	}
	for i := range 100 {
		if e := <-s.C; e.Detail != fmt.Sprint(i) {
			t.Fatalf("event %d is %q: out of order", i, e.Detail)
		}
	}
	// Without Deliver, the timer sends them.
	for i := range 10 {
		l.Record(Event{MAC: "52:54:00:00:00:01", Stage: StageHTTP, Detail: fmt.Sprint(i)})
	}
	for i := range 10 {
		if e := <-s.C; e.Detail != fmt.Sprint(i) {
			t.Fatalf("event %d is %q", i, e.Detail)
		}
	}
	if d := s.Dropped(); d != 0 {
		t.Errorf("%d dropped", d)
	}
}
