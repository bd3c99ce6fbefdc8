package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/lab"
)

// Attackers of the attack suite, written for it: each is bounded in count
// by its arguments and in time by its context, and reports what it saw.

// tally counts outcomes by name, safely from many goroutines.
type tally struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *tally) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *tally) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprint(c.m)
}

// pace returns a channel giving one tick per interval until ctx ends,
// at most n ticks.
func pace(ctx context.Context, n int, interval time.Duration) <-chan int {
	ch := make(chan int)
	go func() {
		defer close(ch)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; i < n; i++ {
			select {
			case ch <- i:
			case <-ctx.Done():
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// --- HTTP ---------------------------------------------------------------------

// hugeRequest sends one request whose URL is path (a megabyte long, say)
// and returns the status code of the answer, or 0 when the connection
// ended without one. It reads while it writes: a server that refuses the
// request early answers before the whole URL was sent.
func hugeRequest(ctx context.Context, ns, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := nsDial(ctx, ns, netip.Addr{}, serverIP+":8080")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		fmt.Fprintf(w, "GET %s HTTP/1.1\r\nHost: %s:8080\r\nConnection: close\r\n\r\n", path, serverIP)
		_ = w.Flush()
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("no status line: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("status line %q", line)
	}
	return strconv.Atoi(f[1])
}

// holdConns opens perSrc connections from each address of srcs in ns and
// holds them until ctx ends. idle: each sends one keep-alive request,
// reads the answer and then sends nothing (finding 2). Otherwise a
// slowloris: each sends a request line and then one header line per second,
// never ending the headers. It counts in seen: "opened", "answered" (idle:
// the keep-alive answer came), "closed" (pxed closed or refused the
// connection while the attack held it), "dial-failed".
func holdConns(ctx context.Context, a *attack, seen *tally, ns string, srcs []netip.Addr, perSrc int, idle bool) error {
	var wg sync.WaitGroup
	jobs := make(chan netip.Addr)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for src := range jobs {
				dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				c, err := nsDial(dctx, ns, src, serverIP+":8080")
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						seen.add("dial-failed")
						a.note("dial from %s: %v", src, err)
					}
					continue
				}
				seen.add("opened")
				a.progress.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					holdConn(ctx, seen, c, idle)
				}()
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := 0; i < perSrc; i++ {
			for _, src := range srcs {
				select {
				case jobs <- src:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	<-ctx.Done()
	wg.Wait()
	return nil
}

// holdConn keeps one attacking connection until ctx ends or pxed closes it.
func holdConn(ctx context.Context, seen *tally, c net.Conn, idle bool) {
	closed := make(chan struct{})
	go func() { // close on ctx's end; Read below returns then
		select {
		case <-ctx.Done():
		case <-closed:
		}
		c.Close()
	}()
	defer close(closed)
	r := bufio.NewReader(c)
	if idle {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s:8080\r\n\r\n", serverIP)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			seen.add("answered")
		}
		_ = c.SetReadDeadline(time.Time{})
	} else {
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s:8080\r\n", serverIP)
		go func() { // one more header line a second, never the empty line
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if _, err := fmt.Fprintf(c, "X-Slow-%d: %d\r\n", i, i); err != nil {
					return
				}
			}
		}()
	}
	// Whatever comes now (a 408, EOF, a reset) means pxed let go.
	if _, err := r.ReadByte(); ctx.Err() == nil {
		seen.add("closed")
		_ = err
	}
}

// httpFlood sends requests from workers spread over srcs (keep-alive
// connections, reopened when pxed closes one) until count or ctx's end:
// scripts and files of random MACs, missing files, /healthz. Status codes
// go to seen ("200", "404", … or "error").
func httpFlood(ctx context.Context, a *attack, seen *tally, ns string, srcs []netip.Addr, workers, count int) error {
	var wg sync.WaitGroup
	var next atomic.Int64
	for w := range workers {
		src := srcs[w%len(srcs)]
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 1,
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
				return nsDial(ctx, ns, src, addr)
			},
		}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cl.CloseIdleConnections()
			for ctx.Err() == nil {
				i := next.Add(1)
				if i > int64(count) {
					return
				}
				mac := fmt.Sprintf("02-f1-%02x-%02x-%02x-%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
				var path string
				switch i % 4 {
				case 0:
					path = "/boot/" + mac + "/script.ipxe"
				case 1:
					path = "/boot/" + mac + "/missing-" + strconv.FormatInt(i, 10)
				case 2:
					path = "/files/missing-" + strconv.FormatInt(i, 10)
				default:
					path = "/healthz"
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+serverIP+":8080"+path, nil)
				resp, err := cl.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						seen.add("error")
						a.note("%s: %v", path, err)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				seen.add(strconv.Itoa(resp.StatusCode))
				a.progress.Add(1)
			}
		}()
	}
	wg.Wait()
	return nil
}

// --- TFTP ---------------------------------------------------------------------

// rrq is a TFTP read request (RFC 1350 §5) with RFC 2347 options.
func rrq(file string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, 1)
	for _, s := range append([]string{file, "octet"}, opts...) {
		b = append(append(b, s...), 0)
	}
	return b
}

