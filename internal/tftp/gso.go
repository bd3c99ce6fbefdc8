package tftp

import (
	"encoding/binary"
	"syscall"
	"unsafe"
)

// UDP generic segmentation offload (Linux 4.18+): one sendmsg carries a batch
// of equal-sized datagrams (the last may be shorter), which the kernel or the
// NIC splits. A window of DATA packets then costs one system call instead of
// one per block.
const (
	solUDP        = 17  // SOL_UDP
	udpSegment    = 103 // UDP_SEGMENT, linux/udp.h
	gsoMaxSegs    = 64  // UDP_MAX_SEGMENTS
	gsoMaxBuffer  = 65000
	mmsgMaxBuffer = 256 << 10 // a sendmmsg batch's buffer, at most
)

type gsoState struct {
	on   bool
	segs int // packets per batch (1 = no GSO)
	oob  []byte
}

// newGSO decides the batch size for a transfer with windowsize ws and packets
// of seg bytes.
func newGSO(s *Server, ws uint64, seg int) gsoState {
	n := min(int(min(ws, gsoMaxSegs)), gsoMaxBuffer/seg)
	if n < 2 {
		return gsoState{segs: 1}
	}
	if s.noGSO.Load() || s.DisableGSO {
		// Batches for sendmmsg, which has no 64 KiB bound: a whole
		// window of up to 64 packets, within mmsgMaxBuffer.
		return gsoState{segs: max(n, min(int(min(ws, gsoMaxSegs)), mmsgMaxBuffer/seg))}
	}
	oob := make([]byte, syscall.CmsgSpace(2))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = solUDP, udpSegment
	h.SetLen(syscall.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[syscall.CmsgLen(0):], uint16(seg))
	return gsoState{on: true, segs: n, oob: oob}
}
