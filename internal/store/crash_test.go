package store

import (
	"bufio"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lease"
)

// killMidRun runs this test binary's childTest in its own process group with
// env=path, reads the lines "TAG ADDR KEY" it prints for each write that
// returned success, SIGKILLs it once want of them arrived (or after 60 s),
// reads what was already in the pipe, and returns every acknowledged address
// with its client. Two acknowledgements of one address fail the test; so do
// other lines when strict (else they are logged).
func killMidRun(t *testing.T, childTest, env, path, tag string, want int, strict bool) map[netip.Addr]lease.ClientKey {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[netip.Addr]lease.ClientKey{}
	record := func(line string) {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == tag:
			a := netip.MustParseAddr(f[1])
			if prev, dup := acked[a]; dup {
				t.Errorf("address %v acknowledged to %s and %s", a, prev, f[2])
			}
			acked[a] = lease.ClientKey(f[2])
		case line == "":
		case strict:
			t.Errorf("child: %s", line)
		default:
			t.Logf("child: %s", line)
		}
	}
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(60 * time.Second)
	for len(acked) < want && time.Now().Before(deadline) && sc.Scan() {
		record(sc.Text())
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	// Acknowledgements already written to the pipe before the kill count too.
	for sc.Scan() {
		record(sc.Text())
	}
	err = cmd.Wait() // it was killed; the signal is checked here
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child was not killed by a signal (exit: %v); it finished too early to test a crash", err)
	}
	if len(acked) < 100 {
		t.Fatalf("only %d acknowledged writes before the kill", len(acked))
	}
	return acked
}
