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

// family is the peers of one address family in a swarm.
type family struct {
	// chunks are the pool's chunks holding the records in order, the
	// last one possibly part used.
	chunks  []uint32
	idx     *peerIndex // nil while the family is small enough to scan
	pool    *chunkPool // of the swarm's shard and this address family
	n       int32      // records
	seeders int32
}

// peerIndex is an open-addressing (linear probing) table from peer id to
// record number, for large swarms. Slots hold record number + 1; 0 is free.
// The hash is seeded per tracker, so peer ids chosen to collide in one
// tracker do not collide in another.
type peerIndex struct {
	slots []uint32
}

func (f *family) len() int { return int(f.n) }

func (f *family) rec(i int) []byte {
	s := f.pool.stride
	off := i % chunkRecs * s
	return f.pool.chunk(f.chunks[i/chunkRecs])[off : off+s : off+s]
}

func (f *family) addrLen() int { return f.pool.stride - idLen - 8 }

// meta returns a record's seen clock and seeder flag.
func (f *family) meta(r []byte) (seen uint32, seeder bool) {
	m := binary.LittleEndian.Uint32(r[idLen+f.addrLen():])
	return m &^ seederBit, m&seederBit != 0
}

func (f *family) key(r []byte) uint32 {
	return binary.LittleEndian.Uint32(r[idLen+f.addrLen()+4:])
}

func (f *family) setMeta(r []byte, seen uint32, seeder bool, key uint32) {
	m := seen &^ seederBit
	if seeder {
		m |= seederBit
	}
	a := f.addrLen()
	binary.LittleEndian.PutUint32(r[idLen+a:], m)
	binary.LittleEndian.PutUint32(r[idLen+a+4:], key)
}

// find returns the record number of id, or -1.
func (f *family) find(t *swarmTable, id *[20]byte) int {
	if f.idx == nil {
		tail := idTail(id[:])
		for i := range f.len() {
			r := f.rec(i)[:idLen]
			if idTail(r) == tail && string(r) == string(id[:]) {
				return i
			}
		}
		return -1
	}
	mask := uint64(len(f.idx.slots) - 1)
	for h := t.hash(id[:]) & mask; ; h = (h + 1) & mask {
		v := f.idx.slots[h]
		if v == 0 {
			return -1
		}
		if string(f.rec(int(v - 1))[:idLen]) == string(id[:]) {
			return int(v - 1)
		}
	}
}

// idTail returns the last 8 bytes of a peer id, which differ between
// peers even when the first 8 (the client's name and version, by
// convention) do not: comparing them first rejects most records at the
// cost of one load.
func idTail(id []byte) uint64 { return binary.LittleEndian.Uint64(id[idLen-8 : idLen]) }

// indexInsert adds record i to the index, which has a free slot.
func (f *family) indexInsert(t *swarmTable, i int) {
	mask := uint64(len(f.idx.slots) - 1)
	h := t.hash(f.rec(i)[:idLen]) & mask
	for f.idx.slots[h] != 0 {
		h = (h + 1) & mask
	}
	f.idx.slots[h] = uint32(i + 1)
}

// indexSlot returns the slot holding record i.
func (f *family) indexSlot(t *swarmTable, i int) uint64 {
	mask := uint64(len(f.idx.slots) - 1)
	h := t.hash(f.rec(i)[:idLen]) & mask
	for f.idx.slots[h] != uint32(i+1) {
		h = (h + 1) & mask
	}
	return h
}

