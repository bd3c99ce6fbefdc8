package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func newEngine(t *testing.T) *ClientEngine {
	t.Helper()
	e, err := NewClientEngine()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// TestClientEngineMatrix: many transfers at once through one engine, in
// lockstep and with windows, get the server's bytes and what they
// negotiated, as Client.Get does.
func TestClientEngineMatrix(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{0, 511, 512, 513, 300_000}
	files := map[int][]byte{}
	for _, n := range sizes {
		files[n] = testFile(t, dir, fmt.Sprintf("f%d", n), n)
	}
	addr := startServer(t, &Server{Handler: Dir(dir)})
	e := newEngine(t)
	var wg sync.WaitGroup
	for _, blk := range []int{0, 1456} {
		for _, win := range []int{1, 4} {
			for _, n := range sizes {
				for range 3 {
					wg.Go(func() {
						c := &Client{Blksize: blk, Windowsize: win, Tsize: true}
						var buf bytes.Buffer
						tr, err := e.Get(context.Background(), c, netip.MustParseAddr("127.0.0.1"), "", addr, fmt.Sprintf("f%d", n), &buf)
						if err != nil {
							t.Errorf("blksize %d windowsize %d, %d bytes: %v", blk, win, n, err)
							return
						}
						if !bytes.Equal(buf.Bytes(), files[n]) {
							t.Errorf("blksize %d windowsize %d: got %d bytes, want %d", blk, win, buf.Len(), n)
						}
						wantBlk, wantSize := max(blk, DefaultBlksize), int64(n)
						if n == 0 {
							wantSize = -1 // tsize 0 is not acknowledged (as TestServerClientMatrix)
						}
						if tr.Blksize != wantBlk || tr.Windowsize != win || tr.Size != wantSize || tr.Resent != 0 {
							t.Errorf("blksize %d windowsize %d: transfer %+v", blk, win, tr)
						}
					})
				}
			}
		}
	}
	wg.Wait()
}

// TestClientEngineLossAndIntruder: an engine transfer resends ACKs the
// server ignored after its timeout, and a DATA packet from another port
// never becomes part of the file (its socket is connected to the TID).
func TestClientEngineLossAndIntruder(t *testing.T) {
	want := testData(5*DefaultBlksize + 9)
	intruder := dialRaw(t)
	s := &lockstepScript{ln: dialRaw(t), tid: dialRaw(t), data: want, ignoreFirstAck: map[uint16]bool{1: true, 4: true},
		before: func(client netip.AddrPort, block uint16) {
			if block == 3 {
				intruder.send(t, client, Packet{Op: OpDATA, Block: 3, Data: bytes.Repeat([]byte("X"), DefaultBlksize)})
			}
		}}
	done := s.run()
	e := newEngine(t)
	var buf bytes.Buffer
	c := &Client{Timeout: 20 * time.Millisecond}
	tr, err := e.Get(context.Background(), c, netip.Addr{}, "", netip.MustParseAddrPort(s.ln.LocalAddr().String()), "f", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	sameBytes(t, buf.Bytes(), want)
	if tr.Resent < 2 || tr.FirstReply <= 0 {
		t.Errorf("transfer %+v: want at least the 2 ignored ACKs resent and a first reply time", tr)
	}
}

// TestClientEngineGivesUp: a server that never answers gets the request
// Retries+1 times, then the transfer fails with "no answer".
func TestClientEngineGivesUp(t *testing.T) {
	ln := dialRaw(t)
	e := newEngine(t)
	c := &Client{Timeout: 20 * time.Millisecond, Retries: 2}
	tr, err := e.Get(context.Background(), c, netip.Addr{}, "", netip.MustParseAddrPort(ln.LocalAddr().String()), "f", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "no answer after 3 tries") || tr.Resent != 2 {
		t.Fatalf("err %v, resent %d; want no answer after 3 tries, 2 resent", err, tr.Resent)
	}
	for i := range 3 {
		if p, _ := ln.recv(t); p.Op != OpRRQ {
			t.Fatalf("packet %d: %+v, want the RRQ", i, p)
		}
	}
}

// TestClientEngineCancelAndClose: a canceled context ends a waiting
// transfer at once; Close ends those still running.
func TestClientEngineCancelAndClose(t *testing.T) {
	ln := dialRaw(t)
	server := netip.MustParseAddrPort(ln.LocalAddr().String())
	e, err := NewClientEngine()
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{Timeout: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		ln.recv(t) // the RRQ: the transfer is running
		cancel()
	}()
	if _, err := e.Get(ctx, c, netip.Addr{}, "", server, "f", &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: err %v, want context.Canceled", err)
	}
	go func() {
		ln.recv(t)
		e.Close()
	}()
	if _, err := e.Get(context.Background(), c, netip.Addr{}, "", server, "f", &bytes.Buffer{}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed: err %v, want net.ErrClosed", err)
	}
	if _, err := e.Get(context.Background(), c, netip.Addr{}, "", server, "f", &bytes.Buffer{}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: err %v, want net.ErrClosed", err)
	}
}

// TestClientEngineIPv6: a transfer from an IPv6 server, given with its
// zone (a link-local server is reached through the interface it names).
func TestClientEngineIPv6(t *testing.T) {
	dir := t.TempDir()
	want := testFile(t, dir, "f", 3000)
	srv := &Server{Handler: Dir(dir)}
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close() })
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	e := newEngine(t)
	for _, server := range []netip.AddrPort{addr, netip.AddrPortFrom(addr.Addr().WithZone("lo"), addr.Port())} {
		var buf bytes.Buffer
		if _, err := e.Get(context.Background(), &Client{Blksize: 1024}, netip.Addr{}, "", server, "f", &buf); err != nil {
			t.Fatalf("%v: %v", server, err)
		}
		sameBytes(t, buf.Bytes(), want)
	}
}
