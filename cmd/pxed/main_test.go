package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes checks the contract in DESIGN.md: 0 ok, 2 for usage and
// configuration mistakes, with a message that names the flag or file:line
// and what to write instead.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "pxed.yaml")
	if err := os.WriteFile(bad, []byte("interfaces: [lo]\ndhcp:\n  mode: relay\nprofiles:\n  p:\n    kernel: /nonexistent/vmlinuz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no command", nil, exitUsage, "Usage:"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{"version", []string{"version"}, exitOK, ""},
		{"help flag", []string{"boot", "-h"}, exitOK, "-kernel"},
		{"unknown flag", []string{"serve", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"leases", "extra"}, exitUsage, `leases: unexpected argument "extra"`},
		{"boot without kernel", []string{"boot", "--interface", "lo"}, exitUsage, "--kernel is required"},
		{"boot on a missing interface", []string{"boot", "--interface", "pxed-nope0", "--kernel", bad}, exitUsage, `--interface: interface "pxed-nope0" does not exist`},
		{"boot errors name the flag", []string{"boot", "--interface", "lo", "--kernel", "/nonexistent/vmlinuz"}, exitUsage, `--kernel: file "/nonexistent/vmlinuz" does not exist`},
		{"boot image errors name the flag", []string{"boot", "--interface", "lo", "--image", "/nonexistent/live.iso"}, exitUsage, `--image: file "/nonexistent/live.iso" does not exist`},
		{"config mistakes name file:line", []string{"serve", "--config", bad}, exitUsage, bad + ":3: dhcp.mode"},
		{"missing config file", []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, exitUsage, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String()+stdout.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, stdout.String(), stderr.String())
			}
		})
	}
}
