package fleet

// Change is one change of the inventory, for live views (the web UI's
// `event: machine` messages): a machine added, changed by an operator or
// a check-in, or forgotten. Seeing a known machine again is not a change
// (its boot events tell that).
type Change struct {
	Machine   Machine `json:"machine"`
	Forgotten bool    `json:"forgotten,omitempty"`
}

// Subscribe returns a channel of the changes from now on (buffered; a
// subscriber that falls behind misses changes rather than slowing the
// DHCP path) and a function that ends the subscription.
func (f *Fleet) Subscribe(buffer int) (<-chan Change, func()) {
	if buffer <= 0 {
		buffer = 256
	}
	ch := make(chan Change, buffer)
	f.subMu.Lock()
	if f.subs == nil {
		f.subs = map[int]chan Change{}
	}
	id := f.nextSub
	f.nextSub++
	f.subs[id] = ch
	f.subMu.Unlock()
	done := false
	return ch, func() {
		f.subMu.Lock()
		defer f.subMu.Unlock()
		if !done {
			done = true
			delete(f.subs, id)
			close(ch)
		}
	}
}

// publish sends c to every subscriber that keeps up.
func (f *Fleet) publish(c Change) {
	f.subMu.Lock()
	defer f.subMu.Unlock()
	for _, ch := range f.subs {
		select {
		case ch <- c:
		default:
		}
	}
}
