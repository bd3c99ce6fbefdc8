package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"pxed/internal/api"
	"pxed/internal/client"
	"pxed/internal/pxe"
)

func TestTermSafe(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain name", "node-42.lab.example", "node-42.lab.example"},
		{"spaces and punctuation", `web 1 "a" \ b`, `web 1 "a" \ b`},
		{"printable Unicode", "nœud-été", "nœud-été"},
		{"ESC sequence", "x\x1b[2J\x1b[31mred", `"x\x1b[2J\x1b[31mred"`},
		{"newline forging a line", "a\n192.0.2.9  bound", `"a\n192.0.2.9  bound"`},
		{"tab breaking columns", "a\tb", `"a\tb"`},
		{"carriage return", "ok\rEVIL", `"ok\rEVIL"`},
		{"DEL", "a\x7f", `"a\x7f"`},
		{"C1 CSI", "a\u009b2J", `"a\u009b2J"`},
		{"bidi override", "abc\u202egpj.exe", `"abc\u202egpj.exe"`},
		{"no-break space", "a\u00a0b", `"a\u00a0b"`},
		{"invalid UTF-8", "a\xffb", `"a\xffb"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := termSafe(c.in); got != c.want {
				t.Errorf("termSafe(%q) = %s, want %s", c.in, got, c.want)
			}
		})
	}
}

// TestReportsEscape: no control character from the network reaches the
// terminal through the lease table or the probe and storm reports.
func TestReportsEscape(t *testing.T) {
	const evil = "x\x1b]0;pwned\x07\x1b[2J\n"
	var b bytes.Buffer
	printLeases(&b, []api.Lease{{Address: "192.0.2.10", State: "bound", MAC: "02:00:00:00:00:01", Hostname: evil,
		Client: evil, Expires: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}})
	printReport(&b, &client.Result{Verdict: evil, Configured: evil,
		Warnings:  []client.Warning{{Code: "x", Message: evil}},
		Downloads: []client.Download{{Role: "nbp", Proto: "tftp", Name: evil, Err: evil}},
		DHCP:      &client.DHCPResult{Offers: []client.Offer{{PXE: &pxe.VendorOptions{}, PXEError: evil, VendorClass: evil, BootFile: evil}}, Selection: client.Selection{Address: -1, Reason: evil}}})
	printStorm(&b, &client.StormReport{Failures: map[string]int{evil: 1}, Examples: map[string]string{evil: evil}, SHA256: map[string]string{evil: evil}})
	out := b.String()
	for _, c := range []string{"\x1b", "\x07", "\r", "\t"} {
		if strings.Contains(out, c) {
			t.Errorf("output holds %q:\n%s", c, out)
		}
	}
	if n := strings.Count(out, "pwned"); n < 10 {
		t.Errorf("the escaped strings are missing (%d found):\n%s", n, out)
	}
}