// tftpReply describes the first packet of a TFTP answer: "oack timeout=2",
// "data", "error 0 message", or "none" when nothing came within 3 s.
func tftpReply(c *net.UDPConn) string {
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	_ = c.SetReadDeadline(time.Time{})
	if err != nil || n < 4 {
		return "none"
	}
	switch binary.BigEndian.Uint16(buf) {
	case 3:
		return "data"
	case 5:
		return fmt.Sprintf("error %d %s", binary.BigEndian.Uint16(buf[2:]), strings.TrimRight(string(buf[4:n]), "\x00"))
	case 6:
		f := strings.Split(strings.TrimRight(string(buf[2:n]), "\x00"), "\x00")
		s := "oack"
		for i := 0; i+1 < len(f); i += 2 {
			s += " " + strings.ToLower(f[i]) + "=" + f[i+1]
		}
		return s
	default:
		return "other"
	}
}

// rrqFlood sends count read requests, each from a new UDP port of one of
// srcs (round robin), for files[i%len(files)] with opts, one per interval,
// and never acknowledges anything: every socket stays open (so pxed's
// packets are not refused by the kernel) until ctx ends. The first answer
// on each socket is tallied in seen by kind ("oack", "data", "error N",
// "none") and, for OACKs, by acknowledged timeout ("timeout=N").
func rrqFlood(ctx context.Context, a *attack, seen *tally, ns string, srcs []netip.Addr, count int, interval time.Duration, files []string, opts ...string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var socks []*net.UDPConn
	defer func() {
		<-ctx.Done()
		mu.Lock()
		for _, c := range socks {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for i := range pace(ctx, count, interval) {
		src := srcs[i%len(srcs)]
		c, err := nsUDP(ns, netip.AddrPortFrom(src, 0), "")
		if err != nil {
			a.note("socket %d: %v", i, err)
			return fmt.Errorf("socket %d: %w", i, err)
		}
		mu.Lock()
		socks = append(socks, c)
		mu.Unlock()
		if _, err := c.WriteTo(rrq(files[i%len(files)], opts...), &net.UDPAddr{IP: net.ParseIP(serverIP), Port: 69}); err != nil {
			a.note("rrq %d: %v", i, err)
			continue
		}
		a.progress.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := tftpReply(c)
			kind, _, _ := strings.Cut(r, " ")
			if kind == "error" {
				kind = strings.Join(strings.Fields(r)[:2], " ")
				if kind != "error 1" { // not found: the flood asks for missing files too
					a.note("%s", r)
				}
			}
			seen.add(kind)
			for _, f := range strings.Fields(r) {
				if strings.HasPrefix(f, "timeout=") {
					seen.add(f)
				}
			}
		}()
	}
	return nil
}

// --- DHCP ---------------------------------------------------------------------

// dhcpSocket is a UDP socket on port 68 of ns's eth0 that may broadcast
// (inside the lab namespace only).
func dhcpSocket(ns string) (*net.UDPConn, error) {
	return nsUDP(ns, netip.MustParseAddrPort("0.0.0.0:68"), "eth0")
}

var dhcpServerPort = &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

// fakeMAC is a locally administered MAC made of a prefix byte and i.
func fakeMAC(prefix byte, i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, prefix, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

// pxeDiscover is a DISCOVER as a UEFI x64 PXE ROM sends it, with the
// broadcast flag (the attacker has no address to be unicast to).
func pxeDiscover(mac net.HardwareAddr, mods ...dhcpv4.Modifier) ([]byte, error) {
	mods = append([]dhcpv4.Modifier{
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
	}, mods...)
	d, err := dhcpv4.NewDiscovery(mac, mods...)
	if err != nil {
		return nil, err
	}
	return d.ToBytes(), nil
}

// dhcpLease runs DISCOVER, OFFER, REQUEST, ACK for mac on c (the broadcast
// flag set) with mods added to both requests, and returns the address
// acknowledged. It reads for at most wait.
func dhcpLease(c *net.UDPConn, mac net.HardwareAddr, wait time.Duration, mods ...dhcpv4.Modifier) (net.IP, error) {
	disc, err := dhcpv4.NewDiscovery(mac, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)...)
	if err != nil {
		return nil, err
	}
	if _, err := c.WriteTo(disc.ToBytes(), dhcpServerPort); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	var req *dhcpv4.DHCPv4
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		_ = c.SetReadDeadline(deadline)
		n, err := c.Read(buf)
		if err != nil {
			break
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || p.TransactionID != disc.TransactionID || p.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		switch p.MessageType() {
		case dhcpv4.MessageTypeOffer:
			if req != nil {
				continue
			}
			req, err = dhcpv4.NewRequestFromOffer(p, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)...)
			if err != nil {
				return nil, err
			}
			if _, err := c.WriteTo(req.ToBytes(), dhcpServerPort); err != nil {
				return nil, err
			}
		case dhcpv4.MessageTypeAck:
			if req != nil {
				return p.YourIPAddr, nil
			}
		case dhcpv4.MessageTypeNak:
			return nil, errors.New("NAK")
		}
	}
	if req == nil {
		return nil, errors.New("no OFFER")
	}
	return nil, errors.New("no ACK")
}

