package trackerserver

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
)

// A peer is a fixed-size record in pointer-free chunks of its address
// family (see chunkPool), so that peers are nothing for the garbage
// collector to scan and a peer costs its record and little more:
//
//	[0, 20)          peer id
//	[20, 20+a)       address and port exactly as a compact reply carries
//	                 them (a = 6 for IPv4, 18 for IPv6), so a reply copies
//	[20+a, 24+a)     clock of the last announce, seeder flag in the top bit
//	[24+a, 28+a)     BEP 7 key, which lets a peer move to another address
//
// 34 bytes per IPv4 peer, 46 per IPv6 peer.
const (
	idLen     = 20
	v4AddrLen = 6
	v6AddrLen = 18
	v4Stride  = idLen + v4AddrLen + 8
	v6Stride  = idLen + v6AddrLen + 8
	seederBit = 1 << 31
)

// Index thresholds: a family is scanned linearly up to indexAt peers (a
// scan of a few cache lines beats hashing), indexed from there, and drops
// its index again below unindexAt.
const (
	indexAt   = 24
	unindexAt = 8
)

// familyInline is how many chunk handles a family holds in place: the
// records of up to familyInline*chunkRecs peers (ten), which is most
// torrents of a public tracker, cost no allocation beyond the swarm.
const familyInline = 5

// family is the peers of one address family in a swarm: their counts and
// the handles of the first chunks of records. What a larger family needs
// besides (more handles, an index) is in a familyExt.
type family struct {
	n, seeders int32
	first      [familyInline]uint32
}

// familyExt is the part of a family that only families of more than
// familyInline chunks need.
type familyExt struct {
	// more are the handles of chunks after the first familyInline, the
	// last one possibly part used.
	more []uint32
	// idx is an open-addressing (linear probing) table from peer id to
	// record number, nil while the family is small enough to scan. Slots
	// hold record number + 1; 0 is free. The hash is seeded per tracker,
	// so peer ids chosen to collide in one tracker do not collide in
	// another.
	idx []uint32
}

// famView is a family with what its operations need: its extension (nil
// while an IPv4 family fits in place), the swarm to attach one to, and the
// chunk pool of its shard and address family. Keeping the pool here rather
// than in the family keeps every swarm at 48 bytes. A view is made for one
// operation under the shard lock.
type famView struct {
	f    *family
	x    *familyExt
	sw   *swarm
	pool *chunkPool
}

func (f *family) len() int { return int(f.n) }

// chunks returns the number of chunks the family's records take.
func (f *family) chunks() int { return (f.len() + chunkRecs - 1) / chunkRecs }

func (v *famView) len() int { return v.f.len() }

// ext returns the family's extension, attaching one to the swarm first if
// it has none. (Only an IPv4 view can lack one: an IPv6 family lives in
// the extension.)
func (v *famView) ext() *familyExt {
	if v.x == nil {
		if v.sw.ext == nil {
			v.sw.ext = &swarmExt{}
		}
		v.x = &v.sw.ext.v4x
	}
	return v.x
}

func (v *famView) idx() []uint32 {
	if v.x == nil {
		return nil
	}
	return v.x.idx
}

// handle returns the handle of chunk c.
func (v *famView) handle(c int) uint32 {
	if c < familyInline {
		return v.f.first[c]
	}
	return v.x.more[c-familyInline]
}

func (v *famView) rec(i int) []byte {
	s := v.pool.stride
	off := i % chunkRecs * s
	return v.pool.chunk(v.handle(i / chunkRecs))[off : off+s : off+s]
}

func (v *famView) addrLen() int { return v.pool.stride - idLen - 8 }

// meta returns a record's seen clock and seeder flag.
func (v *famView) meta(r []byte) (seen uint32, seeder bool) {
	m := binary.LittleEndian.Uint32(r[idLen+v.addrLen():])
	return m &^ seederBit, m&seederBit != 0
}

