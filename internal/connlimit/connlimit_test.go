package connlimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// serve starts an HTTP server on 127.0.0.1 behind a Listener.
func serve(t *testing.T, max, perClient int) (*Listener, string) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Listener: inner, Max: max, PerClient: perClient}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }),
		ConnState: l.ConnState,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l, inner.Addr().String()
}

// dial connects from the loopback address src (127.0.0.0/8 is all local).
func dial(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// get sends one keep-alive request on c and reports whether "ok" came back.
func get(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return string(b) == "ok"
}

// closed reports whether the server closed c (EOF or reset within 5 s).
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !strings.Contains(err.Error(), "timeout")
}

// waitOpen waits until the listener counts n open connections.
func waitOpen(t *testing.T, l *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats().Open != n {
		if time.Now().After(deadline) {
			t.Fatalf("open connections %d, want %d", l.Stats().Open, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitIdle waits until n connections are idle (ConnState reports idle
// after the response is written, not when the client has read it).
func waitIdle(t *testing.T, l *Listener, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l.mu.Lock()
		idle := l.idle.Len()
		l.mu.Unlock()
		if idle == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle connections %d, want %d", idle, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPerClientReclaimsIdleThenRefusesBusy(t *testing.T) {
	l, addr := serve(t, 100, 3)
	var idle []net.Conn
	for i := 0; i < 3; i++ {
		c := dial(t, "127.0.0.1", addr)
		if !get(c) {
			t.Fatalf("request %d failed within the limit", i)
		}
		idle = append(idle, c)
		// net/http reports a connection idle after the client may have
		// read its response: wait, so the idle order is the dial order.
		waitIdle(t, l, i+1)
	}
	// A fourth connection of the same client takes the slot of its
	// connection idle the longest.
	c4 := dial(t, "127.0.0.1", addr)
	if !get(c4) {
		t.Fatal("a new connection was not served although idle ones could be reclaimed")
	}
	if !closed(idle[0]) {
		t.Fatal("the connection idle the longest was not closed")
	}
	if l.Stats().Reclaimed != 1 {
		t.Fatalf("Reclaimed = %d, want 1", l.Stats().Reclaimed)
	}
	// Connections that never send a request (slowloris) are busy, never
	// reclaimed: once they fill the client's slots, the next is refused.
	waitOpen(t, l, 3)
	waitIdle(t, l, 3) // idle[1], idle[2] and c4
	for i := 0; i < 3; i++ {
		dial(t, "127.0.0.1", addr)
	}
	waitIdle(t, l, 0) // the three busy ones replaced them
	refused := dial(t, "127.0.0.1", addr)
	if !closed(refused) {
		t.Fatal("a connection over the per-client limit with no idle slot was not closed")
	}
	if got := l.Stats().Refused; got != 1 {
		t.Fatalf("Refused = %d, want 1", got)
	}
	// Another client address is not affected.
	if c := dial(t, "127.0.0.2", addr); !get(c) {
		t.Fatal("another client was refused by one client's limit")
	}
}

func TestTotalLimitAcrossClients(t *testing.T) {
	l, addr := serve(t, 4, 4)
	for i := 0; i < 4; i++ { // four busy connections from four addresses
		dial(t, fmt.Sprintf("127.0.0.%d", 10+i), addr)
	}
	waitOpen(t, l, 4)
	if c := dial(t, "127.0.0.20", addr); !closed(c) {
		t.Fatal("a connection over the total limit was not refused")
	}
	if l.Stats().Refused != 1 || l.Stats().Open != 4 {
		t.Fatalf("stats %+v, want 1 refused, 4 open", l.Stats())
	}
}

func TestSlotFreedOnClose(t *testing.T) {
	l, addr := serve(t, 2, 2)
	a := dial(t, "127.0.0.1", addr)
	dial(t, "127.0.0.1", addr)
	waitOpen(t, l, 2)
	a.Close() // the server sees EOF and closes its side
	waitOpen(t, l, 1)
	if c := dial(t, "127.0.0.1", addr); !get(c) {
		t.Fatal("a freed slot was not reused")
	}
}

// TestReadFromKeepsSendfile: an accepted connection is an io.ReaderFrom that
// hands files to the TCP connection's own ReadFrom, so net/http still sends
// them with sendfile(2) through the wrapper, and the bytes arrive whole.
func TestReadFromKeepsSendfile(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{Listener: inner, Max: 4}
	t.Cleanup(func() { l.Close() })
	c := dial(t, "127.0.0.1", inner.Addr().String())
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	rf, ok := sc.(io.ReaderFrom)
	if !ok {
		t.Fatal("accepted connection is not an io.ReaderFrom: net/http would copy files through user memory")
	}
	want := strings.Repeat("pxed", 300_000)
	f, err := os.CreateTemp(t.TempDir(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(want); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	n, err := rf.ReadFrom(f)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("ReadFrom = %d, %v; want %d bytes", n, err, len(want))
	}
	sc.Close()
	if g := <-got; g != want {
		t.Fatalf("received %d bytes, want the file's %d", len(g), len(want))
	}
}
