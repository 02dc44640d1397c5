package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// The parts file holds the bytes of unwanted files that share a piece with
// wanted data, so such a boundary piece can still be verified and served
// without creating the unwanted file. It is compact: only pieces that were
// written get a slot, in the order they were first written.
//
// Format (integers big-endian):
//
//	header: "sower-parts\n" (12 bytes), 4 zero bytes, piece length (8 bytes), 8 zero bytes
//	slot k at partsHeaderSize + k*(8+pieceLength):
//	        piece index + 1 (8 bytes; 0 = slot torn by a crash, unused)
//	        pieceLength bytes laid out like the piece, with only the
//	        unwanted files' bytes ever written
//
// Each slot records its own piece, so the file stays valid if the wanted
// set changes between sessions, and a slot is claimed by writing its
// header before its data, so a crash leaves at worst a slot whose data
// fails the hash check.
const (
	partsMagic      = "sower-parts\n"
	partsHeaderSize = 32
	slotHeaderSize  = 8
)

type partsFile struct {
	l    *Layout
	open func(create bool) (*os.File, error) // opens the file at its configured place
	name string                              // for error messages

	mu     sync.Mutex // guards everything below; data I/O happens outside it
	f      *os.File   // nil until first needed
	slots  map[int]int64
	nslots int64
	closed bool
}

func (p *partsFile) slotSize() int64 { return slotHeaderSize + p.l.pieceLength }

func (p *partsFile) slotData(slot int64) int64 {
	return partsHeaderSize + slot*p.slotSize() + slotHeaderSize
}

// load opens and indexes the file; the caller holds p.mu. Without create, a
// missing file is not an error: p.f stays nil and every lookup misses.
func (p *partsFile) load(create bool) error {
	if p.closed {
		return ErrClosed
	}
	if p.f != nil {
		return nil
	}
	f, err := p.open(create)
	if errors.Is(err, fs.ErrNotExist) && !create {
		return nil
	}
	if err != nil && create {
		return writeError("creating", p.name, err)
	}
	if err != nil {
		return fmt.Errorf("storage: parts file %s: %w", p.name, err)
	}
	slots, n, err := p.index(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("storage: parts file %s: %w", p.name, err)
	}
	p.f, p.slots, p.nslots = f, slots, n
	return nil
}

// index validates the header of f (writing it to an empty file) and reads
// the slot table.
func (p *partsFile) index(f *os.File) (map[int]int64, int64, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	var hdr [partsHeaderSize]byte
	if st.Size() == 0 {
		copy(hdr[:], partsMagic)
		binary.BigEndian.PutUint64(hdr[16:], uint64(p.l.pieceLength))
		if _, err := f.WriteAt(hdr[:], 0); err != nil {
			return nil, 0, fmt.Errorf("writing header: %w", err)
		}
		return map[int]int64{}, 0, nil
	}
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return nil, 0, fmt.Errorf("reading header: %w", err)
	}
	if !bytes.Equal(hdr[:len(partsMagic)], []byte(partsMagic)) {
		return nil, 0, fmt.Errorf("bad magic %q at offset 0", hdr[:len(partsMagic)])
	}
	if pl := binary.BigEndian.Uint64(hdr[16:]); pl != uint64(p.l.pieceLength) {
		return nil, 0, fmt.Errorf("piece length %d at offset 16, torrent has %d", pl, p.l.pieceLength)
	}
	n := (st.Size() - partsHeaderSize + p.slotSize() - 1) / p.slotSize()
	if n > int64(p.l.numPieces) {
		// Each piece has at most one slot; torn slots are rare.
		return nil, 0, fmt.Errorf("%d bytes hold %d slots for %d pieces", st.Size(), n, p.l.numPieces)
	}
	slots := make(map[int]int64, n)
	var sh [slotHeaderSize]byte
	for k := range n {
		at := partsHeaderSize + k*p.slotSize()
		if _, err := f.ReadAt(sh[:], at); err != nil {
			if err == io.EOF {
				break // torn last slot
			}
			return nil, 0, fmt.Errorf("reading slot header at offset %d: %w", at, err)
		}
		v := binary.BigEndian.Uint64(sh[:])
		if v == 0 {
			continue
		}
		if v > uint64(p.l.numPieces) {
			return nil, 0, fmt.Errorf("slot header at offset %d names piece %d of %d", at, v-1, p.l.numPieces)
		}
		piece := int(v - 1)
		if prev, dup := slots[piece]; dup {
			return nil, 0, fmt.Errorf("slot header at offset %d names piece %d, already in slot %d", at, piece, prev)
		}
		slots[piece] = k
	}
	return slots, n, nil
}