func (v *famView) key(r []byte) uint32 {
	return binary.LittleEndian.Uint32(r[idLen+v.addrLen()+4:])
}

func (v *famView) setMeta(r []byte, seen uint32, seeder bool, key uint32) {
	m := seen &^ seederBit
	if seeder {
		m |= seederBit
	}
	a := v.addrLen()
	binary.LittleEndian.PutUint32(r[idLen+a:], m)
	binary.LittleEndian.PutUint32(r[idLen+a+4:], key)
}

// find returns the record number of id, or -1.
func (v *famView) find(t *swarmTable, id *[20]byte) int {
	idx := v.idx()
	if idx == nil {
		tail := idTail(id[:])
		for i := range v.len() {
			r := v.rec(i)[:idLen]
			if idTail(r) == tail && string(r) == string(id[:]) {
				return i
			}
		}
		return -1
	}
	mask := uint64(len(idx) - 1)
	for h := t.hash(id[:]) & mask; ; h = (h + 1) & mask {
		s := idx[h]
		if s == 0 {
			return -1
		}
		if string(v.rec(int(s - 1))[:idLen]) == string(id[:]) {
			return int(s - 1)
		}
	}
}

// idTail returns the last 8 bytes of a peer id, which differ between
// peers even when the first 8 (the client's name and version, by
// convention) do not: comparing them first rejects most records at the
// cost of one load.
func idTail(id []byte) uint64 { return binary.LittleEndian.Uint64(id[idLen-8 : idLen]) }

// indexInsert adds record i to the index, which has a free slot.
func (v *famView) indexInsert(t *swarmTable, i int) {
	idx := v.x.idx
	mask := uint64(len(idx) - 1)
	h := t.hash(v.rec(i)[:idLen]) & mask
	for idx[h] != 0 {
		h = (h + 1) & mask
	}
	idx[h] = uint32(i + 1)
}

// indexSlot returns the slot holding record i.
func (v *famView) indexSlot(t *swarmTable, i int) uint64 {
	idx := v.x.idx
	mask := uint64(len(idx) - 1)
	h := t.hash(v.rec(i)[:idLen]) & mask
	for idx[h] != uint32(i+1) {
		h = (h + 1) & mask
	}
	return h
}

// indexDelete frees slot h, shifting later entries of its probe run back
// so that lookups never stop early at the hole.
func (v *famView) indexDelete(t *swarmTable, h uint64) {
	slots := v.x.idx
	mask := uint64(len(slots) - 1)
	for j := (h + 1) & mask; slots[j] != 0; j = (j + 1) & mask {
		home := t.hash(v.rec(int(slots[j] - 1))[:idLen]) & mask
		// The entry at j may move to h unless its home lies cyclically
		// in (h, j].
		if (h < j && h < home && home <= j) || (h > j && (home > h || home <= j)) {
			continue
		}
		slots[h] = slots[j]
		h = j
	}
	slots[h] = 0
}

// reindex builds the index afresh for the current records (or drops it
// when the family is small).
func (v *famView) reindex(t *swarmTable) {
	n := v.len()
	if n < unindexAt {
		if v.x != nil {
			v.x.idx = nil
		}
		return
	}
	size := 64
	for size < 2*n {
		size *= 2
	}
	v.ext().idx = make([]uint32, size)
	for i := range n {
		v.indexInsert(t, i)
	}
}

// remove deletes record i, moving the last record into its place.
func (v *famView) remove(t *swarmTable, i int) {
	last := v.len() - 1
	if v.idx() != nil {
		v.indexDelete(t, v.indexSlot(t, i))
		if i != last {
			h := v.indexSlot(t, last)
			v.x.idx[h] = uint32(i + 1)
		}
	}
	if i != last {
		copy(v.rec(i), v.rec(last))
	}
	if c := v.f.chunks() - 1; last == c*chunkRecs {
		v.pool.put(v.handle(c))
		if c >= familyInline {
			v.x.more = v.x.more[:c-familyInline]
		}
	}
	v.f.n--
	if v.idx() != nil && last < unindexAt {
		v.x.idx = nil
	}
}

