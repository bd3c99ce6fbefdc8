// Package pgtest starts throwaway PostgreSQL servers for tests: initdb in
// a temporary directory, then the server itself listening on a Unix socket
// in that directory only (no TCP port), stopped and removed afterwards. As
// root it runs them as the postgres user (initdb refuses root). Tests skip,
// saying why, when Debian's PostgreSQL (/usr/lib/postgresql/*/bin) is not
// installed.
//
// In short mode (go test -short, make unit) the tests that need a server
// skip.
//
// One server per test binary is enough for most tests (Shared, with a new
// database per test); tests that stop or restart the server take their own
// (Start).
package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// superuser is the database superuser initdb creates.
const superuser = "postgres"

// Server is a PostgreSQL server in a temporary directory.
type Server struct {
	dir  string // temporary directory: data/ and the socket
	bin  string // directory of initdb and postgres
	cred *syscall.Credential

	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{} // closed when proc has exited
	logTail *tail
	dbs     atomic.Int64
}

// BinDir returns the directory of the newest installed PostgreSQL's
// programs, or an error saying what to install.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql")
	}
	slices.SortFunc(ok, func(a, b string) int { return version(a) - version(b) })
	return ok[len(ok)-1], nil
}

// version is the major version in /usr/lib/postgresql/VERSION/bin.
func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// credential is who runs the server: nil (this process's user) unless
// root, then the postgres user.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and initdb refuses root: no postgres user to run it as (%w)", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres: uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// New creates a database cluster in a new temporary directory and starts
// its server. Stop it (which removes the directory) when done.
func New() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pxed-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, cred: cred}
	if err := s.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster in dir/data.
func (s *Server) initdb() error {
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	cmd := exec.Command(filepath.Join(s.bin, "initdb"), "-D", filepath.Join(s.dir, "data"), "-U", superuser,
		"--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	cmd.Dir = s.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// Dir is the server's temporary directory (also its socket directory).
func (s *Server) Dir() string { return s.dir }

// Start starts the server (again, after Stop or Kill) and returns once it
// accepts connections. Its log goes nowhere but into error messages.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("pgtest: server already running")
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-k", s.dir, "-c", "listen_addresses=", "-c", "max_connections=200",
		"-c", "fsync=on", "-c", "synchronous_commit=on")
	// SIGQUIT (immediate shutdown) if this process dies first: no server
	// outlives its test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	cmd.Dir = s.dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	started, exited := make(chan error, 1), make(chan struct{})
	// Pdeathsig fires when the thread that started the child exits: start
	// it from a locked thread that lives until the server has exited.
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		cmd.Wait() //nolint:errcheck // the exit is reported through exited
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.logTail = &tail{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			s.logTail.add(line)
			if !signalled && strings.Contains(line, "database system is ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(io.Discard, stderr) //nolint:errcheck // drain
	}()
	select {
	case <-ready:
	case <-exited:
		return fmt.Errorf("pgtest: postgres exited at start:\n%s", s.logTail)
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGQUIT) //nolint:errcheck
		<-exited
		return fmt.Errorf("pgtest: postgres not ready after 60 s:\n%s", s.logTail)
	}
	s.proc, s.exited = cmd, exited
	return nil
}

// Stop shuts the server down (fast: open sessions are ended, committed
// work is on disk) and waits for it; Start brings it back.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT) }

// Kill stops the server as a crash would (immediate shutdown: recovery at
// the next Start).
func (s *Server) Kill() error { return s.signal(syscall.SIGQUIT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	if err := s.proc.Process.Signal(sig); err != nil {
		return fmt.Errorf("pgtest: stop postgres: %w", err)
	}
	<-s.exited
	s.proc = nil
	return nil
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.dir))
}

// DSN is the URL of database db on the server, as the superuser.
func (s *Server) DSN(db string) string {
	q := url.Values{"host": {s.dir}, "sslmode": {"disable"}}
	return (&url.URL{Scheme: "postgres", User: url.User(superuser), Path: "/" + db, RawQuery: q.Encode()}).String()
}

// CreateDatabase creates a new empty database and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := "test_" + strconv.FormatInt(s.dbs.Add(1), 10)
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return s.DSN(name), nil
}

// Start starts a server of the test's own (Stop, Kill and Start are
// its), closed when the test ends; it skips the test when PostgreSQL is
// missing.
func Start(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip(errShort)
	}
	s, err := New()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if _, berr := BinDir(); berr != nil {
		t.Skip(berr)
	}
	if _, cerr := credential(); cerr != nil {
		t.Skip(cerr)
	}
	t.Fatal(err)
}

// errShort skips the tests of a PostgreSQL server in short mode (make
// unit: no servers).
var errShort = errors.New("short mode: needs a PostgreSQL server")

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// DB returns the DSN of a new, empty database on the server the tests of
// this binary share (started on first use; call Main from TestMain to
// stop it at the end). It skips the test when PostgreSQL is missing.
func DB(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip(errShort)
	}
	shared.once.Do(func() { shared.s, shared.err = New() })
	if shared.err != nil {
		skipOrFail(t, shared.err)
	}
	dsn, err := shared.s.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

// Main runs the tests and then stops the shared server, if one was
// started: func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.s != nil {
		if err := shared.s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// tail keeps the last lines of the server's log.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 40 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, line)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
