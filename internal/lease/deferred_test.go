package lease

import (
	"errors"
	"testing"
)

// Then runs its function once every write under the Deferred is finished,
// with the first failure, and at once when none is pending.
func TestDeferredThen(t *testing.T) {
	var d Deferred
	var calls []error
	record := func(err error) { calls = append(calls, err) }
	d.Then(record) // nothing queued: at once
	if len(calls) != 1 || calls[0] != nil {
		t.Fatalf("Then with nothing queued: calls %v, want one nil", calls)
	}
	calls = nil
	d.add()
	d.add()
	d.Then(record)
	d.Then(record)
	failed := errors.New("disk full")
	d.finish(failed)
	if len(calls) != 0 {
		t.Fatalf("Then ran with a write still pending: %v", calls)
	}
	d.finish(nil)
	if len(calls) != 2 || calls[0] != failed || calls[1] != failed {
		t.Fatalf("after the last write: calls %v, want the first failure twice", calls)
	}
	calls = nil
	d.Then(record) // finished since: at once, with the failure
	if len(calls) != 1 || calls[0] != failed {
		t.Fatalf("Then after the writes finished: calls %v, want [%v]", calls, failed)
	}
}
