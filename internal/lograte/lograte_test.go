package lograte

import (
	"fmt"
	"testing"
	"time"
)

func TestAllowOncePerInterval(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Interval: 10 * time.Second, Now: func() time.Time { return now }}
	if ok, n := l.Allow("a"); !ok || n != 0 {
		t.Fatalf("first event: got %v, %d; want logged, 0 suppressed", ok, n)
	}
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("a"); ok {
			t.Fatalf("event %d within the interval was allowed", i)
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key is limited separately: want allowed")
	}
	now = now.Add(10 * time.Second)
	if ok, n := l.Allow("a"); !ok || n != 5 {
		t.Fatalf("after the interval: got %v, %d; want logged with 5 suppressed", ok, n)
	}
}

func TestKeysBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &Limiter{Now: func() time.Time { return now }}
	for i := 0; i < 3*maxKeys; i++ {
		l.Allow(fmt.Sprint(i))
	}
	if len(l.keys) > maxKeys {
		t.Fatalf("%d keys remembered, want at most %d", len(l.keys), maxKeys)
	}
}
