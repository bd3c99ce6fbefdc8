package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"pxed/internal/tftp"
)

// Download is one file fetched (or checked) over TFTP or HTTP.
type Download struct {
	Role       string  `json:"role"`  // "nbp", "script", "kernel", "initrd", "chain", …
	Proto      string  `json:"proto"` // "tftp" or "http"
	Name       string  `json:"name"`  // file name (TFTP) or URL (HTTP)
	Server     string  `json:"server,omitempty"`
	CheckOnly  bool    `json:"check_only,omitempty"` // only checked that it exists
	Bytes      int64   `json:"bytes"`
	Size       int64   `json:"size"` // announced size (tsize, Content-Length); -1 unknown
	Seconds    float64 `json:"seconds"`
	MBps       float64 `json:"mb_per_s"` // 10^6 bytes per second
	Blksize    int     `json:"blksize,omitempty"`
	AskedBlk   int     `json:"asked_blksize,omitempty"`
	Windowsize int     `json:"windowsize,omitempty"`
	HTTPStatus int     `json:"http_status,omitempty"`
	// ContentType is the HTTP Content-Type header, which UEFI HTTP boot
	// reads to tell an EFI program from an ISO or disk image.
	ContentType string `json:"content_type,omitempty"`
	SHA256      string `json:"sha256,omitempty"` // of the bytes received, when complete
	// Resent counts the TFTP packets (RRQ, ACK) the client sent again
	// after a timeout.
	Resent int64 `json:"resent,omitempty"`
	// FirstReply is the seconds from the TFTP request to the server's
	// first answer.
	FirstReply float64 `json:"first_reply_s,omitempty"`
	Err        string  `json:"error,omitempty"`

	content []byte // kept for scripts
}

// OK reports whether the file was fetched (or found) without error.
func (d Download) OK() bool { return d.Err == "" }

// Progress is told how far a download is: done bytes of total (-1 unknown).
type Progress func(d *Download, done, total int64)

// Fetcher downloads boot files the way the simulated firmware does.
type Fetcher struct {
	Profile Profile
	// Interface binds the sockets to one interface (SO_BINDTODEVICE); ""
	// lets the routing table choose.
	Interface string
	// Timeout is the TFTP retransmit timeout; 0 means 1 s.
	Timeout time.Duration
	// TFTPPort is the TFTP server's port; 0 means 69.
	TFTPPort uint16
	Progress Progress // nil reports nothing
	// LocalAddr, when valid, is the source address of the download
	// sockets (a storm machine downloads from the address it leased).
	LocalAddr netip.Addr
	// SkipHash counts the bytes without hashing them (Download.SHA256 stays
	// empty): a load test moving gigabytes spends its CPU on the transfer,
	// as firmware does, not on SHA-256. HTTP bodies (but scripts, which
	// are parsed) are then not even copied into the process: the kernel
	// drops them (recv with MSG_TRUNC) and they are counted.
	SkipHash bool
	// Engine, when set, runs the TFTP downloads in its one epoll loop
	// (each still with its own socket, options, timeouts and retries)
	// instead of a goroutine each: a load test's client then spends its
	// CPU on packets, not on waking goroutines. Its sockets are connected
	// to the server's transfer port once it answers (tftp.Client.Connect):
	// other sources' packets are dropped by the kernel instead of answered
	// with an "unknown transfer ID" ERROR.
	Engine *tftp.ClientEngine
}

// copyBufs are the read buffers of hash-less HTTP downloads: large reads
// take fewer system calls per byte.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

func (f *Fetcher) newSink(d *Download, total int64) *sink {
	s := &sink{d: d, total: total, prog: f.Progress}
	if !f.SkipHash {
		s.h = sha256.New()
	}
	return s
}

// sum returns the hex SHA-256 of what s received, or "" when it did not hash.
func (s *sink) sum() string {
	if s.h == nil {
		return ""
	}
	return hex.EncodeToString(s.h.Sum(nil))
}

// errCheckDone ends a transfer after its first data: the file exists.
var errCheckDone = errors.New("existence check done")

type sink struct {
	d       *Download
	h       hash.Hash
	keep    *bytes.Buffer
	check   bool
	total   int64
	prog    Progress
	written int64
}

func (s *sink) Write(b []byte) (int, error) {
	if s.check {
		return 0, errCheckDone
	}
	if s.h != nil {
		s.h.Write(b)
	}
	if s.keep != nil && s.keep.Len() < 1<<20 {
		s.keep.Write(b)
	}
	s.written += int64(len(b))
	if s.prog != nil {
		s.prog(s.d, s.written, s.total)
	}
	return len(b), nil
}

