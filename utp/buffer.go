package utp

import (
	"math/bits"
	"sync"
)

// ring is a byte FIFO that grows on demand up to max, so that idle
// connections cost little and busy ones get their full buffer.
type ring struct {
	b   []byte
	r   int // read position
	n   int // bytes held
	max int
}

func (q *ring) Len() int { return q.n }

// Free is how many more bytes the ring accepts.
func (q *ring) Free() int { return q.max - q.n }

// grow makes room for want bytes in total (at most max).
func (q *ring) grow(want int) {
	if want <= len(q.b) {
		return
	}
	size := max(len(q.b)*2, 16<<10)
	for size < want {
		size *= 2
	}
	size = min(size, q.max)
	nb := make([]byte, size)
	q.copyOut(nb[:q.n])
	q.b, q.r = nb, 0
}

// Write appends as much of p as fits and returns how much that was.
func (q *ring) Write(p []byte) int {
	n := min(len(p), q.Free())
	if n == 0 {
		return 0
	}
	q.grow(q.n + n)
	w := (q.r + q.n) % len(q.b)
	c := copy(q.b[w:], p[:n])
	copy(q.b, p[c:n])
	q.n += n
	return n
}

// copyOut copies the first len(p) held bytes (len(p) <= Len) into p.
func (q *ring) copyOut(p []byte) {
	if len(p) == 0 {
		return
	}
	c := copy(p, q.b[q.r:min(len(q.b), q.r+len(p))])
	copy(p[c:], q.b)
}

// Read moves up to len(p) bytes out.
func (q *ring) Read(p []byte) int {
	n := min(len(p), q.n)
	q.copyOut(p[:n])
	q.discard(n)
	return n
}

func (q *ring) discard(n int) {
	q.n -= n
	if q.n == 0 {
		q.r = 0
		return
	}
	q.r = (q.r + n) % len(q.b)
}

// Buffers for packets in flight and out of order, in power-of-two size
// classes from 2 KiB to 64 KiB so that small packets do not pin big buffers.
const (
	minBufShift = 11
	maxBufShift = 16
)

type bufPool struct {
	classes [maxBufShift - minBufShift + 1]sync.Pool
}

func bufClass(n int) int {
	if n <= 1<<minBufShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minBufShift
}

// get returns a buffer of length n (n <= 64 KiB).
func (p *bufPool) get(n int) []byte {
	c := bufClass(n)
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(c+minBufShift))
}

// put returns a buffer that get gave.
func (p *bufPool) put(b []byte) {
	if cap(b) == 0 {
		return
	}
	c := bufClass(cap(b))
	if cap(b) != 1<<(c+minBufShift) {
		return
	}
	b = b[:0]
	p.classes[c].Put(&b)
}