// appendRec makes room for one more record and returns it, taking a new
// chunk when the last is full; it reports false if the pool has none. The
// list of further chunks grows by a quarter rather than doubling, since
// every handle in it is four bytes for chunkRecs peers.
func (v *famView) appendRec() ([]byte, bool) {
	if c := v.f.chunks(); v.len() == c*chunkRecs {
		h, ok := v.pool.get()
		if !ok {
			return nil, false
		}
		if c < familyInline {
			v.f.first[c] = h
		} else {
			x := v.ext()
			if n := len(x.more); n == cap(x.more) {
				// slices.Grow of an empty slice asks the allocator for
				// the size and keeps the whole size class it rounds up to.
				x.more = append(slices.Grow([]uint32(nil), n+max(n/4, 1)), x.more...)
			}
			x.more = append(x.more, h)
		}
	}
	v.f.n++
	return v.rec(v.len() - 1), true
}

// Errors of an update, turned into failure reasons.
var (
	errSwarmFull   = errors.New("torrent has the maximum number of peers")
	errTrackerFull = errors.New("tracker has the maximum number of peers")
	errTooMany     = errors.New("tracker has the maximum number of torrents")
	errPeerMoved   = errors.New("peer id already announced from another address with a different key")
)

// update records an announce in the family, or removes the peer for
// "stopped". addr is the compact address and port. It reports whether the
// peer was known as a seeder before, so that a "completed" event is counted
// once per download. A peer that changes address keeps its slot only if it
// proves its identity with the same BEP 7 key.
func (v *famView) update(t *swarmTable, id *[20]byte, addr []byte, key uint32, seeder bool, now uint32, stopped bool) (wasSeeder bool, err error) {
	f := v.f
	i := v.find(t, id)
	if stopped {
		if i >= 0 {
			_, wasSeeder = v.meta(v.rec(i))
			v.remove(t, i)
			t.lim.total.Add(-1)
			if wasSeeder {
				f.seeders--
			}
		}
		return wasSeeder, nil
	}
	var r []byte
	if i >= 0 {
		r = v.rec(i)
		if string(r[idLen:idLen+len(addr)]) != string(addr) && v.key(r) != key {
			return false, errPeerMoved
		}
		if _, wasSeeder = v.meta(r); wasSeeder {
			f.seeders--
		}
	} else {
		n := v.len()
		if n >= t.lim.perTorrent {
			return false, errSwarmFull
		}
		if t.lim.total.Add(1) > int64(t.lim.maxTotal) {
			t.lim.total.Add(-1)
			return false, errTrackerFull
		}
		var ok bool
		if r, ok = v.appendRec(); !ok {
			t.lim.total.Add(-1)
			return false, errTrackerFull
		}
		copy(r, id[:])
		switch idx := v.idx(); {
		case idx == nil && n+1 >= indexAt:
			v.reindex(t)
		case idx != nil && 4*(n+1) > 3*len(idx):
			v.reindex(t)
		case idx != nil:
			v.indexInsert(t, n)
		}
	}
	copy(r[idLen:], addr)
	v.setMeta(r, now, seeder, key)
	if seeder {
		f.seeders++
	}
	return wasSeeder, nil
}