func finish(d *Download, start time.Time) {
	d.Seconds = time.Since(start).Seconds()
	if d.Seconds > 0 && !d.CheckOnly {
		d.MBps = float64(d.Bytes) / d.Seconds / 1e6
	}
}

// TFTP fetches file from server port 69, or with check only asks for it
// and stops at the first block. It returns the download and the warnings
// it shows (file missing, block size negotiated down).
func (f *Fetcher) TFTP(ctx context.Context, role string, server netip.Addr, file string, check bool) (Download, []Warning) {
	d := Download{Role: role, Proto: "tftp", Name: file, Server: server.String(), CheckOnly: check, Size: -1}
	c := &tftp.Client{Blksize: f.Profile.Blksize, Windowsize: f.Profile.Window, Tsize: true, Timeout: f.Timeout}
	if f.Interface != "" || f.LocalAddr.IsValid() {
		network, local := "udp4", "0.0.0.0:0"
		if server.Is6() && !server.Is4In6() {
			network, local = "udp6", "[::]:0"
		}
		if f.LocalAddr.IsValid() {
			local = netip.AddrPortFrom(f.LocalAddr, 0).String()
		}
		c.Dial = func() (net.PacketConn, error) {
			lc := net.ListenConfig{Control: bindControl(f.Interface, false)}
			return lc.ListenPacket(context.Background(), network, local)
		}
	}
	d.AskedBlk = max(c.Blksize, tftp.DefaultBlksize)
	s := f.newSink(&d, 0)
	s.check = check
	if role == "script" {
		s.keep = &bytes.Buffer{}
	}
	start := time.Now()
	if f.Progress != nil && !check {
		f.Progress(&d, 0, -1)
	}
	port := f.TFTPPort
	if port == 0 {
		port = 69
	}
	var tr tftp.Transfer
	var err error
	if f.Engine != nil {
		tr, err = f.Engine.Get(ctx, c, f.LocalAddr, f.Interface, netip.AddrPortFrom(server, port), file, s)
	} else {
		tr, err = c.Get(ctx, netip.AddrPortFrom(server, port), file, s)
	}
	d.Bytes, d.Size, d.Blksize, d.Windowsize = tr.Bytes, tr.Size, tr.Blksize, tr.Windowsize
	d.Resent, d.FirstReply = tr.Resent, tr.FirstReply.Seconds()
	finish(&d, start)
	var warns []Warning
	switch {
	case check && errors.Is(err, errCheckDone):
		err = nil
	case err == nil:
		d.SHA256 = s.sum()
		if s.keep != nil {
			d.content = s.keep.Bytes()
		}
	}
	if err != nil {
		d.Err = err.Error()
		if errors.Is(err, tftp.ErrNotFound) {
			warns = append(warns, Warning{WarnBootFileMissing, fmt.Sprintf("TFTP server %s says %q does not exist", server, file)})
		}
		return d, warns
	}
	if d.Blksize < d.AskedBlk {
		warns = append(warns, Warning{WarnBlksizeDown, fmt.Sprintf(
			"TFTP server %s granted blksize %d for %q where the firmware asks %d (slower transfers)", server, d.Blksize, file, d.AskedBlk)})
	}
	return d, warns
}

// HTTP fetches url, or with check only asks for its headers (HEAD, then a
// GET stopped at once when the server refuses HEAD).
func (f *Fetcher) HTTP(ctx context.Context, role, url string, check bool) (Download, []Warning) {
	if f.SkipHash && !check && role != "script" && f.Progress == nil {
		if d, warns, ok := f.httpCount(ctx, role, url); ok {
			return d, warns
		}
	}
	d := Download{Role: role, Proto: "http", Name: url, CheckOnly: check, Size: -1}
	dialer := f.dialer()
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, Proxy: nil, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	start := time.Now()
	method := http.MethodGet
	if check {
		method = http.MethodHead
	}
	resp, err := f.do(ctx, hc, method, url)
	if err == nil && check && (resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented) {
		// No HEAD: the first byte only, its Content-Range telling the size.
		resp.Body.Close()
		resp, err = f.do(ctx, hc, http.MethodGet, url, "Range", "bytes=0-0")
	}
	if err != nil {
		d.Err = err.Error()
		finish(&d, start)
		return d, nil
	}
	defer resp.Body.Close()
	d.HTTPStatus, d.Size, d.ContentType = resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusPartialContent && check {
		d.Size = rangeTotal(resp.Header.Get("Content-Range"))
		finish(&d, start)
		return d, nil
	}
	if resp.StatusCode != http.StatusOK {
		d.Err = fmt.Sprintf("http: GET %s: %s", url, resp.Status)
		finish(&d, start)
		return d, []Warning{{WarnHTTPStatus, fmt.Sprintf("%s answers %s", url, resp.Status)}}
	}
	if check {
		finish(&d, start)
		return d, nil
	}
	s := f.newSink(&d, resp.ContentLength)
	if f.Progress != nil {
		f.Progress(&d, 0, resp.ContentLength)
	}
	if role == "script" {
		s.keep = &bytes.Buffer{}
	}
	buf := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(s, struct{ io.Reader }{resp.Body}, *buf)
	copyBufs.Put(buf)
	d.Bytes = n
	finish(&d, start)
	if err != nil {
		d.Err = fmt.Sprintf("http: GET %s: after %d bytes: %v", url, n, err)
		return d, nil
	}
	d.SHA256 = s.sum()
	if s.keep != nil {
		d.content = s.keep.Bytes()
	}
	return d, nil
}

