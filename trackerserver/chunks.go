package trackerserver

import "slices"

// Peer records live in chunks of chunkRecs records carved out of slabs
// that belong to a shard (one pool per address family). A swarm that
// grows takes another chunk and never copies or frees its records, and a
// chunk given back by a shrinking swarm is reused by the next swarm of the
// shard that grows. So filling a tracker leaves no outgrown arrays for the
// garbage collector, and the process's resident memory stays close to the
// records it holds: with arrays reallocated on growth, the freed copies
// were a third of the heap and the runtime kept most of their pages.
//
// The cost is that slabs are never freed: a shard keeps the memory of its
// largest peer population, for the next wave of announces.
const chunkRecs = 2

// Slab sizes: a pool's slabs are a 32nd of what it holds, at least minSlab
// and at most maxSlab bytes. The unused tail of each pool's newest slab is
// memory held for no peer, and there are 256 shards with a pool per
// address family: small slabs keep that under a byte per peer with 100,000
// peers, and the fraction keeps the
// number of slabs (24 bytes each in the pool's list) small in large pools.
const (
	minSlab  = 1 << 10
	maxSlab  = 64 << 10
	slabFrac = 32
)

// A chunk handle is the slab number in the high bits and the chunk's
// number in its slab in the low handleShift bits.
const (
	handleShift = 16
	maxSlabs    = 1 << (32 - handleShift)
)

// chunkPool hands out chunks of chunkRecs records of stride bytes. It is
// guarded by the lock of the shard that owns it.
type chunkPool struct {
	slabs  [][]byte
	free   []uint32 // handles given back, reused before new chunks
	used   int      // chunks handed out from the newest slab
	total  int      // bytes in all slabs
	stride int      // bytes per record
}

func (p *chunkPool) chunkLen() int { return chunkRecs * p.stride }

// chunk returns the bytes of the chunk with handle h.
func (p *chunkPool) chunk(h uint32) []byte {
	n := p.chunkLen()
	off := int(h&(1<<handleShift-1)) * n
	return p.slabs[h>>handleShift][off : off+n : off+n]
}

// get returns a free chunk, adding a slab if none is left. It reports
// false only when the pool has maxSlabs slabs, far beyond any peer limit
// one host can hold.
func (p *chunkPool) get() (uint32, bool) {
	if n := len(p.free); n > 0 {
		h := p.free[n-1]
		p.free = p.free[:n-1]
		return h, true
	}
	cl := p.chunkLen()
	if len(p.slabs) == 0 || (p.used+1)*cl > len(p.slabs[len(p.slabs)-1]) {
		if len(p.slabs) == maxSlabs {
			return 0, false
		}
		size := min(max(p.total/slabFrac, minSlab), maxSlab)
		// Take the whole size class the allocator rounds the slab up to.
		slab := slices.Grow([]byte(nil), size)
		slab = slab[:cap(slab)/cl*cl]
		p.slabs = append(p.slabs, slab)
		p.total += cap(slab)
		p.used = 0
	}
	h := uint32(len(p.slabs)-1)<<handleShift | uint32(p.used)
	p.used++
	return h, true
}

// put gives a chunk back for reuse.
func (p *chunkPool) put(h uint32) { p.free = append(p.free, h) }

// inUse returns the number of chunks handed out and not given back.
func (p *chunkPool) inUse() int {
	n := p.used - len(p.free)
	for _, s := range p.slabs[:max(len(p.slabs)-1, 0)] {
		n += len(s) / p.chunkLen()
	}
	return n
}
