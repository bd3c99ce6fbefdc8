package cluster

import (
	"fmt"
	"net/netip"
	"testing"
)

// The mixing table of RFC 3074 §6 is a permutation of 0..255.
func TestMixingTableIsPermutation(t *testing.T) {
	var seen [256]bool
	for i, v := range pearson {
		if seen[v] {
			t.Fatalf("value %d twice (index %d)", v, i)
		}
		seen[v] = true
	}
}

// RFC 3074 §6 hashes the key from its last byte to its first, starting
// from the key's length.
func TestLoadBalanceHash(t *testing.T) {
	key := []byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	h := uint8(len(key))
	for i := len(key) - 1; i >= 0; i-- {
		h = pearson[h^key[i]]
	}
	if got := Bucket(key); got != h {
		t.Fatalf("Bucket = %d, want %d", got, h)
	}
	if Bucket([]byte{1, 2}) == Bucket([]byte{2, 1}) && Bucket([]byte{1, 2, 3}) == Bucket([]byte{3, 2, 1}) {
		t.Error("the hash ignores byte order")
	}
}

func TestShareSplit(t *testing.T) {
	ids := []string{"a", "b", "c"}
	shares := map[string]*Share{}
	for _, id := range ids {
		shares[id] = NewShare(id, ids)
	}
	total := 0
	for _, id := range ids {
		n := shares[id].Buckets()
		if n < 40 {
			t.Errorf("%s owns %d of 256 buckets: the split is lopsided", id, n)
		}
		total += n
	}
	if total != 256 {
		t.Fatalf("buckets owned: %d, want 256 (each exactly once)", total)
	}
	for i := range 2000 {
		mac := []byte{0x02, 0, 0, 0, byte(i >> 8), byte(i)}
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		nc, na := 0, 0
		for _, id := range ids {
			if shares[id].OwnsClient(mac) {
				nc++
			}
			if shares[id].OwnsAddr(addr) {
				na++
			}
		}
		if nc != 1 || na != 1 {
			t.Fatalf("client %x owned by %d servers, address %v by %d; want exactly one each", mac, nc, addr, na)
		}
	}
}

// When a server dies only its share moves: every bucket a survivor owned it
// still owns (rendezvous hashing).
func TestShareFailoverMovesOnlyTheDeadShare(t *testing.T) {
	before := map[string]*Share{"a": NewShare("a", []string{"a", "b", "c"}), "b": NewShare("b", []string{"a", "b", "c"})}
	after := map[string]*Share{"a": NewShare("a", []string{"a", "b"}), "b": NewShare("b", []string{"a", "b"})}
	for b := range 256 {
		for _, id := range []string{"a", "b"} {
			if before[id].bkt[b] == id && after[id].bkt[b] != id {
				t.Fatalf("bucket %d moved away from survivor %s", b, id)
			}
		}
		if after["a"].bkt[b] != "a" && after["a"].bkt[b] != "b" {
			t.Fatalf("bucket %d owned by %q after c died", b, after["a"].bkt[b])
		}
	}
	if got := after["a"].Buckets() + after["b"].Buckets(); got != 256 {
		t.Fatalf("survivors own %d buckets, want 256", got)
	}
}

func TestShareAloneAndNone(t *testing.T) {
	alone := NewShare("a", []string{"a"})
	none := NewShare("a", nil)
	notMe := NewShare("a", []string{"b"})
	for i := range 256 {
		key := []byte(fmt.Sprint(i))
		addr := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if !alone.OwnsClient(key) || !alone.OwnsAddr(addr) {
			t.Fatal("a lone server must own every client and address")
		}
		if none.OwnsClient(key) || none.OwnsAddr(addr) || notMe.OwnsClient(key) || notMe.OwnsAddr(addr) {
			t.Fatal("a server that is not live (no database) must own nothing")
		}
	}
	if !alone.Alone() || none.Alone() {
		t.Error("Alone")
	}
}