func (f *Fetcher) dialer() *net.Dialer {
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if f.Interface != "" {
		dialer.Control = bindControl(f.Interface, false)
	}
	if f.LocalAddr.IsValid() {
		dialer.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(f.LocalAddr, 0))
	}
	return dialer
}

// httpCount GETs rawURL on a connection of its own and counts the body
// without reading it: past the header, the kernel drops the bytes
// (discard: recv with MSG_TRUNC), so a load test's client spends no CPU
// copying gigabytes. ok is false when it leaves the download to net/http: not an
// http:// URL, or a redirect.
func (f *Fetcher) httpCount(ctx context.Context, role, rawURL string) (d Download, warns []Warning, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil || req.URL.Scheme != "http" {
		return d, nil, false
	}
	d = Download{Role: role, Proto: "http", Name: rawURL, Size: -1}
	start := time.Now()
	defer finish(&d, start)
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	conn, err := f.dialer().DialContext(ctx, "tcp", host)
	if err != nil {
		d.Err = fmt.Sprintf("http: GET %s: %v", rawURL, err)
		return d, nil, true
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req.Header.Set("User-Agent", "pxed-probe ("+f.Profile.Firmware+")")
	req.Close = true // one request per connection, as net/http's path here
	if err := req.Write(conn); err != nil {
		d.Err = fmt.Sprintf("http: GET %s: %v", rawURL, err)
		return d, nil, true
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		d.Err = fmt.Sprintf("http: GET %s: %v", rawURL, err)
		return d, nil, true
	}
	// resp.Body is not closed: closing it would read the rest of the body
	// through bufio; closing conn (deferred) ends the exchange.
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return d, nil, false
	}
	d.HTTPStatus, d.Size = resp.StatusCode, resp.ContentLength
	if resp.StatusCode != http.StatusOK {
		d.Err = fmt.Sprintf("http: GET %s: %s", rawURL, resp.Status)
		return d, []Warning{{WarnHTTPStatus, fmt.Sprintf("%s answers %s", rawURL, resp.Status)}}, true
	}
	var n int64
	if resp.ContentLength >= 0 && len(resp.TransferEncoding) == 0 {
		// What bufio read past the header, then the rest from the socket.
		buffered := min(int64(br.Buffered()), resp.ContentLength)
		br.Discard(int(buffered))
		n = buffered
		if rest := resp.ContentLength - buffered; rest > 0 {
			var m int64
			m, err = discard(conn, rest)
			n += m
		}
	} else {
		buf := copyBufs.Get().(*[]byte)
		n, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, *buf)
		copyBufs.Put(buf)
	}
	d.Bytes = n
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.Err = fmt.Sprintf("http: GET %s: after %d bytes: %v", rawURL, n, err)
	}
	return d, nil, true
}

// rangeTotal returns the complete length of a Content-Range header
// ("bytes 0-0/12345"), or -1.
func rangeTotal(h string) int64 {
	_, total, ok := strings.Cut(h, "/")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(total, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// do sends one request; header is name, value pairs to add.
func (f *Fetcher) do(ctx context.Context, hc *http.Client, method, url string, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, fmt.Errorf("http: %s %s: %w", method, url, err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	req.Header.Set("User-Agent", "pxed-probe ("+f.Profile.Firmware+")")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("http: %s %s: %w", method, url, err)
	}
	return resp, nil
}