// indexDelete frees slot h, shifting later entries of its probe run back
// so that lookups never stop early at the hole.
func (f *family) indexDelete(t *swarmTable, h uint64) {
	slots := f.idx.slots
	mask := uint64(len(slots) - 1)
	for j := (h + 1) & mask; slots[j] != 0; j = (j + 1) & mask {
		home := t.hash(f.rec(int(slots[j] - 1))[:idLen]) & mask
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
func (f *family) reindex(t *swarmTable) {
	n := f.len()
	if n < unindexAt {
		f.idx = nil
		return
	}
	size := 64
	for size < 2*n {
		size *= 2
	}
	f.idx = &peerIndex{slots: make([]uint32, size)}
	for i := range n {
		f.indexInsert(t, i)
	}
}

// remove deletes record i, moving the last record into its place.
func (f *family) remove(t *swarmTable, i int) {
	last := f.len() - 1
	if f.idx != nil {
		f.indexDelete(t, f.indexSlot(t, i))
		if i != last {
			h := f.indexSlot(t, last)
			f.idx.slots[h] = uint32(i + 1)
		}
	}
	if i != last {
		copy(f.rec(i), f.rec(last))
	}
	f.n--
	if c := len(f.chunks) - 1; last == c*chunkRecs {
		f.pool.put(f.chunks[c])
		f.chunks = f.chunks[:c]
	}
	if f.idx != nil && last < unindexAt {
		f.idx = nil
	}
}

// appendRec makes room for one more record and returns it, taking a new
// chunk when the last is full; it reports false if the pool has none. The
// list of chunks grows by a quarter rather than doubling: with ten peers to
// a torrent, doubling would waste a third of it.
func (f *family) appendRec() ([]byte, bool) {
	if f.len() == len(f.chunks)*chunkRecs {
		h, ok := f.pool.get()
		if !ok {
			return nil, false
		}
		if n := len(f.chunks); n == cap(f.chunks) {
			// slices.Grow of an empty slice asks the allocator for
			// the size and keeps the whole size class it rounds up to.
			f.chunks = append(slices.Grow([]uint32(nil), n+max(n/4, 1)), f.chunks...)
		}
		f.chunks = append(f.chunks, h)
	}
	f.n++
	return f.rec(f.len() - 1), true
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
func (f *family) update(t *swarmTable, id *[20]byte, addr []byte, key uint32, seeder bool, now uint32, stopped bool) (wasSeeder bool, err error) {
	i := f.find(t, id)
	if stopped {
		if i >= 0 {
			_, wasSeeder = f.meta(f.rec(i))
			f.remove(t, i)
			t.lim.total.Add(-1)
			if wasSeeder {
				f.seeders--
			}
		}
		return wasSeeder, nil
	}
	var r []byte
	if i >= 0 {
		r = f.rec(i)
		if string(r[idLen:idLen+len(addr)]) != string(addr) && f.key(r) != key {
			return false, errPeerMoved
		}
		if _, wasSeeder = f.meta(r); wasSeeder {
			f.seeders--
		}
	} else {
		n := f.len()
		if n >= t.lim.perTorrent {
			return false, errSwarmFull
		}
		if t.lim.total.Add(1) > int64(t.lim.maxTotal) {
			t.lim.total.Add(-1)
			return false, errTrackerFull
		}
		var ok bool
		if r, ok = f.appendRec(); !ok {
			t.lim.total.Add(-1)
			return false, errTrackerFull
		}
		copy(r, id[:])
		switch {
		case f.idx == nil && n+1 >= indexAt:
			f.reindex(t)
		case f.idx != nil && 4*(n+1) > 3*len(f.idx.slots):
			f.reindex(t)
		case f.idx != nil:
			f.indexInsert(t, n)
		}
	}
	copy(r[idLen:], addr)
	f.setMeta(r, now, seeder, key)
	if seeder {
		f.seeders++
	}
	return wasSeeder, nil
}

// expire drops peers last seen before cutoff and returns how many. It
// also lets go of the chunk list and index when they are mostly unused
// (the chunks themselves went back to the pool as they emptied).
func (f *family) expire(t *swarmTable, cutoff uint32) int {
	n := 0
	for i := 0; i < f.len(); {
		seen, seeder := f.meta(f.rec(i))
		if seen >= cutoff {
			i++
			continue
		}
		f.remove(t, i) // the last record moves to i: look at i again
		if seeder {
			f.seeders--
		}
		n++
	}
	t.lim.total.Add(-int64(n))
	switch {
	case f.len() == 0:
		f.chunks, f.idx = nil, nil
	case cap(f.chunks) > 2*len(f.chunks)+4:
		f.chunks = append(slices.Grow([]uint32(nil), len(f.chunks)), f.chunks...)
	}
	if f.idx != nil && len(f.idx.slots) > 64 && 8*f.len() < len(f.idx.slots) {
		f.reindex(t)
	}
	return n
}

// collect appends to out the records of up to n peers other than self
// that were seen at or after cutoff, skipping seeders when noSeeders. It
// starts at a random record so that the peers handed out spread over the
// swarm, and returns out and the number of peers appended.
func (f *family) collect(out []byte, n int, self *[20]byte, noSeeders bool, cutoff uint32) ([]byte, int) {
	total := f.len()
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
		r := f.rec(i)
		seen, seeder := f.meta(r)
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

// swarm is everything known about one torrent: 80 bytes plus the peers.
type swarm struct {
	v4 family
	v6 *family // nil until an IPv6 peer announces
	// completed counts downloads ever (the "downloaded" of a scrape).
	completed uint64
	// lastActive is the server-clock time of the last announce.
	lastActive uint32
}

func (s *swarm) seeders() int {
	n := int(s.v4.seeders)
	if s.v6 != nil {
		n += int(s.v6.seeders)
	}
	return n
}

func (s *swarm) peers() int {
	n := s.v4.len()
	if s.v6 != nil {
		n += s.v6.len()
	}
	return n
}

func (s *swarm) leechers() int { return s.peers() - s.seeders() }
func (s *swarm) empty() bool   { return s.peers() == 0 }

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
	sw := &swarm{v4: family{pool: &sh.v4}}
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
		return sw.v4.update(t, id, addr, key, seeder, now, stopped)
	}
	if sw.v6 == nil {
		if stopped {
			return false, nil
		}
		sw.v6 = &family{pool: &sh.v6}
	}
	return sw.v6.update(t, id, addr, key, seeder, now, stopped)
}

// expire drops the swarm's silent peers and returns how many.
func (t *swarmTable) expire(sw *swarm, cutoff uint32) int {
	n := sw.v4.expire(t, cutoff)
	if sw.v6 != nil {
		n += sw.v6.expire(t, cutoff)
		if sw.v6.len() == 0 {
			sw.v6 = nil
		}
	}
	return n
}

// peers returns the number of peers tracked.
func (t *swarmTable) peers() int64 { return t.lim.total.Load() }

// torrents returns the number of swarms in memory.
func (t *swarmTable) torrents() int64 { return t.lim.torrents.Load() }