// starvationFlood takes addresses for count new MACs, one DISCOVER per
// interval: it answers each OFFER with a REQUEST, as a starvation tool does,
// so the addresses are bound (not merely offered). Tallies: "discover",
// "offer", "ack", "nak".
func starvationFlood(ctx context.Context, a *attack, seen *tally, ns string, count int, interval time.Duration) error {
	c, err := dhcpSocket(ns)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	ours := sync.Map{} // xid → true
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			p, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || p.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			if _, ok := ours.Load(p.TransactionID); !ok {
				continue
			}
			switch p.MessageType() {
			case dhcpv4.MessageTypeOffer:
				seen.add("offer")
				req, err := dhcpv4.NewRequestFromOffer(p, dhcpv4.WithBroadcast(true))
				if err == nil {
					_, _ = c.WriteTo(req.ToBytes(), dhcpServerPort)
				}
			case dhcpv4.MessageTypeAck:
				seen.add("ack")
			case dhcpv4.MessageTypeNak:
				seen.add("nak")
			}
		}
	}()
	for i := range pace(ctx, count, interval) {
		d, err := dhcpv4.NewDiscovery(fakeMAC(0x5a, i), dhcpv4.WithBroadcast(true))
		if err != nil {
			return err
		}
		ours.Store(d.TransactionID, true)
		if _, err := c.WriteTo(d.ToBytes(), dhcpServerPort); err != nil && ctx.Err() == nil {
			a.note("discover %d: %v", i, err)
			continue
		}
		seen.add("discover")
		a.progress.Add(1)
	}
	<-ctx.Done()
	return nil
}

// claimFlood sends count PXE DISCOVERs, batch of them per millisecond,
// each from a new MAC and claiming (ciaddr) one of the addresses of
// 192.0.2.0/24 and 198.51.100.0/24 in turn: addresses and machines pxed
// never leased or saw boot (finding 6).
func claimFlood(ctx context.Context, a *attack, ns string, count, batch int) error {
	c, err := dhcpSocket(ns)
	if err != nil {
		return err
	}
	defer c.Close()
	for tick := range pace(ctx, (count+batch-1)/batch, time.Millisecond) {
		for j := 0; j < batch; j++ {
			i := tick*batch + j
			if i >= count {
				return nil
			}
			ci := net.IPv4(192, 0, 2, byte(2+i%253))
			if i%2 == 1 {
				ci = net.IPv4(198, 51, 100, byte(1+i%254))
			}
			b, err := pxeDiscover(fakeMAC(0xc1, i), dhcpv4.WithClientIP(ci), dhcpv4.WithTransactionID(dhcpv4.TransactionID{byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}))
			if err != nil {
				return err
			}
			if _, err := c.WriteTo(b, dhcpServerPort); err != nil {
				a.note("discover %d: %v", i, err)
				continue
			}
			a.progress.Add(1)
		}
	}
	return nil
}

// pxeOffered sends a PXE DISCOVER for mac from host h once a second until
// an OFFER for it comes back or wait passes.
func pxeOffered(h *lab.Host, mac net.HardwareAddr, wait time.Duration) error {
	c, err := dhcpSocket(h.NS)
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := pxeDiscover(mac)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := c.WriteTo(b, dhcpServerPort); err != nil {
			return err
		}
		rd := time.Now().Add(time.Second)
		if rd.After(deadline) {
			rd = deadline
		}
		_ = c.SetReadDeadline(rd)
		for {
			k, err := c.Read(buf)
			if err != nil {
				break
			}
			p, err := dhcpv4.FromBytes(buf[:k])
			if err == nil && p.MessageType() == dhcpv4.MessageTypeOffer && p.ClientHWAddr.String() == mac.String() {
				return nil
			}
		}
	}
	return fmt.Errorf("no OFFER for %s within %v", mac, wait)
}
