// Package bitfield is the set of pieces a peer has, in the wire format of
// BEP 3: piece 0 is the high bit of the first byte, spare bits at the end
// are zero.
package bitfield

import (
	"errors"
	"fmt"
	"math/bits"
)

// Bitfield is a fixed-size set of piece indices. The zero value is an
// empty set of size zero; use New for a set of a given size.
//
// A Bitfield is a reference, like a map: copies share one set, and a
// change through any of them is seen through all (Clone makes an
// independent one). The set keeps its count, so Count and Full cost O(1):
// the engine asks them on every connection change and in loops.
type Bitfield struct {
	s *set
}

type set struct {
	b     []byte
	n     int // pieces covered
	count int // pieces in the set
}

// New returns an empty bitfield for n pieces.
func New(n int) Bitfield {
	return Bitfield{&set{b: make([]byte, (n+7)/8), n: n}}
}

// ErrSpareBits reports a wire bitfield with bits set past the last piece.
var ErrSpareBits = errors.New("bitfield: spare bits set")

// FromBytes parses a wire bitfield for n pieces. It rejects a payload of
// the wrong length or with spare bits set, as BEP 3 requires.
func FromBytes(p []byte, n int) (Bitfield, error) {
	if n < 0 {
		return Bitfield{}, fmt.Errorf("bitfield: %d pieces", n)
	}
	if len(p) != (n+7)/8 {
		return Bitfield{}, fmt.Errorf("bitfield: %d bytes for %d pieces, want %d", len(p), n, (n+7)/8)
	}
	if n%8 != 0 && p[len(p)-1]&(0xff>>(n%8)) != 0 {
		return Bitfield{}, ErrSpareBits
	}
	b := make([]byte, len(p))
	copy(b, p)
	return Bitfield{&set{b: b, n: n, count: popCount(b)}}, nil
}

func popCount(b []byte) int {
	c := 0
	for _, x := range b {
		c += bits.OnesCount8(x)
	}
	return c
}

// Len is the number of pieces the bitfield covers.
func (f Bitfield) Len() int {
	if f.s == nil {
		return 0
	}
	return f.s.n
}

// Has reports whether piece i is in the set; out-of-range indices are not.
func (f Bitfield) Has(i int) bool {
	if i < 0 || i >= f.Len() {
		return false
	}
	return f.s.b[i/8]&(0x80>>(i%8)) != 0
}

// Set adds piece i. It panics on an out-of-range index, which is always a
// programming error: callers validate indices received from the network.
func (f Bitfield) Set(i int) {
	f.check(i)
	x := &f.s.b[i/8]
	if m := byte(0x80 >> (i % 8)); *x&m == 0 {
		*x |= m
		f.s.count++
	}
}

// Clear removes piece i.
func (f Bitfield) Clear(i int) {
	f.check(i)
	x := &f.s.b[i/8]
	if m := byte(0x80 >> (i % 8)); *x&m != 0 {
		*x &^= m
		f.s.count--
	}
}

func (f Bitfield) check(i int) {
	if i < 0 || i >= f.Len() {
		panic(fmt.Sprintf("bitfield: index %d out of range [0,%d)", i, f.Len()))
	}
}

// SetAll adds every piece.
func (f Bitfield) SetAll() {
	if f.s == nil {
		return
	}
	b := f.s.b
	for i := range b {
		b[i] = 0xff
	}
	if f.s.n%8 != 0 {
		b[len(b)-1] = 0xff << (8 - f.s.n%8)
	}
	f.s.count = f.s.n
}

// Count is the number of pieces in the set.
func (f Bitfield) Count() int {
	if f.s == nil {
		return 0
	}
	return f.s.count
}

// Full reports whether every piece is in the set.
func (f Bitfield) Full() bool { return f.Count() == f.Len() }

// Bytes returns the wire form. The slice aliases the bitfield: callers
// must not change it (the count would go stale); Clone first to send it
// while the set changes.
func (f Bitfield) Bytes() []byte {
	if f.s == nil {
		return nil
	}
	return f.s.b
}

// Clone returns an independent copy.
func (f Bitfield) Clone() Bitfield {
	if f.s == nil {
		return Bitfield{}
	}
	b := make([]byte, len(f.s.b))
	copy(b, f.s.b)
	return Bitfield{&set{b: b, n: f.s.n, count: f.s.count}}
}
