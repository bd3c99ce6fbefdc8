package tftp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Multicast TFTP: many clients receive one file in one stream sent to an IPv4
// multicast group. Two protocols share the session engine (mcsession.go):
//
//   - RFC 2090: a read request with the "multicast" option on the TFTP port
//     joins the session of its file (one per file, local address and blksize)
//     and is told the group in an OACK ("multicast" = "addr,port,mc"). One
//     client at a time is the master client (mc=1) and acknowledges; the others
//     (mc=0) only listen. When the master has the whole file or stops
//     answering, the next client is made master and its first ACK names the
//     first block it lacks (atftp's behaviour), from which the stream goes on.
//     The session ends when every client is done or given up.
//   - PXE 2.1 MTFTP (mtftp.go): clients learn a file's group and ports from
//     DHCP option 43 sub-options 1–5, listen, and one of them sends a read
//     request (no options) to the MTFTP server port; it is the master client.
//
// A request that cannot be served by multicast (file not allowed, no group
// free, blksize different from the running session's, IPv6, a file of more
// than 65535 blocks) is served by ordinary unicast TFTP instead.

// OptMulticast is the RFC 2090 option name.
const OptMulticast = "multicast"

// Multicast defaults.
const (
	DefaultMulticastPort    = 1758 // RFC 2090 data port, atftpd's default
	DefaultMulticastClients = 1000 // clients per session
	DefaultMulticastTries   = 5    // timeouts in a row before a master client is given up
	DefaultMTFTPClientPort  = 1758 // PXE MTFTP_CPORT
	DefaultMTFTPServerPort  = 1759 // PXE MTFTP_SPORT
	maxMulticastBlocks      = 65535
)

// Multicast configures multicast transfers for a Server (Server.Multicast).
// The zero value (with Groups set) serves every file by RFC 2090 on request
// and none by PXE MTFTP. Fields must not change once the Server serves.
type Multicast struct {
	// Groups are the IPv4 multicast addresses sessions use, one each:
	// RFC 2090 sessions take them from the low end, PXE MTFTP files (one
	// fixed group per file, announced in DHCP) from the high end. Use an
	// administratively scoped range (239.0.0.0/8, RFC 2365).
	Groups netip.Prefix
	// Port is the UDP port RFC 2090 clients receive on: 0 =>
	// DefaultMulticastPort.
	Port uint16
	// TTL of multicast datagrams: 0 => 1 (the local segment).
	TTL int
	// Files says which files RFC 2090 requests may get by multicast (the
	// cleaned, root-relative name); nil => every file.
	Files func(name string) bool
	// PXEFiles says which files are offered by PXE MTFTP; nil => none.
	PXEFiles func(name string) bool
	// PXEClientPort and PXEServerPort are MTFTP_CPORT and MTFTP_SPORT:
	// 0 => DefaultMTFTPClientPort, DefaultMTFTPServerPort.
	PXEClientPort, PXEServerPort uint16
	// MaxClients bounds the clients of one session: 0 =>
	// DefaultMulticastClients. Past it a request is served by unicast.
	MaxClients int
	// Tries is how many timeouts in a row end a master client (it is
	// reported failed and the next client becomes master): 0 =>
	// DefaultMulticastTries.
	Tries int
	// OnSession is optional; it is called when a session ends.
	OnSession func(MulticastSession)

	mu       sync.Mutex
	inUse    map[netip.Addr]bool
	pxeGroup map[string]netip.Addr
	cursor   netip.Addr
}

// MulticastSession reports one ended multicast session.
type MulticastSession struct {
	Filename string
	Group    netip.AddrPort
	PXE      bool // PXE MTFTP, else RFC 2090
	Size     int64
	Blksize  int
	Clients  int   // clients that joined
	Done     int   // clients that got the whole file
	Bytes    int64 // DATA payload bytes sent (multicast and unicast)
	Packets  int64 // DATA packets sent
	Start    time.Time
	Dur      time.Duration
}

func (m *Multicast) port() uint16 {
	if m.Port == 0 {
		return DefaultMulticastPort
	}
	return m.Port
}

func (m *Multicast) ttl() int {
	if m.TTL <= 0 {
		return 1
	}
	return m.TTL
}

func (m *Multicast) maxClients() int {
	if m.MaxClients <= 0 {
		return DefaultMulticastClients
	}
	return m.MaxClients
}

func (m *Multicast) tries() int {
	if m.Tries <= 0 {
		return DefaultMulticastTries
	}
	return m.Tries
}

func (m *Multicast) pxePorts() (client, server uint16) {
	client, server = m.PXEClientPort, m.PXEServerPort
	if client == 0 {
		client = DefaultMTFTPClientPort
	}
	if server == 0 {
		server = DefaultMTFTPServerPort
	}
	return client, server
}

