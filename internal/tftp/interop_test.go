package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Interop with real clients (Debian atftp, tftp-hpa, curl) against our server
// on 127.0.0.1. Each test skips, saying why, when its client is not installed.

func lookPath(t *testing.T, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s): %v", bin, pkg, err)
	}
	return p
}

var interopSizes = []int{0, 511, 512, 513, 1 << 20, 40 << 20}

// interopDir writes the interop files once per test.
func interopDir(t *testing.T, sizes []int) (string, map[int][32]byte) {
	dir := t.TempDir()
	sums := map[int][32]byte{}
	for _, n := range sizes {
		sums[n] = sha256.Sum256(testFile(t, dir, fmt.Sprintf("f%d", n), n))
	}
	return dir, sums
}

func checkFile(t *testing.T, path string, want [32]byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(b); got != want {
		t.Fatalf("%s: %d bytes sha256 %x, want %x", path, len(b), got, want)
	}
}

func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func sizesFor(short bool) []int {
	if short {
		return interopSizes[:5]
	}
	return interopSizes
}

func atftpGet(t *testing.T, bin string, addr netip.AddrPort, remote, local string, opts ...string) (string, error) {
	args := []string{"-g", "-r", remote, "-l", local}
	for _, o := range opts {
		args = append(args, "--option", o)
	}
	args = append(args, addr.Addr().String(), strconv.Itoa(int(addr.Port())))
	return run(t, 2*time.Minute, bin, args...)
}

func TestInteropAtftp(t *testing.T) {
	bin := lookPath(t, "atftp", "atftp")
	sizes := sizesFor(testing.Short())
	dir, sums := interopDir(t, sizes)
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	out := t.TempDir()
	for _, blk := range []int{8, 512, 1428, 1468, 8192, 65464} {
		for _, win := range []int{1, 16} {
			for _, n := range sizes {
				if blk == 8 && (n > 1<<20 || n == 1<<20 && win == 1) {
					continue // 5 million (or 131072 lockstep) blocks of 8 bytes: too slow to be useful
				}
				name := fmt.Sprintf("blksize=%d/windowsize=%d/size=%d", blk, win, n)
				t.Run(name, func(t *testing.T) {
					local := filepath.Join(out, strings.ReplaceAll(name, "/", "_"))
					opts := []string{fmt.Sprintf("blksize %d", blk), "tsize 0", "timeout 2"}
					if win > 1 {
						opts = append(opts, fmt.Sprintf("windowsize %d", win))
					}
					if msg, err := atftpGet(t, bin, addr, fmt.Sprintf("f%d", n), local, opts...); err != nil {
						t.Fatalf("atftp: %v\n%s", err, msg)
					}
					checkFile(t, local, sums[n])
					os.Remove(local)
				})
			}
		}
	}
	waitFor(t, func() bool { return srv.Stats().Active == 0 }) // the last ACK may still be on its way
	if st := srv.Stats(); st.TransfersFailed != 0 {
		t.Errorf("server stats %+v", st)
	}
}

