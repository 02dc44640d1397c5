package dht

import (
	"cmp"
	"math/bits"
	"slices"
	"time"
)

// K is the bucket size and the number of closest nodes a lookup converges
// on (BEP 5 uses 8).
const K = 8

// maxRepl bounds each bucket's replacement cache.
const maxRepl = 4 * K

// Node liveness rules of BEP 5: a node is good while it has answered us
// within goodFor; nodes failing maxFails queries in a row are bad.
const (
	goodFor  = 15 * time.Minute
	maxFails = 2
)

// entry is a routing table node with its liveness history.
type entry struct {
	contact
	lastResponse time.Time // last reply to one of our queries
	lastQuery    time.Time // last query it sent us
	fails        int       // consecutive unanswered queries
}

// good reports whether the node is known to be alive (BEP 5 "good").
func (e *entry) good(now time.Time) bool {
	if e.fails > 0 || e.lastResponse.IsZero() {
		return false
	}
	return now.Sub(e.lastResponse) < goodFor || now.Sub(e.lastQuery) < goodFor
}

// bad reports whether the node may be replaced: it failed twice in a row,
// or once after a long silence.
func (e *entry) bad(now time.Time) bool {
	return e.fails >= maxFails || (e.fails > 0 && now.Sub(e.lastResponse) >= goodFor)
}

// bucket holds up to K nodes sharing a prefix length with our id, plus a
// cache of verified nodes that can replace bad ones.
type bucket struct {
	nodes   []*entry
	repl    []*entry
	changed time.Time
}

// table is the routing table: buckets[i] holds the nodes whose id shares
// exactly i leading bits with ours, except the last bucket, which holds
// everything at least that close. Only the last bucket is ever split, so
// the table keeps fine detail near our own id and coarse detail far away.
type table struct {
	self    [20]byte
	v6      bool // the address family this table holds
	buckets []*bucket
	size    int
}

func newTable(self [20]byte, v6 bool, now time.Time) *table {
	return &table{self: self, v6: v6, buckets: []*bucket{{changed: now}}}
}

// prefixLen is the number of leading bits a and b share.
func prefixLen(a, b [20]byte) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return 160
}

// distanceCmp orders a and b by XOR distance to target.
func distanceCmp(target, a, b [20]byte) int {
	for i := range target {
		da, db := a[i]^target[i], b[i]^target[i]
		if da != db {
			return cmp.Compare(da, db)
		}
	}
	return 0
}

func (t *table) bucketIndex(id [20]byte) int {
	return min(prefixLen(t.self, id), len(t.buckets)-1)
}

func (t *table) find(id [20]byte) (*bucket, int) {
	b := t.buckets[t.bucketIndex(id)]
	for i, e := range b.nodes {
		if e.id == id {
			return b, i
		}
	}
	return b, -1
}

// get returns the entry with the given id, or nil.
func (t *table) get(id [20]byte) *entry {
	b, i := t.find(id)
	if i < 0 {
		return nil
	}
	return b.nodes[i]
}

// accepts reports whether a contact may go in this table at all.
func (t *table) accepts(c contact) bool {
	a := c.addr.Addr().Unmap()
	return c.id != t.self && c.addr.Port() != 0 && a.IsValid() && !a.IsUnspecified() && !a.IsMulticast() && a.Is6() == t.v6
}

// restricted reports whether c may not join bucket b because of its
// address, as libtorrent restricts its table: another node of the table
// has its IP, or a node of b has an IP in its /24 (IPv4) or /64 (IPv6).
// One host, or one network, then cannot fill the part of the table
// around an id (to eclipse it) with nodes of made-up ids. Loopback and
// private addresses are exempt (see sharedAddr).
func (t *table) restricted(c contact, b *bucket) bool {
	ip := c.addr.Addr().Unmap()
	if sharedAddr(ip) {
		return false
	}
	bitsLen := 24
	if ip.Is6() {
		bitsLen = 64
	}
	subnet, _ := ip.Prefix(bitsLen)
	for _, bb := range t.buckets {
		for _, e := range bb.nodes {
			if e.id == c.id {
				continue
			}
			a := e.addr.Addr().Unmap()
			if a == ip || bb == b && subnet.Contains(a) {
				return true
			}
		}
	}
	return false
}