// Validate checks the configuration: Groups must be an IPv4 multicast prefix.
func (m *Multicast) Validate() error {
	g := m.Groups.Masked()
	if !g.IsValid() || !g.Addr().Is4() || !g.Addr().IsMulticast() || g.Bits() < 4 {
		return fmt.Errorf("tftp: multicast groups %v: want an IPv4 multicast prefix such as 239.255.70.0/24", m.Groups)
	}
	return nil
}

// lastGroup is the highest address of the prefix.
func lastGroup(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if host > 0 {
		v |= 1<<host - 1
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// allocGroup takes a free group for an RFC 2090 session, round robin from
// the low end of Groups; ok false when none is free.
func (m *Multicast) allocGroup() (netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inUse == nil {
		m.inUse = map[netip.Addr]bool{}
	}
	p := m.Groups.Masked()
	if !m.cursor.IsValid() || !p.Contains(m.cursor) {
		m.cursor = p.Addr()
	}
	a := m.cursor
	for range 1 << min(32-p.Bits(), 20) {
		if !m.inUse[a] && !m.isPXEGroup(a) {
			m.inUse[a] = true
			if m.cursor = a.Next(); !p.Contains(m.cursor) {
				m.cursor = p.Addr()
			}
			return a, true
		}
		if a = a.Next(); !p.Contains(a) {
			a = p.Addr()
		}
	}
	return netip.Addr{}, false
}

func (m *Multicast) isPXEGroup(a netip.Addr) bool {
	for _, g := range m.pxeGroup {
		if g == a {
			return true
		}
	}
	return false
}

func (m *Multicast) freeGroup(a netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.inUse, a)
}

// PXEParams returns what DHCP announces for file in option 43 sub-options
// 1–3 (PXE 2.1 §2.4): its group and the client and server ports. The group
// is fixed per file for the life of the Multicast, taken from the high end
// of Groups on first use. ok is false when file is not offered by PXE MTFTP
// or no group is left.
func (m *Multicast) PXEParams(file string) (group netip.Addr, clientPort, serverPort uint16, ok bool) {
	name := CleanName(file)
	if m == nil || m.PXEFiles == nil || !m.PXEFiles(name) {
		return netip.Addr{}, 0, 0, false
	}
	g, ok := m.pxeGroupFor(name, true)
	if !ok {
		return netip.Addr{}, 0, 0, false
	}
	c, s := m.pxePorts()
	return g, c, s, true
}

func (m *Multicast) pxeGroupFor(name string, alloc bool) (netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g, ok := m.pxeGroup[name]; ok {
		return g, true
	}
	if !alloc {
		return netip.Addr{}, false
	}
	if m.pxeGroup == nil {
		m.pxeGroup = map[string]netip.Addr{}
	}
	p := m.Groups.Masked()
	for a := lastGroup(p); p.Contains(a); a = a.Prev() {
		if !m.inUse[a] && !m.isPXEGroup(a) {
			m.pxeGroup[name] = a
			return a, true
		}
		if len(m.pxeGroup) > 1<<16 {
			break
		}
	}
	return netip.Addr{}, false
}

// mcKey names a session: one per file, local address and kind.
type mcKey struct {
	name    string
	local   netip.Addr
	blksize int
	pxe     bool
}

// multicastOption formats the RFC 2090 option value "addr,port,mc".
func multicastOption(g netip.AddrPort, master bool) Option {
	mc := "0"
	if master {
		mc = "1"
	}
	return Option{OptMulticast, g.Addr().String() + "," + strconv.Itoa(int(g.Port())) + "," + mc}
}

// ParseMulticastOption decodes an RFC 2090 OACK value "addr,port,mc".
func ParseMulticastOption(v string) (group netip.AddrPort, master bool, err error) {
	f := strings.Split(v, ",")
	if len(f) != 3 {
		return netip.AddrPort{}, false, fmt.Errorf("tftp: multicast option %q: want addr,port,mc", v)
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil || !a.IsMulticast() {
		return netip.AddrPort{}, false, fmt.Errorf("tftp: multicast option %q: %q is not a multicast address", v, f[0])
	}
	port, err := strconv.ParseUint(f[1], 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, false, fmt.Errorf("tftp: multicast option %q: bad port %q", v, f[1])
	}
	switch f[2] {
	case "0", "1":
	default:
		return netip.AddrPort{}, false, fmt.Errorf("tftp: multicast option %q: mc is %q, want 0 or 1", v, f[2])
	}
	return netip.AddrPortFrom(a, uint16(port)), f[2] == "1", nil
}

// joinMulticast serves an RFC 2090 read request from a session; false means
// the request is not for multicast, or cannot be, and goes the unicast way.
// It runs on the listener's goroutine.
func (s *Server) joinMulticast(local netip.Addr, from netip.AddrPort, p Packet) bool {
	m := s.Multicast
	if m == nil || !local.Is4() || local.IsUnspecified() {
		return false
	}
	opts := OptionMap(p.Options)
	if _, ok := opts[OptMulticast]; !ok {
		return false
	}
	log := s.logger()
	name := CleanName(p.Filename)
	if octet, _ := isMode(p.Mode); !octet || (m.Files != nil && !m.Files(name)) {
		return false
	}
	req := Request{Filename: p.Filename, Client: from, Local: local, Options: opts}
	if s.Handler == nil {
		return false
	}
	f, size, err := s.Handler(req)
	if err != nil {
		return false // the unicast path answers the error
	}
	lim := Limits{MaxBlksize: s.MaxBlksize, MaxWindowsize: s.MaxWindowsize, Size: size,
		WindowBytes: s.WindowBytes, MaxTimeout: s.maxTimeout()}
	if lim.WindowBytes == 0 {
		lim.WindowBytes = DefaultWindowBytes
	}
	if lim.MaxWindowsize <= 0 {
		lim.MaxWindowsize = DefaultWindowsize
	}
	if lim.MaxBlksize <= 0 {
		lim.MaxBlksize = MaxBlksize
	}
	if v, ok := opts[OptBlksize]; ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > DefaultBlksize {
			lim.MaxBlksize = min(lim.MaxBlksize, pathMaxBlksize(local, from))
		}
	}
	neg, err := Negotiate(p.Options, lim)
	if err != nil || size < 0 || size/int64(neg.Blksize)+1 > maxMulticastBlocks {
		f.Close()
		return false
	}
	key := mcKey{name: name, local: local, blksize: neg.Blksize}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f.Close()
		return true
	}
	ss := s.sessions[key]
	if ss != nil {
		ok := ss.join(from, req, neg)
		s.mu.Unlock()
		f.Close()
		if ok {
			return true
		}
		log.Debug("tftp: multicast session full or ending, serving by unicast", "file", name, "client", from)
		return false
	}
	ss, err = s.newSession(key, f, size, neg.Blksize, netip.Addr{}, m.port())
	if err != nil {
		s.mu.Unlock()
		f.Close()
		log.Info("tftp: no multicast session, serving by unicast", "file", name, "client", from, "err", err)
		return false
	}
	ss.join(from, req, neg)
	s.mu.Unlock()
	go ss.run()
	return true
}