// TestInteropAtftpParallel: 200 atftp clients at once, all byte-identical.
func TestInteropAtftpParallel(t *testing.T) {
	bin := lookPath(t, "atftp", "atftp")
	dir, sums := interopDir(t, []int{1 << 20})
	srv := &Server{Handler: Dir(dir)}
	addr := startServer(t, srv)
	out := t.TempDir()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := filepath.Join(out, fmt.Sprint(i))
			opts := []string{"blksize 1468", "tsize 0"}
			if i%2 == 1 {
				opts = append(opts, "windowsize 16")
			}
			if msg, err := atftpGet(t, bin, addr, fmt.Sprintf("f%d", 1<<20), local, opts...); err != nil {
				errs <- fmt.Errorf("client %d: %v: %s", i, err, msg)
				return
			}
			b, err := os.ReadFile(local)
			if err != nil {
				errs <- err
				return
			}
			if sha256.Sum256(b) != sums[1<<20] {
				errs <- fmt.Errorf("client %d: %d bytes, content differs", i, len(b))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A client exits once it has sent its last ACK; the server counts the
	// transfer when that ACK arrives, which may be a moment later.
	waitFor(t, func() bool { return srv.Stats().Active == 0 })
	if st := srv.Stats(); st.TransfersOK != n {
		t.Errorf("server stats %+v, want %d transfers ok", st, n)
	}
}

func TestInteropTftpHPA(t *testing.T) {
	bin := lookPath(t, "tftp", "tftp-hpa")
	if out, _ := run(t, 10*time.Second, bin, "-V"); !strings.Contains(out, "tftp-hpa") {
		t.Skipf("%s is not tftp-hpa (%q)", bin, strings.TrimSpace(out))
	}
	sizes := sizesFor(testing.Short())
	dir, sums := interopDir(t, sizes)
	addr := startServer(t, &Server{Handler: Dir(dir)})
	out := t.TempDir()
	port := strconv.Itoa(int(addr.Port()))
	for _, n := range sizes {
		t.Run(fmt.Sprintf("size=%d", n), func(t *testing.T) {
			local := filepath.Join(out, fmt.Sprint(n))
			msg, err := run(t, 2*time.Minute, bin, "127.0.0.1", port, "-m", "binary", "-c", "get", fmt.Sprintf("f%d", n), local)
			if err != nil || strings.Contains(msg, "Error") {
				t.Fatalf("tftp: %v\n%s", err, msg)
			}
			checkFile(t, local, sums[n])
		})
	}
	t.Run("put refused", func(t *testing.T) {
		src := filepath.Join(out, "upload")
		if err := os.WriteFile(src, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		msg, _ := run(t, time.Minute, bin, "127.0.0.1", port, "-m", "binary", "-c", "put", src, "upload")
		if !strings.Contains(msg, "read-only server") {
			t.Fatalf("put was not refused with our error:\n%s", msg)
		}
		if _, err := os.Stat(filepath.Join(dir, "upload")); err == nil {
			t.Fatal("file was written")
		}
	})
}

func TestInteropCurl(t *testing.T) {
	bin := lookPath(t, "curl", "curl")
	sizes := sizesFor(testing.Short())
	dir, sums := interopDir(t, sizes)
	addr := startServer(t, &Server{Handler: Dir(dir)})
	out := t.TempDir()
	for _, blk := range []int{512, 1468, 8192, 65464} {
		for _, n := range sizes {
			if blk == 512 && n > 1<<20 {
				continue // curl's lockstep loop is slow at 512 bytes; rollover is covered by atftp
			}
			t.Run(fmt.Sprintf("blksize=%d/size=%d", blk, n), func(t *testing.T) {
				local := filepath.Join(out, fmt.Sprintf("%d-%d", blk, n))
				url := fmt.Sprintf("tftp://%s/f%d", addr, n)
				msg, err := run(t, 2*time.Minute, bin, "-sS", "--tftp-blksize", strconv.Itoa(blk), "-o", local, url)
				if err != nil {
					t.Fatalf("curl: %v\n%s", err, msg)
				}
				checkFile(t, local, sums[n])
				os.Remove(local)
			})
		}
	}
	t.Run("not found", func(t *testing.T) {
		msg, err := run(t, time.Minute, bin, "-sS", "-o", filepath.Join(out, "x"), fmt.Sprintf("tftp://%s/missing", addr))
		// 68 is CURLE_TFTP_NOTFOUND; curl 7.88 prints a stale getpeername
		// message instead of the server's (curl PR #11332).
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 68 {
			t.Fatalf("curl on a missing file: %v\n%s", err, msg)
		}
	})
}

// TestTraversalRefused asks for files outside the root in every way a client
// can, with our client and with atftp, and checks nothing outside is served.
func TestTraversalRefused(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	if err := os.MkdirAll(filepath.Join(root, "a", "boot", "x64"), 0o755); err != nil {
		t.Fatal(err)
	}
	secret := []byte("secret outside the root\n")
	if err := os.WriteFile(filepath.Join(base, "x"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "x"), filepath.Join(root, "link-out")); err != nil {
		t.Fatal(err)
	}
	inside := testFile(t, root, "a/boot/x64/wdsmgfw.efi", 700)
	if err := os.Symlink("boot/x64/wdsmgfw.efi", filepath.Join(root, "a", "link-in")); err != nil {
		t.Fatal(err)
	}
	addr := startServer(t, &Server{Handler: Dir(root)})
	for _, name := range []string{
		"../x", "../../../../../../etc/passwd", "/etc/passwd", "/../x", "a/../../x",
		`a\..\..\x`, "link-out", "a/", ".",
	} {
		t.Run("refused "+name, func(t *testing.T) {
			got, _, err := get(t, &Client{}, addr, name)
			if err == nil {
				t.Fatalf("served %q: %q", name, got)
			}
		})
	}
	for _, name := range []string{"/a/boot/x64/wdsmgfw.efi", `a\boot\x64\wdsmgfw.efi`, `\a\boot\x64\wdsmgfw.efi`, "a/link-in", "a/boot/../boot/x64/wdsmgfw.efi"} {
		t.Run("served "+name, func(t *testing.T) {
			got, _, err := get(t, &Client{}, addr, name)
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, got, inside)
		})
	}
	if bin, err := exec.LookPath("atftp"); err == nil {
		t.Run("atftp ../x", func(t *testing.T) {
			local := filepath.Join(base, "out")
			msg, err := atftpGet(t, bin, addr, "../x", local)
			if b, _ := os.ReadFile(local); bytes.Contains(b, secret) {
				t.Fatalf("atftp got the secret (%v): %s", err, msg)
			}
		})
		t.Run("atftp put refused", func(t *testing.T) {
			src := filepath.Join(base, "up")
			os.WriteFile(src, []byte("x"), 0o644)
			msg, err := run(t, time.Minute, bin, "-p", "-l", src, "-r", "up", addr.Addr().String(), strconv.Itoa(int(addr.Port())))
			if err == nil && !strings.Contains(msg, "read-only") {
				t.Fatalf("atftp put succeeded: %s", msg)
			}
			if _, err := os.Stat(filepath.Join(root, "up")); err == nil {
				t.Fatal("file was written")
			}
		})
	}
}