// wouldInsert reports whether a new node could be added without evicting
// a live one, so that a node which queried us is only verified (pinged)
// when that could change the table.
func (t *table) wouldInsert(c contact, now time.Time) bool {
	if !t.accepts(c) {
		return false
	}
	b, i := t.find(c.id)
	if i >= 0 || t.restricted(c, b) {
		return false
	}
	if len(b.nodes) < K || (b == t.buckets[len(t.buckets)-1] && len(t.buckets) < 160) {
		return true
	}
	for _, e := range b.nodes {
		if e.bad(now) {
			return true
		}
	}
	return b.wantsRepl(c.id, now)
}

// wantsRepl reports whether the replacement cache would take a new node
// with this id: it has room, or holds a node that has gone quiet.
func (b *bucket) wantsRepl(id [20]byte, now time.Time) bool {
	if len(b.repl) < maxRepl {
		return !slices.ContainsFunc(b.repl, func(r *entry) bool { return r.id == id })
	}
	for _, r := range b.repl {
		if r.id == id {
			return false
		}
	}
	return !b.repl[0].good(now)
}

// seen records a message from c. responded says whether it was a reply to
// our query (which proves the address); a query only refreshes a node
// already in the table. The result, if non-nil, is a questionable node
// whose liveness the caller should check with a ping, because c is
// waiting for its place.
func (t *table) seen(c contact, responded bool, now time.Time) (check *entry) {
	if !t.accepts(c) {
		return nil
	}
	b, i := t.find(c.id)
	if i >= 0 {
		e := b.nodes[i]
		if e.addr != c.addr {
			// Same id from another address: keep the one we know unless
			// it has stopped answering, so an id cannot be hijacked.
			if !responded || !e.bad(now) || t.restricted(c, b) {
				return nil
			}
			e.addr = c.addr
		}
		if responded {
			e.lastResponse, e.fails = now, 0
		} else {
			e.lastQuery = now
		}
		return nil
	}
	if !responded || t.restricted(c, b) {
		return nil
	}
	e := &entry{contact: c, lastResponse: now}
	for {
		if len(b.nodes) < K {
			b.nodes = append(b.nodes, e)
			b.changed = now
			t.size++
			b.dropRepl(c.id)
			return nil
		}
		for j, old := range b.nodes {
			if old.bad(now) {
				b.nodes[j] = e
				b.changed = now
				b.dropRepl(c.id)
				return nil
			}
		}
		if b == t.buckets[len(t.buckets)-1] && len(t.buckets) < 160 {
			t.split()
			b = t.buckets[t.bucketIndex(c.id)]
			continue
		}
		break
	}
	b.addRepl(e)
	var oldest *entry
	for _, old := range b.nodes {
		if !old.good(now) && (oldest == nil || old.lastResponse.Before(oldest.lastResponse)) {
			oldest = old
		}
	}
	return oldest
}

// split divides the last bucket, moving the nodes that share one more bit
// with our id into a new last bucket.
func (t *table) split() {
	last := len(t.buckets) - 1
	old := t.buckets[last]
	nb := &bucket{changed: old.changed}
	t.buckets = append(t.buckets, nb)
	keep := old.nodes[:0]
	for _, e := range old.nodes {
		if prefixLen(t.self, e.id) > last {
			nb.nodes = append(nb.nodes, e)
		} else {
			keep = append(keep, e)
		}
	}
	clear(old.nodes[len(keep):])
	old.nodes = keep
	keepR := old.repl[:0]
	for _, e := range old.repl {
		if prefixLen(t.self, e.id) > last {
			nb.repl = append(nb.repl, e)
		} else {
			keepR = append(keepR, e)
		}
	}
	clear(old.repl[len(keepR):])
	old.repl = keepR
}

func (b *bucket) addRepl(e *entry) {
	for i, r := range b.repl {
		if r.id == e.id {
			b.repl[i] = e
			return
		}
	}
	if len(b.repl) >= maxRepl {
		copy(b.repl, b.repl[1:])
		b.repl = b.repl[:len(b.repl)-1]
	}
	b.repl = append(b.repl, e)
}

