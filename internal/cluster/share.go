// Package cluster lets several pxed servers answer one network with one
// database as the single source of truth. Each server writes a liveness row
// (a heartbeat) to the shared store and reads its peers' rows; the live
// servers split the work between them:
//
//   - clients, by the RFC 3074 hash of the client's hardware address (256
//     buckets): a server answers the DISCOVERs (and broadcast REQUESTs) of
//     the buckets it owns and ignores the others;
//   - never-used and free addresses of the pools, by a hash of the address:
//     a server offers only the free addresses it owns, so two servers never
//     offer one free address at once.
//
// Ownership is rendezvous (highest random weight) hashing over the live
// servers' IDs: when a server dies, only its buckets and addresses move, to
// the survivors, within the liveness timeout. A server whose own heartbeat
// cannot be written (database unreachable) owns nothing: it never hands
// out an address on its own. The database still decides every binding
// (compare-and-swap on the address row), so a stale view (two servers that
// both believe they own a bucket for a second) costs a DHCPNAK, never a
// duplicate address.
package cluster

import (
	"hash/fnv"
	"net/netip"
	"slices"
)

// loadBalanceHash is the hash of RFC 3074 §6 (Pearson's hash with the RFC's
// mixing table, over the key from its last byte to its first) of key, the
// client identifier or else the hardware address. It picks one of 256
// buckets.
func loadBalanceHash(key []byte) uint8 {
	h := uint8(len(key))
	for i := len(key) - 1; i >= 0; i-- {
		h = pearson[h^key[i]]
	}
	return h
}

// pearson is the permutation table of RFC 3074 §6 (loadb_mx_tbl).
var pearson = [256]uint8{
	251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0,
	232, 31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57,
	223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179,
	197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23,
	97, 16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108,
	244, 67, 207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193,
	200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75,
	27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115,
	241, 73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221,
	148, 154, 122, 12, 84, 82, 163, 44, 139, 228, 236, 205, 242, 217, 11,
	187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118, 112, 184, 172, 87,
	2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66,
	231, 52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189,
	93, 92, 51, 53, 183, 19, 171, 72, 50, 33, 104, 101, 69, 8, 252, 83, 120,
	76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136, 208, 162, 129, 190,
	132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
	149, 80, 170, 68, 6, 169, 234, 151,
}

// Share is one server's part of the work: which client buckets and which
// addresses it owns, given the live servers. The zero Share (no live
// servers known) owns nothing. A Share is immutable.
type Share struct {
	self string
	live []string    // sorted live server IDs, self included when alive
	seed []uint64    // per live ID: its hash seed
	bkt  [256]string // owner of each client bucket
}

// NewShare computes self's share among the live servers (IDs; self is
// counted only if it is in live). A single live server owns everything.
func NewShare(self string, live []string) *Share {
	s := &Share{self: self, live: slices.Clone(live)}
	slices.Sort(s.live)
	s.live = slices.Compact(s.live)
	for _, id := range s.live {
		h := fnv.New64a()
		h.Write([]byte(id))
		s.seed = append(s.seed, h.Sum64())
	}
	for b := range 256 {
		s.bkt[b] = s.owner([]byte{byte(b)})
	}
	return s
}

// owner is the live server with the highest rendezvous weight for key.
func (s *Share) owner(key []byte) string {
	h := fnv.New64a()
	h.Write(key)
	k := h.Sum64()
	best, bestW := "", uint64(0)
	for i, id := range s.live {
		if w := mix64(s.seed[i] ^ k); best == "" || w > bestW {
			best, bestW = id, w
		}
	}
	return best
}

// mix64 is the SplitMix64 finalizer: every input bit flips about half the
// output bits, so the weights of one key under two seeds are independent.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Live returns the live server IDs the share was computed from, sorted.
func (s *Share) Live() []string { return slices.Clone(s.live) }

// Alone reports whether self is the only live server (or the share is
// unset): it then owns every client and address.
func (s *Share) Alone() bool { return len(s.live) == 1 && s.live[0] == s.self }

// Bucket returns the RFC 3074 bucket of a client: key is its client
// identifier (option 61, or the DHCPv6 DUID) when it sent one, else its
// hardware address.
func Bucket(key []byte) uint8 { return loadBalanceHash(key) }

// OwnsClient reports whether self answers the client whose RFC 3074 key
// (see Bucket) is key.
func (s *Share) OwnsClient(key []byte) bool {
	return s.self != "" && s.bkt[loadBalanceHash(key)] == s.self
}

// OwnsAddr reports whether self may offer addr when it is free.
func (s *Share) OwnsAddr(addr netip.Addr) bool {
	if len(s.live) == 0 || s.self == "" {
		return false
	}
	if len(s.live) == 1 {
		return s.live[0] == s.self
	}
	b := addr.As16()
	return s.owner(b[:]) == s.self
}

// Buckets returns how many of the 256 client buckets self owns.
func (s *Share) Buckets() int {
	n := 0
	for _, o := range s.bkt {
		if o == s.self && o != "" {
			n++
		}
	}
	return n
}
