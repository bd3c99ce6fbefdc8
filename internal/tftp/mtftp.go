package tftp

import (
	"net"
	"net/netip"
)

// PXE 2.1 MTFTP (PXE specification 2.1 §3.2, "MTFTP"; atftp's tftpd_mtftp.c
// is the reference implementation clients are tested against):
//
//   - DHCP tells the client the file's group (PXE_MTFTP_IP_ADDR), the port it
//     listens on (PXE_MTFTP_CPORT), the server's port (PXE_MTFTP_SPORT) and
//     how long to listen (PXE_MTFTP_TMOUT) and wait (PXE_MTFTP_DELAY).
//   - The client listens on the group. When it hears nothing for the listen
//     time, it sends a read request (no options, blksize 512) to the server
//     port and so becomes the master client. The server sends block 1 to the
//     master's own address and to the group, then each block the master
//     acknowledges the one before of, to the group only.
//   - Clients that heard the stream collect blocks in any order; one that
//     still misses some when the stream ends asks again, starting a new
//     stream. A request for a file whose stream is running is ignored: the
//     requester hears that stream.

// ServeMTFTP answers PXE MTFTP read requests arriving on conn (bound to the
// MTFTP server port, Multicast.PXEServerPort) until conn is closed or the
// server closes; it closes conn when it returns. It needs s.Multicast with
// PXEFiles; other requests get an ERROR.
func (s *Server) ServeMTFTP(conn net.PacketConn) error {
	return s.listen(conn, netip.IPv4Unspecified(), 2048, "mtftp: read request", nil,
		func(dst netip.Addr, from netip.AddrPort, b []byte) {
			s.handleMTFTP(conn, dst, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), b)
		})
}

// handleMTFTP is the MTFTP listener's per-datagram step.
func (s *Server) handleMTFTP(conn net.PacketConn, local netip.Addr, from netip.AddrPort, b []byte) {
	log := s.logger()
	p, err := ParsePacket(b)
	if err != nil {
		s.malformed.Add(1)
		log.Debug("tftp: mtftp: dropped malformed packet", "client", from, "len", len(b), "err", err)
		return
	}
	if p.Op != OpRRQ {
		if p.Op != OpERROR {
			s.reply(conn, from, ErrCodeIllegalOperation, "expected RRQ")
		}
		return
	}
	m := s.Multicast
	name := CleanName(p.Filename)
	var group netip.Addr
	ok := m != nil && m.PXEFiles != nil && m.PXEFiles(name) && local.Is4() && !local.IsUnspecified()
	if ok {
		group, ok = m.pxeGroupFor(name, true)
	}
	if !ok {
		s.refused.Add(1)
		log.Info("tftp: mtftp: request refused: file not offered by MTFTP", "client", from, "file", name)
		s.reply(conn, from, ErrCodeNotFound, "file not offered by MTFTP")
		return
	}
	if octet, why := isMode(p.Mode); !octet {
		s.refused.Add(1)
		s.reply(conn, from, ErrCodeIllegalOperation, why)
		return
	}
	key := mcKey{name: name, local: local, blksize: DefaultBlksize, pxe: true}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if ss := s.sessions[key]; ss != nil {
		s.mu.Unlock()
		// PXE 2.1: the stream is running; the requester hears it.
		log.Debug("tftp: mtftp: already serving this file, request ignored", "client", from, "file", name)
		return
	}
	s.mu.Unlock()
	req := Request{Filename: p.Filename, Client: from, Local: local}
	if s.Handler == nil {
		s.reply(conn, from, ErrCodeNotFound, "file not found")
		return
	}
	f, size, err := s.Handler(req)
	if err != nil {
		s.refused.Add(1)
		code, msg := errorCodeFor(err)
		log.Info("tftp: mtftp: request refused", "client", from, "file", name, "err", err)
		s.reply(conn, from, code, msg)
		return
	}
	if size < 0 || size/DefaultBlksize+1 > maxMulticastBlocks {
		f.Close()
		s.refused.Add(1)
		log.Warn("tftp: mtftp: file too big for MTFTP (65535 blocks of 512 bytes)", "client", from, "file", name, "size", size)
		s.reply(conn, from, ErrCodeUndefined, "file too big for MTFTP")
		return
	}
	clientPort, _ := m.pxePorts()
	s.mu.Lock()
	if s.closed || s.sessions[key] != nil {
		s.mu.Unlock()
		f.Close()
		return
	}
	ss, err := s.newSession(key, f, size, DefaultBlksize, group, clientPort)
	if err != nil {
		s.mu.Unlock()
		f.Close()
		log.Warn("tftp: mtftp: cannot start session", "client", from, "file", name, "err", err)
		s.reply(conn, from, ErrCodeUndefined, "server busy: no multicast session")
		return
	}
	ss.join(from, req, Negotiated{Blksize: DefaultBlksize, Windowsize: 1})
	s.mu.Unlock()
	go ss.run()
}
