package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/vishvananda/netns"
)

// Browser starts a headless Chromium (Debian package chromium) for the
// test and returns a chromedp context driving one tab. It skips the test
// when Chromium is not installed. Chromium ends with the test; a JavaScript
// exception the page throws meanwhile fails the test (checked at cleanup).
func Browser(t testing.TB) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("lab: needs Chromium for the web page tests (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root, where Chromium's sandbox refuses to start
		chromedp.WindowSize(1440, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	var mu sync.Mutex
	var thrown []string
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*cdpruntime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			msg := fmt.Sprintf("%s:%d:%d: %s", d.URL, d.LineNumber+1, d.ColumnNumber+1, d.Text)
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			mu.Lock()
			thrown = append(thrown, msg)
			mu.Unlock()
		}
	}))
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("lab: start %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		mu.Lock()
		defer mu.Unlock()
		if len(thrown) > 0 {
			t.Errorf("the page threw %d JavaScript exception(s):\n%s", len(thrown), strings.Join(thrown, "\n"))
		}
	})
	return ctx
}

// Forward makes addr (host:port inside namespace ns) reachable from this
// namespace: it returns a loopback address whose connections are relayed to
// addr, dialled inside ns. A browser outside the lab reaches a server inside
// it this way. The listener closes with the test.
func Forward(t testing.TB, ns, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("lab: forward: %v", err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close() // an event stream never ends by itself
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				track(c, true)
				defer func() { c.Close(); track(c, false) }()
				up, err := dialIn(ns, addr)
				if err != nil {
					return
				}
				track(up, true)
				defer func() { up.Close(); track(up, false) }()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done // either side ended: end both
				c.Close()
				up.Close()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// dialIn connects to addr from inside namespace ns: the dialling thread
// enters ns for the connect only (a socket stays in the namespace it was
// made in).
func dialIn(ns, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("lab: current namespace: %w", err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("lab: namespace %s: %w", ns, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("lab: enter namespace %s: %w", ns, err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread() // else the thread stays locked and dies with the goroutine
	}
	return c, err
}
