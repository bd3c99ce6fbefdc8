package client

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// TestDiscardTCP: discard drops exactly n bytes of a TCP stream (recv with
// MSG_TRUNC), counts them, leaves what follows in place, and tells a
// stream that ends early (io.EOF).
func TestDiscardTCP(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	body := make([]byte, 5<<20+3)
	for i := range body {
		body[i] = byte(i * 31)
	}
	tail := []byte("after the body")
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(body)
		c.Write(tail)
		c.Close()
	}()
	conn, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if n, err := discard(conn, int64(len(body))); n != int64(len(body)) || err != nil {
		t.Fatalf("discard: %d bytes, %v; want %d, nil", n, err, len(body))
	}
	got, err := io.ReadAll(conn)
	if err != nil || !bytes.Equal(got, tail) {
		t.Fatalf("after discard read %q, %v; want %q", got, err, tail)
	}
	// The stream has ended: asking for more is io.EOF with what came.
	conn2, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(body[:1000])
		c.Close()
	}()
	if n, err := discard(conn2, 5000); n != 1000 || !errors.Is(err, io.EOF) {
		t.Fatalf("discard of a short stream: %d bytes, %v; want 1000, io.EOF", n, err)
	}
}