// expire drops peers last seen before cutoff and returns how many. It
// also lets go of the chunk list and index when they are mostly unused
// (the chunks themselves went back to the pool as they emptied).
func (v *famView) expire(t *swarmTable, cutoff uint32) int {
	n := 0
	for i := 0; i < v.len(); {
		seen, seeder := v.meta(v.rec(i))
		if seen >= cutoff {
			i++
			continue
		}
		v.remove(t, i) // the last record moves to i: look at i again
		if seeder {
			v.f.seeders--
		}
		n++
	}
	t.lim.total.Add(-int64(n))
	x := v.x
	if x == nil {
		return n
	}
	switch {
	case len(x.more) == 0:
		x.more = nil
	case cap(x.more) > 2*len(x.more)+4:
		x.more = append(slices.Grow([]uint32(nil), len(x.more)), x.more...)
	}
	if len(x.idx) > 64 && 8*v.len() < len(x.idx) {
		v.reindex(t)
	}
	return n
}

// collect appends to out the records of up to n peers other than self
// that were seen at or after cutoff, skipping seeders when noSeeders. It
// starts at a random record so that the peers handed out spread over the
// swarm, and returns out and the number of peers appended.
func (v *famView) collect(out []byte, n int, self *[20]byte, noSeeders bool, cutoff uint32) ([]byte, int) {
	total := v.len()
	if n <= 0 || total == 0 {
		return out, 0
	}
	got := 0
	tail := idTail(self[:])
	start := rand.IntN(total)
	for k := 0; k < total && got < n; k++ {
		i := start + k
		if i >= total {
			i -= total
		}
		r := v.rec(i)
		seen, seeder := v.meta(r)
		if seen < cutoff || (noSeeders && seeder) || (idTail(r) == tail && string(r[:idLen]) == string(self[:])) {
			continue
		}
		out = append(out, r...)
		got++
	}
	return out, got
}

// peerList is the peers picked for one reply: whole records of each
// family (v4Stride and v6Stride bytes), reused from request to request.
type peerList struct {
	v4, v6 []byte
}

func (l *peerList) reset() { l.v4, l.v6 = l.v4[:0], l.v6[:0] }

// swarm is everything known about one torrent, in 48 bytes (a size class
// of the allocator, so nothing is lost to rounding) plus the peers' records
// in the shard's chunk pools.
type swarm struct {
	v4 family
	// lastActive is the server-clock time of the last announce.
	lastActive uint32
	// completed counts downloads ever (the "downloaded" of a scrape).
	completed uint64
	// ext holds what only larger or dual-stack swarms need; nil for an
	// IPv4 swarm of up to ten peers.
	ext *swarmExt
}

// swarmExt is the rarely needed part of a swarm: the extension of its IPv4
// family and its IPv6 family (empty when n is 0).
type swarmExt struct {
	v4x, v6x familyExt
	v6       family
}

func (s *swarm) seeders() int {
	n := int(s.v4.seeders)
	if s.ext != nil {
		n += int(s.ext.v6.seeders)
	}
	return n
}

func (s *swarm) peers() int {
	n := s.v4.len()
	if s.ext != nil {
		n += s.ext.v6.len()
	}
	return n
}

func (s *swarm) leechers() int { return s.peers() - s.seeders() }
func (s *swarm) empty() bool   { return s.peers() == 0 }

// v4 returns the swarm's IPv4 family, whose records are in sh's pool.
func (s *swarm) v4View(sh *shard) famView {
	v := famView{f: &s.v4, sw: s, pool: &sh.v4}
	if s.ext != nil {
		v.x = &s.ext.v4x
	}
	return v
}

// v6View returns the swarm's IPv6 family, attaching the swarm's extension
// first if create is set; ok is false if there is none.
func (s *swarm) v6View(sh *shard, create bool) (v famView, ok bool) {
	if s.ext == nil {
		if !create {
			return v, false
		}
		s.ext = &swarmExt{}
	}
	return famView{f: &s.ext.v6, x: &s.ext.v6x, sw: s, pool: &sh.v6}, true
}

// trimExt drops the swarm's extension when nothing is left in it.
func (s *swarm) trimExt() {
	if x := s.ext; x != nil && x.v6.n == 0 && x.v4x.more == nil && x.v4x.idx == nil && x.v6x.more == nil && x.v6x.idx == nil {
		s.ext = nil
	}
}

