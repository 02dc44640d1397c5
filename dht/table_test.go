package dht

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestTableClosestMatchesFullSort checks that closest, which sorts only the
// buckets that can hold the answer, returns what sorting every usable
// entry (bucket nodes that are not bad, replacement nodes that are good)
// would.
func TestTableClosestMatchesFullSort(t *testing.T) {
	now := time.Now()
	rnd := rand.New(rand.NewPCG(7, 7))
	self := randomID(rnd)
	tb := newTable(self, false, now)
	for i := range 3000 {
		id := randomID(rnd)
		// Bias towards our id so the table splits a dozen times.
		keep := rnd.IntN(14)
		for bit := 0; bit < keep; bit++ {
			m := byte(0x80 >> (bit % 8))
			id[bit/8] = id[bit/8]&^m | self[bit/8]&m
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 1)
		tb.seen(contact{id: id, addr: addr}, true, now.Add(-time.Duration(rnd.IntN(30))*time.Minute))
	}
	if len(tb.buckets) < 8 {
		t.Fatalf("table has only %d buckets", len(tb.buckets))
	}
	var usable []contact
	repl := 0
	for _, b := range tb.buckets {
		for _, e := range b.nodes {
			if !e.bad(now) {
				usable = append(usable, e.contact)
			}
		}
		for _, e := range b.repl {
			if e.good(now) {
				usable = append(usable, e.contact)
				repl++
			}
		}
	}
	if repl == 0 {
		t.Fatal("no good replacement nodes; the test would not cover them")
	}
	for range 500 {
		target := randomID(rnd)
		if rnd.IntN(3) == 0 {
			target = self
			target[19] ^= byte(rnd.IntN(256))
		}
		for _, n := range []int{1, K, 2 * K, 500} {
			want := slices.Clone(usable)
			slices.SortFunc(want, func(a, b contact) int { return distanceCmp(target, a.id, b.id) })
			want = want[:min(n, len(want))]
			if got := tb.closest(target, n, now); !slices.Equal(got, want) {
				t.Fatalf("closest(%x, %d): got %d contacts, want %d; first differs: %v", target, n, len(got), len(want), firstDiff(got, want))
			}
		}
	}
}

func firstDiff(a, b []contact) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestReplacementCache checks the cache behind a full far bucket: it holds
// at most maxRepl nodes, makes a querying node worth verifying while it
// has room, lends its good nodes to closest, and drops a node at its first
// unanswered query.
func TestReplacementCache(t *testing.T) {
	now := time.Now()
	var self [20]byte
	tb := newTable(self, false, now)
	far := func(i int) contact {
		return contact{id: [20]byte{0x80, byte(i >> 8), byte(i)}, addr: netipPortMust("10.9.0.1", uint16(i+1))}
	}
	for i := range K {
		tb.seen(far(i), true, now)
	}
	if !tb.wouldInsert(far(K), now) {
		t.Fatal("a full bucket with an empty cache did not want a new node")
	}
	for i := K; i < K+maxRepl+10; i++ {
		tb.seen(far(i), true, now)
	}
	b := tb.buckets[0]
	if len(b.nodes) != K || len(b.repl) != maxRepl {
		t.Fatalf("bucket has %d nodes and %d replacements, want %d and %d", len(b.nodes), len(b.repl), K, maxRepl)
	}
	if tb.wouldInsert(far(1000), now) {
		t.Fatal("a full cache of good nodes still wants new ones")
	}
	if later := now.Add(goodFor + time.Minute); !tb.wouldInsert(far(1000), later) {
		t.Fatal("a cache of nodes silent for longer than goodFor does not take new ones")
	}
	got := tb.closest([20]byte{0x80}, 1000, now)
	if len(got) != K+maxRepl {
		t.Fatalf("closest returned %d contacts, want the %d nodes and replacements", len(got), K+maxRepl)
	}
	if n := len(tb.closest([20]byte{0x80}, 1000, now.Add(goodFor+time.Minute))); n != K {
		t.Fatalf("closest lent %d stale replacements", n-K)
	}
	victim := b.repl[0].contact
	tb.failed(victim, now)
	if slices.ContainsFunc(b.repl, func(e *entry) bool { return e.contact == victim }) {
		t.Fatal("a replacement that failed a query was kept")
	}
}