// lookup returns the slot of piece, claiming a new one if create is set.
func (p *partsFile) lookup(piece int, create bool) (*os.File, int64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(create); err != nil {
		return nil, 0, false, err
	}
	if p.f == nil {
		return nil, 0, false, nil
	}
	if k, ok := p.slots[piece]; ok {
		return p.f, k, true, nil
	}
	if !create {
		return nil, 0, false, nil
	}
	k := p.nslots
	var sh [slotHeaderSize]byte
	binary.BigEndian.PutUint64(sh[:], uint64(piece)+1)
	at := partsHeaderSize + k*p.slotSize()
	if _, err := p.f.WriteAt(sh[:], at); err != nil {
		return nil, 0, false, writeError("writing", p.name, err)
	}
	// Extending to the full slot makes unwritten bytes read as zeros
	// (a sparse hole) rather than hit end of file.
	if err := p.f.Truncate(at + p.slotSize()); err != nil {
		return nil, 0, false, writeError("extending", p.name, err)
	}
	p.slots[piece] = k
	p.nslots++
	return p.f, k, true, nil
}

// forEachPiece calls fn for the parts of [off, off+n) that lie in each piece.
func (p *partsFile) forEachPiece(off int64, n int, fn func(piece int, in int64, lo, hi int) error) error {
	pl := p.l.pieceLength
	for done := 0; done < n; {
		piece := int(off / pl)
		in := off - int64(piece)*pl
		c := int(min(int64(n-done), pl-in))
		if err := fn(piece, in, done, done+c); err != nil {
			return err
		}
		done += c
		off += int64(c)
	}
	return nil
}

// readAt fills dst with the bytes at global offset off.
func (p *partsFile) readAt(dst []byte, off int64) (int, error) {
	done := 0
	err := p.forEachPiece(off, len(dst), func(piece int, in int64, lo, hi int) error {
		f, k, ok, err := p.lookup(piece, false)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: piece %d has no slot in parts file %s", ErrMissing, piece, p.name)
		}
		n, err := f.ReadAt(dst[lo:hi], p.slotData(k)+in)
		done += n
		if err == io.EOF {
			return fmt.Errorf("%w: parts file %s ends inside slot %d", ErrMissing, p.name, k)
		}
		if err != nil {
			return fmt.Errorf("storage: parts file %s: %w", p.name, err)
		}
		return nil
	})
	return done, err
}

// writeAt stores src at global offset off.
func (p *partsFile) writeAt(src []byte, off int64) (int, error) {
	done := 0
	err := p.forEachPiece(off, len(src), func(piece int, in int64, lo, hi int) error {
		f, k, _, err := p.lookup(piece, true)
		if err != nil {
			return err
		}
		n, err := f.WriteAt(src[lo:hi], p.slotData(k)+in)
		done += n
		if err != nil {
			return writeError("writing", p.name, err)
		}
		return nil
	})
	return done, err
}

// hasAny reports whether any piece in [first, last] has a slot.
func (p *partsFile) hasAny(first, last int) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.load(false); err != nil || p.f == nil {
		return false, err
	}
	if last-first >= len(p.slots) {
		for piece := range p.slots {
			if piece >= first && piece <= last {
				return true, nil
			}
		}
		return false, nil
	}
	for piece := first; piece <= last; piece++ {
		if _, ok := p.slots[piece]; ok {
			return true, nil
		}
	}
	return false, nil
}

func (p *partsFile) sync() error {
	p.mu.Lock()
	f := p.f
	p.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("storage: parts file %s: %w", p.name, err)
	}
	return nil
}

func (p *partsFile) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}