// newSession opens the session socket and registers the session; s.mu is
// held. group zero means: allocate one for RFC 2090.
func (s *Server) newSession(key mcKey, f File, size int64, bs int, group netip.Addr, port uint16) (*mcSession, error) {
	m := s.Multicast
	allocated := false
	if !group.IsValid() {
		g, ok := m.allocGroup()
		if !ok {
			return nil, fmt.Errorf("tftp: all multicast groups of %v are in use", m.Groups)
		}
		group, allocated = g, true
	}
	conn, err := multicastSocket(key.local, m.ttl())
	if err != nil {
		if allocated {
			m.freeGroup(group)
		}
		return nil, err
	}
	ss := &mcSession{srv: s, mc: m, key: key, group: netip.AddrPortFrom(group, port), conn: conn,
		f: f, size: size, bs: bs, last: int(size/int64(bs)) + 1, start: time.Now(), allocated: allocated,
		byAddr: map[netip.AddrPort]*mcClient{}}
	if mf, release, ok := s.cache.open(f, size, s.cacheMax()); ok {
		ss.data, ss.release = mf, release
	} else {
		ss.data = f
	}
	if s.sessions == nil {
		s.sessions = map[mcKey]*mcSession{}
	}
	s.sessions[key] = ss
	s.wg.Add(1)
	s.mcActive.Add(1)
	s.mcSessions.Add(1)
	return ss, nil
}

// multicastSocket opens a session's socket on local (its source address,
// which clients check) sending to groups out of local's interface.
func multicastSocket(local netip.Addr, ttl int) (*net.UDPConn, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("tftp: multicast socket on %v: %w", local, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tftp: multicast socket: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl); serr != nil {
			return
		}
		serr = unix.SetsockoptInet4Addr(int(fd), unix.IPPROTO_IP, unix.IP_MULTICAST_IF, local.As4())
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tftp: multicast socket options on %v: %w", local, err)
	}
	return conn, nil
}

// closeSessions ends every multicast session (Server.Close).
func (s *Server) closeSessions() {
	s.mu.Lock()
	list := make([]*mcSession, 0, len(s.sessions))
	for _, ss := range s.sessions {
		list = append(list, ss)
	}
	s.mu.Unlock()
	for _, ss := range list {
		ss.conn.Close()
	}
}

// errSessionClosed ends the transfers of a session the server closed.
var errSessionClosed = errors.New("tftp: multicast session closed")
