package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/events"
)

// Stream serves GET /api/events: the boot events as they are recorded, as
// server-sent events (text/event-stream), for the web page and scripts.
//
// Each event is one message `data: {event JSON}` (the default message type,
// as GET /api/machines/{mac}/timeline encodes events). Other named messages
// (`event: machine`, the inventory row of a machine that changed) come from
// Extra when set. When a client reads more slowly than events arrive, its
// buffer (Buffer events) fills and it misses events; the boot path never waits
// for it. The stream then sends `event: resync` with `data: {"dropped": N}`:
// the client should fetch the state again (GET /api/machines). A comment line
// is sent every Heartbeat so proxies keep an idle stream open.
type Stream struct {
	Events *events.Log
	// Extra, when set, subscribes to other messages for the stream (the
	// machine inventory's changes); it returns the feed and a function that
	// ends the subscription. Messages it drops are its own to count.
	Extra func(buffer int) (<-chan Message, func())
	// Buffer is the number of events held for one client; 0 means 4096
	// (a storm of 1,000 machines records about 5,000 events in seconds;
	// an event is about 150 bytes, 64 streams at most: 40 MB at worst).
	Buffer int
	// Heartbeat is the interval of the keep-alive comment; 0 means 15 s.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client: one that accepts nothing
	// for this long is disconnected. 0 means 30 s.
	WriteTimeout time.Duration
	// MaxClients is the most streams open at once; past it the stream
	// answers 503. 0 means 64.
	MaxClients int
	Logger     *slog.Logger // nil logs nothing

	closeOnce sync.Once
	closed    chan struct{} // closed by Close
	initOnce  sync.Once

	clients atomic.Int64
	dropped atomic.Uint64 // events not sent to a slow client
	resyncs atomic.Uint64 // resync messages sent
}

// Message is a named server-sent event: `event: Event` and `data: Data`
// encoded as JSON.
type Message struct {
	Event string
	Data  any
}

// StreamStats are the stream's counters.
type StreamStats struct {
	Clients int64  // streams open
	Dropped uint64 // events a slow client missed (each made it resync)
	Resyncs uint64 // resync messages sent
}

// Stats returns the stream's counters.
func (s *Stream) Stats() StreamStats {
	return StreamStats{Clients: s.clients.Load(), Dropped: s.dropped.Load(), Resyncs: s.resyncs.Load()}
}

// Close ends every stream open and refuses new ones (503): the server is
// shutting down, and a stream would otherwise hold its shutdown. Give it to
// http.Server.RegisterOnShutdown.
func (s *Stream) Close() {
	s.init()
	s.closeOnce.Do(func() { close(s.closed) })
}

func (s *Stream) init() { s.initOnce.Do(func() { s.closed = make(chan struct{}) }) }

// Register adds GET /api/events to mux.
func (s *Stream) Register(mux *http.ServeMux) {
	mux.Handle("GET /api/events", s)
}

// maxBatch is the most messages written between two flushes.
const maxBatch = 256

// ServeHTTP streams the events until the client goes away.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	maxClients := int64(s.MaxClients)
	if maxClients <= 0 {
		maxClients = 64
	}
	if s.clients.Add(1) > maxClients {
		s.clients.Add(-1)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": fmt.Sprintf("too many event streams open (%d): close one, or poll GET /api/machines", maxClients)})
		return
	}
	defer s.clients.Add(-1)
	s.init()
	select {
	case <-s.closed:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "pxed is shutting down"})
		return
	default:
	}
	buffer := s.Buffer
	if buffer <= 0 {
		buffer = 4096
	}
	beat := s.Heartbeat
	if beat <= 0 {
		beat = 15 * time.Second
	}
	wto := s.WriteTimeout
	if wto <= 0 {
		wto = 30 * time.Second
	}

	sub := s.Events.Follow(buffer)
	defer sub.Close()
	var extra <-chan Message
	if s.Extra != nil {
		ch, stop := s.Extra(buffer)
		defer stop()
		extra = ch
	}

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 16<<10)
	// retry: how long a browser's EventSource waits before it reconnects.
	fmt.Fprint(bw, "retry: 2000\n: pxed events\n\n")
	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(wto))
		if err := bw.Flush(); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !flush() {
		return
	}
	tick := time.NewTicker(beat)
	defer tick.Stop()
	var seen uint64 // sub.Dropped() already reported
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.closed:
			return
		case <-tick.C:
			fmt.Fprint(bw, ": keep-alive\n\n")
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			writeEvent(bw, e)
		drain: // write what else is waiting, then flush once
			for n := 0; n < maxBatch; n++ {
				select {
				case e, ok := <-sub.C:
					if !ok {
						break drain
					}
					writeEvent(bw, e)
				default:
					break drain
				}
			}
		case m, ok := <-extra:
			if !ok {
				extra = nil
				continue
			}
			writeMessage(bw, m.Event, m.Data)
		}
		if d := sub.Dropped(); d != seen {
			s.dropped.Add(d - seen)
			s.resyncs.Add(1)
			writeMessage(bw, "resync", map[string]uint64{"dropped": d - seen})
			if s.Logger != nil {
				s.Logger.Warn("event stream client too slow: events dropped, client told to resync", "client", r.RemoteAddr, "dropped", d-seen)
			}
			seen = d
		}
		if !flush() {
			return
		}
	}
}

func writeEvent(w *bufio.Writer, e events.Event) {
	writeMessage(w, "", e)
}

// writeMessage writes one server-sent event. JSON has no raw newline, so
// the data is one line.
func writeMessage(w *bufio.Writer, name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": "encode: " + err.Error()})
		name = "error"
	}
	if name != "" {
		w.WriteString("event: ")
		w.WriteString(name)
		w.WriteByte('\n')
	}
	w.WriteString("data: ")
	w.Write(b)
	w.WriteString("\n\n")
}
