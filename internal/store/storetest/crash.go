package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"pxed/internal/lease"
)

// KillMidRun runs this test binary's childTest in its own process group with
// env=value, reads the lines "TAG ADDR KEY" it prints for each write that
// returned success, SIGKILLs it once want of them arrived (or after 60 s),
// reads what was already in the pipe, and returns every acknowledged address
// with its client. Two acknowledgements of one address fail the test; so do
// other lines when strict (else they are logged).
func KillMidRun(t *testing.T, childTest, env, value, tag string, want int, strict bool) map[netip.Addr]lease.ClientKey {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+value)
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

// CrashChild is the body of a crash test's child process, run by
// KillMidRun from parentTest with env set to the store's location: it
// opens the store there and runs child on it until killed (exit status 3
// when either fails). Without env it skips: the test is only a helper
// process.
func CrashChild(t *testing.T, env, parentTest string, open func(string) (lease.Store, error), child func(lease.Store) error) {
	where := os.Getenv(env)
	if where == "" {
		t.Skip("helper process for " + parentTest + ", runs only when " + env + " is set")
	}
	s, err := open(where)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	if err := child(s); err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	os.Exit(0)
}

// CrashChildPuts is the child of a store crash test: 32 goroutines claim
// addresses of 198.18.0.0/16 (two keys race for each address) and print
// "ok ADDR KEY" after each Put that returned nil, until killed. A failed
// Put is printed as an "err" line; it returns nil.
func CrashChildPuts(s lease.Store) error {
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			key := lease.ClientKey(fmt.Sprintf("key-%d", w%2))
			for i := 0; i < 1<<20; i++ { // bounded; the parent kills us long before
				a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}).Next()
				if i%16 != w/2 {
					continue // writer pairs w, w^1 race for the same addresses
				}
				_, err := s.Put(context.Background(), lease.Lease{Addr: a, Key: key, State: lease.Bound,
					Expires: time.Unix(2e9, 0), Updated: time.Unix(2e9, 0)})
				if errors.Is(err, lease.ErrConflict) {
					continue
				}
				mu.Lock()
				if err != nil {
					fmt.Fprintln(out, "err", err)
				} else {
					fmt.Fprintln(out, "ok", a, string(key))
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return nil
}

// CheckAcked fails the test unless every acknowledged lease is in s for
// its client (and Bound, when bound).
func CheckAcked(t *testing.T, s lease.Store, acked map[netip.Addr]lease.ClientKey, bound bool) {
	t.Helper()
	for a, key := range acked {
		l, err := s.Get(context.Background(), a)
		if err != nil {
			t.Fatalf("acknowledged lease %v for %s lost: %v", a, key, err)
		}
		if l.Key != key || (bound && l.State != lease.Bound) {
			t.Fatalf("address %v acknowledged to %s, stored %s %v", a, key, l.Key, l.State)
		}
	}
}

// CheckOneRowPerAddress fails the test when s holds two leases of one
// address, and returns how many leases it holds.
func CheckOneRowPerAddress(t *testing.T, s lease.Store) int {
	t.Helper()
	ls, err := s.Find(context.Background(), lease.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	for _, l := range ls {
		if seen[l.Addr] {
			t.Fatalf("%d rows: address %v has two holders", len(ls), l.Addr)
		}
		seen[l.Addr] = true
	}
	return len(ls)
}
