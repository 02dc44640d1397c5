package metadata

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"

	"github.com/sowerbt/sower/bitfield"
)

// ErrHashMismatch is returned (wrapped) by Assembler.Bytes when the
// assembled metadata does not hash to the info-hash: some piece was wrong,
// or the size a peer announced was.
var ErrHashMismatch = errors.New("metadata does not match the info-hash")

// Assembler collects the pieces of one torrent's metadata and verifies the
// result. It does no I/O, so it can be tested and fuzzed on its own. It is
// not safe for concurrent use.
type Assembler struct {
	size     int
	infoHash [20]byte
	buf      []byte
	have     bitfield.Bitfield
}

// NewAssembler returns an assembler for metadata of size bytes that must
// hash to infoHash. Sizes outside 1..MaxSize are refused before anything is
// allocated, since the size comes from a peer.
func NewAssembler(size int, infoHash [20]byte) (*Assembler, error) {
	if size <= 0 || size > MaxSize {
		return nil, fmt.Errorf("metadata size %d out of range 1..%d", size, MaxSize)
	}
	return &Assembler{
		size:     size,
		infoHash: infoHash,
		buf:      make([]byte, size),
		have:     bitfield.New(PieceCount(size)),
	}, nil
}

// Size returns the metadata size the assembler was made for.
func (a *Assembler) Size() int { return a.size }

// NumPieces returns how many pieces the metadata has.
func (a *Assembler) NumPieces() int { return PieceCount(a.size) }

// Has reports whether piece has been added. Pieces out of range are never
// held.
func (a *Assembler) Has(piece int) bool {
	return piece >= 0 && piece < a.NumPieces() && a.have.Has(piece)
}

// Add stores a copy of piece's data. The length must be exactly what the
// index implies (BlockSize, or the remainder for the last piece), and a
// piece may be added only once, so that a second source cannot silently
// replace what the first sent.
func (a *Assembler) Add(piece int, data []byte) error {
	if piece < 0 || piece >= a.NumPieces() {
		return fmt.Errorf("metadata piece %d out of range 0..%d", piece, a.NumPieces()-1)
	}
	if want := PieceLen(a.size, piece); len(data) != want {
		return fmt.Errorf("metadata piece %d has %d bytes, want %d", piece, len(data), want)
	}
	if a.have.Has(piece) {
		return fmt.Errorf("metadata piece %d already received", piece)
	}
	copy(a.buf[piece*BlockSize:], data)
	a.have.Set(piece)
	return nil
}

// Done reports whether every piece has been added.
func (a *Assembler) Done() bool { return a.have.Full() }

// Missing returns the number of pieces not yet added.
func (a *Assembler) Missing() int { return a.NumPieces() - a.have.Count() }

// Reset forgets every piece, for a new attempt after a hash mismatch.
func (a *Assembler) Reset() {
	a.have = bitfield.New(a.NumPieces())
}

// Bytes returns the metadata once it is complete and its SHA-1 equals the
// info-hash. The slice is the assembler's buffer: the caller owns it and
// must not Add or Reset afterwards.
func (a *Assembler) Bytes() ([]byte, error) {
	if !a.Done() {
		return nil, fmt.Errorf("metadata incomplete: %d of %d pieces missing", a.Missing(), a.NumPieces())
	}
	if sum := sha1.Sum(a.buf); !bytes.Equal(sum[:], a.infoHash[:]) {
		return nil, fmt.Errorf("%d bytes hash to %x, want %x: %w", a.size, sum, a.infoHash, ErrHashMismatch)
	}
	return a.buf, nil
}