func (b *bucket) dropRepl(id [20]byte) {
	b.repl = slices.DeleteFunc(b.repl, func(r *entry) bool { return r.id == id })
}

// failed records an unanswered query to the node with this id and address.
// A node that becomes bad is removed and its place goes to the most recent
// replacement, if any. It reports whether the node was removed.
func (t *table) failed(c contact, now time.Time) bool {
	b, i := t.find(c.id)
	if i < 0 {
		b.repl = slices.DeleteFunc(b.repl, func(r *entry) bool { return r.contact == c })
		return false
	}
	e := b.nodes[i]
	if e.addr != c.addr {
		return false
	}
	e.fails++
	if !e.bad(now) {
		return false
	}
	b.nodes = slices.Delete(b.nodes, i, i+1)
	t.size--
	b.changed = now
	// The most recent replacement takes the place, unless its address
	// is restricted since it was cached.
	for j := len(b.repl) - 1; j >= 0; j-- {
		r := b.repl[j]
		if t.restricted(r.contact, b) {
			continue
		}
		b.repl = slices.Delete(b.repl, j, j+1)
		b.nodes = append(b.nodes, r)
		t.size++
		break
	}
	return true
}

// closest returns up to n non-bad contacts closest to target. The good
// nodes of the replacement caches count as well: they answered us
// recently, and the larger sample of each part of the id space they add
// lets a reply or a lookup's first queries land closer to the target.
//
// Only the buckets that can hold the answer are sorted. With b the bucket
// target falls in, every node of b is closer to target than any node
// elsewhere, then come the buckets after b (they share exactly b bits with
// target), then buckets b-1, b-2, ... in that order; groups are taken in
// that order until n contacts are in hand.
func (t *table) closest(target [20]byte, n int, now time.Time) []contact {
	var out []contact
	add := func(b *bucket) {
		for _, e := range b.nodes {
			if !e.bad(now) {
				out = append(out, e.contact)
			}
		}
		for _, e := range b.repl {
			if e.good(now) {
				out = append(out, e.contact)
			}
		}
	}
	bi := t.bucketIndex(target)
	add(t.buckets[bi])
	if len(out) < n {
		for _, b := range t.buckets[bi+1:] {
			add(b)
		}
	}
	for i := bi - 1; i >= 0 && len(out) < n; i-- {
		add(t.buckets[i])
	}
	slices.SortFunc(out, func(a, b contact) int { return distanceCmp(target, a.id, b.id) })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

// all returns every contact in the table, closest buckets last.
func (t *table) all() []contact {
	out := make([]contact, 0, t.size)
	for _, b := range t.buckets {
		for _, e := range b.nodes {
			out = append(out, e.contact)
		}
	}
	return out
}

// stale returns the indexes of buckets not changed since before cutoff.
func (t *table) stale(cutoff time.Time) []int {
	var out []int
	for i, b := range t.buckets {
		if b.changed.Before(cutoff) {
			out = append(out, i)
		}
	}
	return out
}

// questionable returns nodes not heard from within goodFor, oldest first.
func (t *table) questionable(now time.Time, n int) []contact {
	var es []*entry
	for _, b := range t.buckets {
		for _, e := range b.nodes {
			if !e.good(now) {
				es = append(es, e)
			}
		}
	}
	slices.SortFunc(es, func(a, b *entry) int { return a.lastResponse.Compare(b.lastResponse) })
	out := make([]contact, 0, min(n, len(es)))
	for _, e := range es[:min(n, len(es))] {
		out = append(out, e.contact)
	}
	return out
}

// randomIDInBucket returns an id that falls in bucket i, built from rnd,
// for refreshing that bucket with a lookup.
func (t *table) randomIDInBucket(i int, rnd [20]byte) [20]byte {
	id := rnd
	// Copy our first i bits, then flip bit i unless this is the last bucket
	// (which covers every id sharing at least i bits).
	for bit := 0; bit < i; bit++ {
		mask := byte(0x80 >> (bit % 8))
		id[bit/8] = id[bit/8]&^mask | t.self[bit/8]&mask
	}
	if i < len(t.buckets)-1 && i < 160 {
		mask := byte(0x80 >> (i % 8))
		id[i/8] = id[i/8]&^mask | ^t.self[i/8]&mask
	}
	return id
}
