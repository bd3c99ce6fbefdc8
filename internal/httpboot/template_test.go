package httpboot

import (
	"strings"
	"testing"

	"pxed/internal/boot"
	"pxed/internal/events"
)

type fleetOf map[string]boot.Entry

func (f fleetOf) Lookup(mac string) (boot.Entry, bool) { e, ok := f[mac]; return e, ok }

// TestScriptTemplates: the script carries the machine's facts; a template
// that passed the load-time check but fails for this machine gives it an
// iPXE script saying why and a template-error event; a held machine gets
// the waiting script.
func TestScriptTemplates(t *testing.T) {
	f := newFixture(t, true)
	cfg := f.h.Boot.Snapshot()
	p := cfg.Profiles["linux"]
	// Fails only for hostnames "bad": the check at load time renders the
	// sample facts, which take the other branch.
	p.Cmdline = `console=ttyS0 host={{.Hostname}} rack={{.Labels.rack}}{{if eq .Hostname "bad"}}{{.Nope}}{{end}}`
	cfg.Profiles["linux"] = p
	if err := boot.CheckTemplate(p.Cmdline); err != nil {
		t.Fatalf("load-time check refused a template that renders for the sample: %v", err)
	}
	cfg.Fleet = fleetOf{knownMAC: {Hostname: "web1", Labels: map[string]string{"rack": "r7"}}}
	w := f.do(t, "GET", "/boot/"+strings.ReplaceAll(knownMAC, ":", "-")+"/script.ipxe", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "host=web1 rack=r7") {
		t.Fatalf("script: %d %q, want the facts in the command line", w.Code, w.Body.String())
	}
	cfg.Fleet = fleetOf{knownMAC: {Hostname: "bad"}}
	w = f.do(t, "GET", "/boot/"+strings.ReplaceAll(knownMAC, ":", "-")+"/script.ipxe", nil)
	if w.Code != 200 || !strings.HasPrefix(w.Body.String(), "#!ipxe\necho pxed: cannot boot "+knownMAC+": profile linux: cmdline: template:") {
		t.Fatalf("failing template: %d %q, want the error script", w.Code, w.Body.String())
	}
	found := false
	for _, e := range f.log.Timeline(knownMAC) {
		found = found || (e.Stage == events.StageTemplateError && strings.Contains(e.Detail, "Nope"))
	}
	if !found {
		t.Errorf("no template-error event naming the field: %+v", f.log.Timeline(knownMAC))
	}
	cfg.Fleet, cfg.Unknown = nil, boot.UnknownHold
	w = f.do(t, "GET", "/boot/52-54-00-00-00-77/script.ipxe", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "waiting for approval") || !strings.Contains(w.Body.String(), "chain --autofree --replace http://192.0.2.1:8080/boot/52-54-00-00-00-77/script.ipxe") {
		t.Errorf("held machine: %d %q, want the waiting script", w.Code, w.Body.String())
	}
}
