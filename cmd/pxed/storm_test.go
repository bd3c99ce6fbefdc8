package main

import (
	"bytes"
	"strings"
	"testing"

	"pxed/internal/client"
)

func TestStormUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"verify needs fetch", []string{"storm", "--interface", "lo", "--verify"}, "--verify needs --fetch"},
		{"chain needs fetch", []string{"storm", "--interface", "lo", "--chain"}, "--chain needs --fetch"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tc.name, code, stderr.String(), exitUsage, tc.want)
		}
	}
}

// TestPrintStorm: the report shows the client's CPU and, with --verify,
// the hash every machine got for each file.
func TestPrintStorm(t *testing.T) {
	var b bytes.Buffer
	printStorm(&b, &client.StormReport{Clients: 2, Booted: 2, Seconds: 3, CPUSeconds: 1.5,
		SHA256: map[string]string{"kernel vmlinuz": "ab12", "nbp undionly.kpxe": "cd34"}})
	out := b.String()
	for _, want := range []string{
		"booted 2, failed 0 of 2 in 3.00 s",
		"sha256 kernel vmlinuz: ab12 (every machine that loaded it)\nsha256 nbp undionly.kpxe: cd34",
		"client CPU: 1.50 s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
