package storage

import (
	"fmt"
	"io"
	"sync"
)

// Memory is an in-memory Storage for tests and small torrents. Pieces are
// allocated on first write, so a large layout costs nothing until used.
// Reading a piece that was never written returns ErrMissing; padding reads
// as zeros, like on disk.
type Memory struct {
	l *Layout
	// mu guards pieces and closed. Writers take it exclusively so that a
	// concurrent read sees either the old or the new bytes, never a torn
	// mix, and so the race detector stays quiet.
	mu     sync.RWMutex
	pieces map[int][]byte // only written pieces, so a huge layout costs nothing
	closed bool
}

// NewMemory returns an empty in-memory storage for l.
func NewMemory(l *Layout) *Memory {
	return &Memory{l: l, pieces: make(map[int][]byte)}
}

var _ Storage = (*Memory)(nil)
var _ DataProber = (*Memory)(nil)

// ReadAt implements Storage.
func (m *Memory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d", off)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, ErrClosed
	}
	done := 0
	it := m.l.spans(off, int64(len(p)))
	for {
		s, ok := it.next()
		if !ok {
			break
		}
		dst := p[done : done+int(s.Length)]
		if m.l.files[s.File].Padding {
			clear(dst)
			done += len(dst)
			continue
		}
		g := m.l.FileOffset(s.File) + s.Offset
		for len(dst) > 0 {
			piece := int(g / m.l.pieceLength)
			in := g - int64(piece)*m.l.pieceLength
			buf := m.pieces[piece]
			if buf == nil {
				return done, fmt.Errorf("%w: piece %d (offset %d) never written", ErrMissing, piece, g)
			}
			c := copy(dst, buf[in:])
			dst = dst[c:]
			done += c
			g += int64(c)
		}
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// WriteAt implements Storage. Bytes falling in padding files are dropped.
func (m *Memory) WriteAt(p []byte, off int64) (int, error) {
	if err := checkWrite(m.l, off, len(p)); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	done := 0
	it := m.l.spans(off, int64(len(p)))
	for {
		s, ok := it.next()
		if !ok {
			return done, nil
		}
		src := p[done : done+int(s.Length)]
		done += len(src)
		if m.l.files[s.File].Padding {
			continue
		}
		g := m.l.FileOffset(s.File) + s.Offset
		for len(src) > 0 {
			piece := int(g / m.l.pieceLength)
			in := g - int64(piece)*m.l.pieceLength
			if m.pieces[piece] == nil {
				m.pieces[piece] = make([]byte, m.l.PieceSize(piece))
			}
			c := copy(m.pieces[piece][in:], src)
			src = src[c:]
			g += int64(c)
		}
	}
}

// HasData implements DataProber: a region has data if it touches a piece
// that was written and is not entirely padding.
func (m *Memory) HasData(off, n int64) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false, ErrClosed
	}
	it := m.l.spans(off, n)
	for {
		s, ok := it.next()
		if !ok {
			return false, nil
		}
		if m.l.files[s.File].Padding {
			continue
		}
		g := m.l.FileOffset(s.File) + s.Offset
		first, last := int(g/m.l.pieceLength), int((g+s.Length-1)/m.l.pieceLength)
		if last-first >= len(m.pieces) {
			// Cheaper to look at what was written than at every piece.
			for p := range m.pieces {
				if p >= first && p <= last {
					return true, nil
				}
			}
			continue
		}
		for p := first; p <= last; p++ {
			if m.pieces[p] != nil {
				return true, nil
			}
		}
	}
}

// Sync implements Storage; memory has nothing to flush.
func (m *Memory) Sync() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Storage and frees the data.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.pieces = nil
	return nil
}

// checkWrite rejects writes that do not fit in the byte space, before any
// byte is written, so a bad request never leaves a partial write behind.
func checkWrite(l *Layout, off int64, n int) error {
	if off < 0 || off > l.total || int64(n) > l.total-off {
		return fmt.Errorf("%w: write of %d bytes at offset %d, torrent is %d bytes", ErrOutOfRange, n, off, l.total)
	}
	return nil
}
