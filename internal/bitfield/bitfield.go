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
type Bitfield struct {
	b []byte
	n int
}

// New returns an empty bitfield for n pieces.
func New(n int) Bitfield {
	return Bitfield{b: make([]byte, (n+7)/8), n: n}
}

// ErrSpareBits reports a wire bitfield with bits set past the last piece.
var ErrSpareBits = errors.New("bitfield: spare bits set")

// FromBytes parses a wire bitfield for n pieces. It rejects a payload of
// the wrong length or with spare bits set, as BEP 3 requires.
func FromBytes(p []byte, n int) (Bitfield, error) {
	if len(p) != (n+7)/8 {
		return Bitfield{}, fmt.Errorf("bitfield: %d bytes for %d pieces, want %d", len(p), n, (n+7)/8)
	}
	if n%8 != 0 && p[len(p)-1]&(0xff>>(n%8)) != 0 {
		return Bitfield{}, ErrSpareBits
	}
	b := make([]byte, len(p))
	copy(b, p)
	return Bitfield{b: b, n: n}, nil
}

// Len is the number of pieces the bitfield covers.
func (f Bitfield) Len() int { return f.n }

// Has reports whether piece i is in the set; out-of-range indices are not.
func (f Bitfield) Has(i int) bool {
	if i < 0 || i >= f.n {
		return false
	}
	return f.b[i/8]&(0x80>>(i%8)) != 0
}

// Set adds piece i. It panics on an out-of-range index, which is always a
// programming error: callers validate indices received from the network.
func (f Bitfield) Set(i int) {
	if i < 0 || i >= f.n {
		panic(fmt.Sprintf("bitfield: index %d out of range [0,%d)", i, f.n))
	}
	f.b[i/8] |= 0x80 >> (i % 8)
}

// Clear removes piece i.
func (f Bitfield) Clear(i int) {
	if i < 0 || i >= f.n {
		panic(fmt.Sprintf("bitfield: index %d out of range [0,%d)", i, f.n))
	}
	f.b[i/8] &^= 0x80 >> (i % 8)
}

// SetAll adds every piece.
func (f Bitfield) SetAll() {
	for i := range f.b {
		f.b[i] = 0xff
	}
	if f.n%8 != 0 {
		f.b[len(f.b)-1] = 0xff << (8 - f.n%8)
	}
}

// Count is the number of pieces in the set.
func (f Bitfield) Count() int {
	c := 0
	for _, x := range f.b {
		c += bits.OnesCount8(x)
	}
	return c
}

// Full reports whether every piece is in the set.
func (f Bitfield) Full() bool { return f.Count() == f.n }

// Bytes returns the wire form. The slice aliases the bitfield.
func (f Bitfield) Bytes() []byte { return f.b }

// Clone returns an independent copy.
func (f Bitfield) Clone() Bitfield {
	b := make([]byte, len(f.b))
	copy(b, f.b)
	return Bitfield{b: b, n: f.n}
}
