package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"pxed/internal/events"
)

// sseMessage is one server-sent event as read by a client.
type sseMessage struct {
	event string // "" for the default type
	data  string
}

// readSSE reads messages from r and sends them on the returned channel, comments
// (heartbeats) as event ":".
func readSSE(r io.Reader) <-chan sseMessage {
	out := make(chan sseMessage, 4096)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(r)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.data != "" || m.event != "" {
					out <- m
				}
				m = sseMessage{}
			case strings.HasPrefix(line, ":"):
				out <- sseMessage{event: ":", data: line}
			case strings.HasPrefix(line, "event: "):
				m.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				m.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan sseMessage, skipComments bool) sseMessage {
	t.Helper()
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatal("stream ended")
			}
			if skipComments && m.event == ":" {
				continue
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no message from the stream in 10 s")
		}
	}
}

// TestStreamSendsEventsAsRecorded: a client of GET /api/events gets each
// event recorded after it connected, as `data: {event}` in order, with the
// headers an EventSource needs.
func TestStreamSendsEventsAsRecorded(t *testing.T) {
	l := &events.Log{}
	mux := http.NewServeMux()
	(&Stream{Events: l}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	msgs := readSSE(resp.Body)
	if m := next(t, msgs, false); m.event != ":" { // the preamble: the subscription is live
		t.Fatalf("first message %+v, want the opening comment", m)
	}
	stages := []events.Stage{events.StageDiscover, events.StageOffer, events.StageTFTPDone, events.StageKernel}
	for _, st := range stages {
		l.Record(events.Event{MAC: "52:54:00:00:00:01", Stage: st, Detail: "line1\nline2"})
	}
	for _, want := range stages {
		m := next(t, msgs, true)
		var e events.Event
		if err := json.Unmarshal([]byte(m.data), &e); err != nil || m.event != "" {
			t.Fatalf("message %+v: %v, want a default-type event", m, err)
		}
		if e.Stage != want || e.MAC != "52:54:00:00:00:01" || e.Detail != "line1\nline2" {
			t.Fatalf("got %+v, want stage %s of 52:54:00:00:00:01", e, want)
		}
	}
}

// TestStreamSlowClientDropsAndResyncs: a client that does not read makes
// the stream miss events, never the recorder wait; the client is told to
// resync, with the count, and every event is either sent or counted.
func TestStreamSlowClientDropsAndResyncs(t *testing.T) {
	l := &events.Log{}
	s := &Stream{Events: l, Buffer: 4}
	pr, pw := io.Pipe()
	w := &pipeWriter{h: http.Header{}, w: pw}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(w, httptest.NewRequest("GET", "/api/events", nil).WithContext(ctx))
	}()
	msgs := readSSEGated(t, pr)
	// The opening comment arrived: the subscription is live. From now on
	// nobody reads, so the handler blocks on its first write.
	const total = 3000
	start := time.Now()
	for i := 0; i < total; i++ {
		l.Record(events.Event{MAC: "52:54:00:00:00:02", Stage: events.StageHTTP})
	}
	t.Logf("recorded %d events in %v with a stalled client", total, time.Since(start))
	msgs.open()
	got, resynced := 0, uint64(0)
	for got+int(resynced) < total {
		m := next(t, msgs.ch, true)
		switch m.event {
		case "":
			got++
		case "resync":
			var r struct{ Dropped uint64 }
			if err := json.Unmarshal([]byte(m.data), &r); err != nil || r.Dropped == 0 {
				t.Fatalf("resync %q: %v", m.data, err)
			}
			resynced += r.Dropped
		default:
			t.Fatalf("unexpected message %+v", m)
		}
	}
	if resynced == 0 {
		t.Fatalf("a stalled client with a 4-event buffer got all %d events: nothing bounds it", total)
	}
	if st := s.Stats(); st.Dropped != resynced || st.Resyncs == 0 || st.Clients != 1 {
		t.Fatalf("stats %+v, want Dropped %d as resync messages said, one client", st, resynced)
	}
	// The stream goes on after a resync.
	l.Record(events.Event{MAC: "52:54:00:00:00:03", Stage: events.StageKernel})
	if m := next(t, msgs.ch, true); !strings.Contains(m.data, "52:54:00:00:00:03") {
		t.Fatalf("after the resync got %+v, want the new event", m)
	}
	cancel()
	pr.Close()
	<-done
	if st := s.Stats(); st.Clients != 0 {
		t.Fatalf("clients %d after the client left, want 0", st.Clients)
	}
}

// TestStreamHeartbeatAndLimit: an idle stream sends comments; past
// MaxClients a stream is refused with 503 and a JSON error.
func TestStreamHeartbeatAndLimit(t *testing.T) {
	l := &events.Log{}
	mux := http.NewServeMux()
	(&Stream{Events: l, Heartbeat: 10 * time.Millisecond, MaxClients: 1}).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msgs := readSSE(resp.Body)
	next(t, msgs, false) // opening comment
	if m := next(t, msgs, false); m.data != ": keep-alive" {
		t.Fatalf("idle stream sent %+v, want a keep-alive comment", m)
	}
	resp2, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if resp2.StatusCode != http.StatusServiceUnavailable || resp2.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("second stream past MaxClients 1: status %d, want 503 JSON", resp2.StatusCode)
	}
}

// pipeWriter is a ResponseWriter whose body is a pipe: it blocks as a
// client that does not read.
type pipeWriter struct {
	h http.Header
	w io.Writer
}

func (p *pipeWriter) Header() http.Header         { return p.h }
func (p *pipeWriter) WriteHeader(int)             {}
func (p *pipeWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeWriter) Flush()                      {}

// gatedSSE reads the opening comment at once, then nothing until open.
type gatedSSE struct {
	ch   <-chan sseMessage
	gate chan struct{}
}

func (g *gatedSSE) open() { close(g.gate) }

func readSSEGated(t *testing.T, r io.Reader) *gatedSSE {
	t.Helper()
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the opening comment: %v", err)
		}
		if line == "\n" {
			break
		}
	}
	g := &gatedSSE{gate: make(chan struct{})}
	pr, pw := io.Pipe()
	go func() {
		<-g.gate
		_, err := io.Copy(pw, br)
		pw.CloseWithError(err)
	}()
	g.ch = readSSE(pr)
	return g
}

// TestStreamOutlivesServerTimeouts: a stream lasts longer than the HTTP
// server's ReadTimeout and WriteTimeout (pxed bounds every request with
// them): events still arrive on the same connection afterwards.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	l := &events.Log{}
	mux := http.NewServeMux()
	(&Stream{Events: l, Heartbeat: 20 * time.Millisecond, WriteTimeout: time.Second}).Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 100*time.Millisecond, 100*time.Millisecond
	srv.Start()
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msgs := readSSE(resp.Body)
	next(t, msgs, false)
	// Heartbeats for well past both timeouts (counted, not timed: 20 of
	// them at 20 ms take at least 400 ms).
	for i := 0; i < 20; i++ {
		if m := next(t, msgs, false); m.event != ":" {
			t.Fatalf("got %+v, want keep-alive comments only", m)
		}
	}
	l.Record(events.Event{MAC: "52:54:00:00:00:04", Stage: events.StageKernel})
	if m := next(t, msgs, true); !strings.Contains(m.data, "52:54:00:00:00:04") {
		t.Fatalf("got %+v, want the event after the server's timeouts passed", m)
	}
}