// limits are the caps shared by all swarms.
type limits struct {
	perTorrent, maxTorrents, maxTotal int
	total                             atomic.Int64 // peers in all swarms
	torrents                          atomic.Int64
}

// shardCount spreads torrents over independently locked maps so announces
// for different torrents rarely contend.
const shardCount = 256

type shard struct {
	mu     sync.Mutex
	swarms map[[20]byte]*swarm
	// v4 and v6 hold the peer records of the shard's swarms.
	v4, v6 chunkPool
	// dirty holds the swarms whose download count changed since it was
	// last written to the database (all that ever changed, without one):
	// they are not forgotten when empty.
	dirty map[[20]byte]struct{}
}

func (sh *shard) markDirty(ih [20]byte) {
	if sh.dirty == nil {
		sh.dirty = make(map[[20]byte]struct{})
	}
	sh.dirty[ih] = struct{}{}
}

// swarmTable holds every swarm, sharded by the first byte of the
// info-hash (uniformly distributed, being SHA-1 output).
type swarmTable struct {
	shards [shardCount]shard
	lim    limits
	seed   maphash.Seed // of the peer-id indexes
}

func newSwarmTable(perTorrent, maxTorrents, maxTotal int) *swarmTable {
	t := &swarmTable{seed: maphash.MakeSeed()}
	t.lim.perTorrent, t.lim.maxTorrents, t.lim.maxTotal = perTorrent, maxTorrents, maxTotal
	for i := range t.shards {
		t.shards[i].swarms = make(map[[20]byte]*swarm)
		t.shards[i].v4.stride, t.shards[i].v6.stride = v4Stride, v6Stride
	}
	return t
}

func (t *swarmTable) hash(id []byte) uint64 { return maphash.Bytes(t.seed, id) }

func (t *swarmTable) shard(ih [20]byte) *shard { return &t.shards[ih[0]] }

// getOrCreate returns the swarm of ih from a locked shard, creating it
// (with completed set by load) if there is room. load runs with the shard
// lock held; it must be quick.
func (t *swarmTable) getOrCreate(sh *shard, ih [20]byte, load func([20]byte) uint64) (*swarm, error) {
	if sw := sh.swarms[ih]; sw != nil {
		return sw, nil
	}
	if t.lim.torrents.Add(1) > int64(t.lim.maxTorrents) {
		t.lim.torrents.Add(-1)
		return nil, errTooMany
	}
	sw := &swarm{}
	if load != nil {
		sw.completed = load(ih)
	}
	sh.swarms[ih] = sw
	return sw, nil
}

// update records an announce from addr (the compact form: 6 bytes for
// IPv4, 18 for IPv6) in the swarm, which belongs to the locked shard sh.
func (t *swarmTable) update(sh *shard, sw *swarm, id *[20]byte, addr []byte, key uint32, seeder bool, now uint32, stopped bool) (bool, error) {
	if len(addr) == v4AddrLen {
		v := sw.v4View(sh)
		return v.update(t, id, addr, key, seeder, now, stopped)
	}
	v, ok := sw.v6View(sh, !stopped)
	if !ok {
		return false, nil
	}
	return v.update(t, id, addr, key, seeder, now, stopped)
}

// expire drops the silent peers of a swarm of the locked shard sh and
// returns how many.
func (t *swarmTable) expire(sh *shard, sw *swarm, cutoff uint32) int {
	v := sw.v4View(sh)
	n := v.expire(t, cutoff)
	if v6, ok := sw.v6View(sh, false); ok {
		n += v6.expire(t, cutoff)
	}
	sw.trimExt()
	return n
}

// peers returns the number of peers tracked.
func (t *swarmTable) peers() int64 { return t.lim.total.Load() }

// torrents returns the number of swarms in memory.
func (t *swarmTable) torrents() int64 { return t.lim.torrents.Load() }
