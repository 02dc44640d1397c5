package trackerserver

import (
	"encoding/binary"
	"testing"
)

// TestChunkPool checks that chunks never overlap, that given-back chunks
// are reused before the pool grows, and that inUse counts what is out.
func TestChunkPool(t *testing.T) {
	p := &chunkPool{stride: v6Stride}
	owner := make(map[uint32]int) // handle -> tag written into the chunk
	var out []uint32
	for i := range 5000 {
		h, ok := p.get()
		if !ok {
			t.Fatal("pool refused a chunk")
		}
		if _, dup := owner[h]; dup {
			t.Fatalf("chunk %#x handed out twice", h)
		}
		c := p.chunk(h)
		if len(c) != chunkRecs*v6Stride || cap(c) != len(c) {
			t.Fatalf("chunk %#x: len %d cap %d", h, len(c), cap(c))
		}
		for off := 0; off < len(c); off += 4 {
			binary.LittleEndian.PutUint32(c[off:], uint32(i))
		}
		owner[h] = i
		out = append(out, h)
	}
	for h, i := range owner {
		c := p.chunk(h)
		for off := 0; off < len(c); off += 4 {
			if got := binary.LittleEndian.Uint32(c[off:]); got != uint32(i) {
				t.Fatalf("chunk %#x holds %d at %d, want %d: chunks overlap", h, got, off, i)
			}
		}
	}
	if p.inUse() != len(out) {
		t.Fatalf("inUse %d, handed out %d", p.inUse(), len(out))
	}
	total := p.total
	for _, h := range out[:3000] {
		p.put(h)
	}
	if p.inUse() != 2000 {
		t.Fatalf("inUse %d after giving back 3000 of 5000", p.inUse())
	}
	for range 3000 {
		if _, ok := p.get(); !ok {
			t.Fatal("pool refused a chunk")
		}
	}
	if p.total != total || p.inUse() != 5000 {
		t.Fatalf("reusing given-back chunks grew the pool from %d to %d bytes (%d in use)", total, p.total, p.inUse())
	}
	if max := maxSlab / (chunkRecs * v6Stride); max >= 1<<handleShift {
		t.Fatalf("%d chunks in a slab do not fit in a handle", max)
	}
}

// TestFamilyChunksReused checks that a family that shrinks gives its
// chunks back and that another family of the same pool then grows without
// new slabs.
func TestFamilyChunksReused(t *testing.T) {
	tb := newSwarmTable(1000, 10, 1<<20)
	a, b := testFamily(v4Stride), testFamily(v4Stride)
	pool := a.pool
	b.pool = pool
	addr := []byte{10, 0, 0, 1, 0, 1}
	for i := range 300 {
		var id [20]byte
		binary.BigEndian.PutUint32(id[:], uint32(i))
		if _, err := a.update(tb, &id, addr, 0, false, 1, false); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := pool.inUse(), 300/chunkRecs; got != want {
		t.Fatalf("300 peers use %d chunks, want %d", got, want)
	}
	total := pool.total
	if n := a.expire(tb, 2); n != 300 || pool.inUse() != 0 {
		t.Fatalf("expire removed %d peers and left %d chunks in use", n, pool.inUse())
	}
	for i := range 300 {
		var id [20]byte
		binary.BigEndian.PutUint32(id[:], uint32(i))
		if _, err := b.update(tb, &id, addr, 0, false, 3, false); err != nil {
			t.Fatal(err)
		}
	}
	if pool.total != total {
		t.Fatalf("pool grew from %d to %d bytes though %d chunks were free", total, pool.total, 300/chunkRecs)
	}
}
