package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"pxed/internal/events"
)

type eventList struct {
	mu  sync.Mutex
	evs []events.Event
}

func (l *eventList) Record(e events.Event) { l.mu.Lock(); l.evs = append(l.evs, e); l.mu.Unlock() }

func (l *eventList) all() []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]events.Event(nil), l.evs...)
}

// TestHandshakeEvent: a client that does not trust the HTTPS boot
// listener's certificate hangs up in the handshake; the machine at its
// address gets an http-error event saying so and what to do, and the
// log line still goes out.
func TestHandshakeEvent(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pxed test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var outMu sync.Mutex
	rec := &eventList{}
	srv := &http.Server{Handler: http.NotFoundHandler(),
		ErrorLog: log.New(handshakeLog{out: lockedWriter{&outMu, &out}, ev: rec}, "", 0)}
	go srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}))
	defer srv.Close()

	// The client's verification fails (no CA it trusts signed the
	// certificate): it sends an alert and hangs up.
	if c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		c.Close()
		t.Fatal("the handshake succeeded with an untrusted certificate")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.all()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling for the server's goroutine, bounded
	}
	evs := rec.all()
	if len(evs) != 1 {
		t.Fatalf("%d events, want 1: %+v", len(evs), evs)
	}
	e := evs[0]
	if e.Stage != events.StageHTTPError || e.IP.String() != "127.0.0.1" || !strings.Contains(e.Detail, "TLS handshake failed") ||
		!strings.Contains(e.Detail, "enroll the CA") {
		t.Errorf("event %+v", e)
	}
	outMu.Lock()
	defer outMu.Unlock()
	if !strings.Contains(out.String(), "TLS handshake error from 127.0.0.1:") {
		t.Errorf("log line not passed on: %q", out.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestHandshakeDetail(t *testing.T) {
	for why, want := range map[string]string{
		"read tcp 192.0.2.1:4433->192.0.2.50:1234: read: connection reset by peer": "enroll the CA",
		"remote error: tls: unknown certificate authority":                         "enroll the CA",
		"tls: no cipher suite supported by both client and server":                 "share no TLS version or cipher suite",
		"tls: first record does not look like a TLS handshake":                     "TLS handshake failed: tls: first record",
	} {
		if got := handshakeDetail(why); !strings.Contains(got, want) {
			t.Errorf("handshakeDetail(%q) = %q, want it to say %q", why, got, want)
		}
	}
}
