package httpboot

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"pxed/internal/events"
)

// testToken stands for machinekey: a per-machine secret.
func testToken(mac net.HardwareAddr) string {
	return "tok" + strings.ReplaceAll(mac.String(), ":", "")
}

// TestSecretURLs: with per-machine tokens a machine's script and files
// are served only under its token; a request for another machine's (its
// MAC with no token, a wrong one, or the requester's own token) is
// refused with 403, and the event joins the requester's timeline, not
// the victim's.
func TestSecretURLs(t *testing.T) {
	f := newFixture(t, false)
	f.h.Boot.Snapshot().MachineToken = testToken
	victim := "52:54:00:12:34:56"
	victimTok := "tok525400123456"
	attacker := netip.MustParseAddr("192.0.2.66")
	f.log.Learn(clientIP, victim)
	f.log.Learn(attacker, "52:54:00:00:00:03")

	// The victim's own requests, from its address, with its token.
	w := f.doAs(t, clientAddr, "GET", knownPath+"/"+victimTok+"/script.ipxe", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("own script: %d %s", w.Code, w.Body)
	}
	for _, want := range []string{
		"kernel http://192.0.2.1:8080/boot/52-54-00-12-34-56/" + victimTok + "/vmlinuz ",
		"initrd http://192.0.2.1:8080/boot/52-54-00-12-34-56/" + victimTok + "/initrd.img ",
	} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("script lacks %q:\n%s", want, w.Body)
		}
	}
	if w := f.doAs(t, clientAddr, "GET", knownPath+"/"+victimTok+"/vmlinuz", nil); w.Code != http.StatusOK || w.Body.Len() != len(f.kernel) {
		t.Errorf("own kernel under token: %d, %d bytes", w.Code, w.Body.Len())
	}
	before := len(f.log.Timeline(victim))

	for _, path := range []string{
		knownPath + "/script.ipxe",                                    // knows the MAC only
		knownPath + "/vmlinuz",                                        //
		knownPath + "/nottoken/script.ipxe",                           // guesses
		knownPath + "/tok525400000003/script.ipxe",                    // its own token on the victim's MAC
		knownPath + "/" + victimTok + "x/script.ipxe",                 // a longer token
		knownPath + "/" + strings.ToUpper(victimTok) + "/script.ipxe", // case
		knownPath + "/" + victimTok,                                   // the token as a file name
	} {
		w := f.doAs(t, "192.0.2.66:5000", "GET", path, nil)
		if w.Code != http.StatusForbidden {
			t.Errorf("attacker GET %s = %d %q, want 403", path, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "console=ttyS0") || strings.Contains(w.Body.String(), "KERNEL") {
			t.Errorf("attacker GET %s got the victim's content", path)
		}
	}
	if n := len(f.log.Timeline(victim)); n != before {
		t.Errorf("the attacker's requests joined the victim's timeline: %d events, had %d", n, before)
	}
	said, mismatch := false, false
	for _, e := range f.log.Timeline("52:54:00:00:00:03") {
		said = said || (e.Stage == events.StageHTTPError && strings.Contains(e.Detail, "403 without machine 52:54:00:12:34:56's URL token"))
		mismatch = mismatch || e.Stage == events.StageClaimMismatch
	}
	if !said || !mismatch {
		t.Errorf("the requester's timeline does not say why (403 event %v, claim-mismatch %v): %+v", said, mismatch, f.log.Timeline("52:54:00:00:00:03"))
	}
	// The boot directory stays open: NBPs are not secrets.
	if w := f.doAs(t, "192.0.2.66:5000", "GET", "/files/snponly.efi", nil); w.Code != http.StatusOK {
		t.Errorf("/files/ with tokens on: %d", w.Code)
	}
}
