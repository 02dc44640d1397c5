package storage

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/sowerbt/sower/bitfield"
)

// chunkSize bounds the buffer each hashing goroutine needs, so rechecking
// a torrent with huge pieces does not need huge buffers.
const chunkSize = 1 << 20

// VerifyPiece reads piece i from s and reports whether its SHA-1 is want.
// buf is scratch space of any non-zero size (nil allocates 1 MiB); the piece
// is hashed in buf-sized chunks. Data known to be absent (ErrMissing) is a
// mismatch, not an error; other read errors are returned.
func VerifyPiece(s Storage, l *Layout, i int, want [20]byte, buf []byte) (bool, error) {
	size := l.PieceSize(i)
	if size == 0 {
		return false, fmt.Errorf("storage: piece %d out of range [0,%d)", i, l.NumPieces())
	}
	if len(buf) == 0 {
		buf = make([]byte, min(size, chunkSize))
	}
	h := sha1.New()
	off := l.PieceOffset(i)
	for done := int64(0); done < size; {
		b := buf[:min(int64(len(buf)), size-done)]
		n, err := s.ReadAt(b, off+done)
		if errors.Is(err, ErrMissing) {
			return false, nil
		}
		if err != nil && n < len(b) {
			return false, fmt.Errorf("storage: reading piece %d at offset %d: %w", i, off+done, err)
		}
		h.Write(b)
		done += int64(len(b))
	}
	var got [20]byte
	h.Sum(got[:0])
	return got == want, nil
}

// Recheck hashes the stored data and returns the pieces that match hashes.
// It runs workers goroutines (0 means GOMAXPROCS), all stopped before it
// returns. If s is a DataProber, pieces without any stored data are not
// read: they can only match if their hash is that of all zeros, and only
// those few are read to be sure. A piece that is partly missing fails; a
// read error other than ErrMissing, or ctx ending, stops the recheck with
// an error.
//
// progress, if not nil, is called after each piece with the number of
// pieces checked so far. Calls come from the worker goroutines but are
// serialised, and the count increases by one with every call, so progress
// needs no locking of its own; it should be quick, since workers wait on it.
func Recheck(ctx context.Context, s Storage, l *Layout, hashes [][20]byte, workers int, progress func(checked int)) (bitfield.Bitfield, error) {
	n := l.NumPieces()
	if len(hashes) != n {
		return bitfield.Bitfield{}, fmt.Errorf("storage: %d piece hashes for %d pieces", len(hashes), n)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	prober, _ := s.(DataProber)
	zeros := zeroHashes{l: l}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	have := bitfield.New(n)
	var (
		mu       sync.Mutex // guards have, next, checked, firstErr and progress calls
		next     int
		checked  int
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, min(l.PieceLength(), chunkSize))
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				ok, err := checkPiece(s, prober, &zeros, l, i, hashes[i], buf)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				if ok {
					have.Set(i)
				}
				checked++
				if progress != nil {
					progress(checked)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return bitfield.Bitfield{}, firstErr
	}
	if err := ctx.Err(); err != nil && checked < n {
		return bitfield.Bitfield{}, fmt.Errorf("storage: recheck stopped after %d of %d pieces: %w", checked, n, context.Cause(ctx))
	}
	return have, nil
}

func checkPiece(s Storage, prober DataProber, zeros *zeroHashes, l *Layout, i int, want [20]byte, buf []byte) (bool, error) {
	if prober != nil {
		has, err := prober.HasData(l.PieceOffset(i), l.PieceSize(i))
		if err != nil {
			return false, fmt.Errorf("storage: probing piece %d: %w", i, err)
		}
		if !has && want != zeros.of(l.PieceSize(i)) {
			return false, nil
		}
	}
	return VerifyPiece(s, l, i, want, buf)
}

// zeroHashes computes, at most once per size, the hash of a piece of
// zeros: the only content a piece without stored data can have. A layout
// has at most two piece sizes.
type zeroHashes struct {
	l          *Layout
	full, last struct {
		once sync.Once
		sum  [20]byte
	}
}

func (z *zeroHashes) of(size int64) [20]byte {
	e := &z.full
	if size != z.l.PieceLength() {
		e = &z.last
	}
	e.once.Do(func() {
		h := sha1.New()
		zero := make([]byte, min(size, chunkSize))
		for left := size; left > 0; left -= int64(len(zero)) {
			zero = zero[:min(left, int64(len(zero)))]
			h.Write(zero)
		}
		h.Sum(e.sum[:0])
	})
	return e.sum
}
