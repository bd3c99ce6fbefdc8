package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL to the group.
const stopGrace = 3 * time.Second

// runTimeout bounds a command run by Run.
const runTimeout = 2 * time.Minute

// tailOnFailure is how much of a process's output the cleanup logs when the test failed.
const tailOnFailure = 4 << 10

var procCounter atomic.Int64

// Proc is a process started by Start inside a namespace, leader of its own process group.
// Do not call Cmd.Wait: Start already waits; use Done, Err or Stop.
type Proc struct {
	// Cmd is the started command (`ip netns exec NS name args...`, which execs name, so
	// Cmd.Process.Pid is the process itself and its process group id).
	Cmd *exec.Cmd
	// LogPath is the file receiving the process's stdout and stderr.
	LogPath string

	name     string
	done     chan struct{}
	err      error // set before done is closed
	stopOnce sync.Once
}

// Start runs name with args inside namespace ns (the current namespace when ns is "") with
// setsid, so it leads its own process group; stdout and stderr go to a file under t.TempDir().
// t.Cleanup stops the whole group (SIGTERM, then SIGKILL after 3 s) and, when the test failed,
// logs the tail of the output.
func Start(t testing.TB, ns string, name string, args ...string) *Proc {
	t.Helper()
	argv := append([]string{name}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	logPath := filepath.Join(t.TempDir(), fmt.Sprintf("%s.%d.log", filepath.Base(name), procCounter.Add(1)))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("lab: start %s: %v", name, err)
	}
	defer f.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Setsid: own session and process group, so Stop reaches every descendant. Pdeathsig: if the
	// test binary dies without cleanups (a test timeout), the leader dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("lab: start %s in namespace %q: %v", name, ns, err)
	}
	p := &Proc{Cmd: cmd, LogPath: logPath, name: name, done: make(chan struct{})}
	createdMu.Lock()
	createdPGs[cmd.Process.Pid] = strings.Join(argv, " ")
	createdMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("lab: output of %s (%s), last %d bytes:\n%s", name, logPath, tailOnFailure, tail(p.Output(), tailOnFailure))
		}
	})
	return p
}

// Output returns everything the process has written so far (stdout and stderr).
func (p *Proc) Output() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(lab: read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns the process's exit error (nil for exit status 0) once it has exited, and an error
// saying it is still running before that.
func (p *Proc) Err() error {
	if !p.Exited() {
		return fmt.Errorf("lab: %s (pid %d) is still running", p.name, p.Cmd.Process.Pid)
	}
	return p.err
}

// Stop ends the process group: SIGTERM, then SIGKILL if the leader has not exited after 3 s, then
// SIGKILL to any member still left. It returns when the leader has exited. Calling it again does
// nothing.
func (p *Proc) Stop() {
	p.stopOnce.Do(func() {
		pg := p.Cmd.Process.Pid
		if !p.Exited() {
			_ = syscall.Kill(-pg, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(stopGrace):
			}
		}
		// Members of the group may outlive the leader; SIGKILL whatever is left.
		_ = syscall.Kill(-pg, syscall.SIGKILL)
		<-p.done
		for i := 0; i < 30 && groupAlive(pg); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		createdMu.Lock()
		if !groupAlive(pg) {
			delete(createdPGs, pg)
		}
		createdMu.Unlock()
	})
}

// Run runs name with args inside namespace ns (the current namespace when ns is "") to
// completion, at most 2 minutes, and returns its combined stdout and stderr.
func Run(t testing.TB, ns string, name string, args ...string) (string, error) {
	t.Helper()
	argv := append([]string{name}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", runTimeout, err)
		}
		return string(out), fmt.Errorf("lab: run %q in namespace %q: %w", strings.Join(argv, " "), ns, err)
	}
	return string(out), nil
}

// WaitFor calls cond at once and then every 100 ms until it returns true; if timeout passes
// first, it fails the test saying what it was waiting for.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail returns the last n bytes of s, starting at a line boundary when one is near.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < 200 {
		s = s[i+1:]
	}
	return "…\n" + s
}

// groupAlive reports whether process group pg has a member that is not a zombie (a killed
// orphan stays a zombie until init reaps it, which may take a while; it holds nothing).
func groupAlive(pg int) bool {
	if err := syscall.Kill(-pg, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, d := range procs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name (which may contain spaces): state ppid pgrp ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if f[2] == strconv.Itoa(pg) {
			return true
		}
	}
	return false
}
