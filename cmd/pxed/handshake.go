package main

import (
	"io"
	"net/netip"
	"strings"

	"pxed/internal/events"
)

// handshakeLog is the ErrorLog of the HTTPS boot listener. net/http
// reports a failed TLS handshake there ("http: TLS handshake error from
// ADDR: ERR") and nowhere else; each one also becomes an http-error event
// of the machine at ADDR, saying what it usually means, so that a machine
// whose firmware refused pxed's certificate shows why on its timeline
// (the firmware itself says only that it could not get the boot file).
// Every line goes on to out.
type handshakeLog struct {
	out io.Writer
	ev  events.Recorder
}

const handshakePrefix = "http: TLS handshake error from "

func (h handshakeLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	if i := strings.Index(line, handshakePrefix); i >= 0 && h.ev != nil {
		if addr, why, ok := strings.Cut(line[i+len(handshakePrefix):], ": "); ok {
			if ap, err := netip.ParseAddrPort(addr); err == nil {
				h.ev.Record(events.Event{IP: ap.Addr().Unmap(), Stage: events.StageHTTPError, Detail: handshakeDetail(why)})
			}
		}
	}
	return h.out.Write(p)
}

// handshakeDetail explains a failed handshake of the HTTPS boot listener.
func handshakeDetail(why string) string {
	d := "HTTPS boot: TLS handshake failed: " + why
	switch {
	case strings.Contains(why, "unknown certificate authority"), strings.Contains(why, "bad certificate"),
		strings.Contains(why, "certificate unknown"), strings.Contains(why, "connection reset by peer"), strings.HasSuffix(why, "EOF"):
		// EDK II hangs up without an alert on a certificate it does not
		// trust (a reset); other clients send an alert.
		d += " (the client hung up on pxed's certificate: a UEFI firmware does so when no CA it trusts signed it; " +
			"enroll the CA in the firmware, see README \"HTTPS Boot\")"
	case strings.Contains(why, "no cipher suite"), strings.Contains(why, "protocol version"):
		d += " (the client and pxed share no TLS version or cipher suite)"
	}
	return d
}
