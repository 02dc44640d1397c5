package storage

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/sowerbt/sower/bitfield"
)

// RecheckPieces is Recheck for a resume after an unclean stop: pieces in
// trusted (a durable checkpoint of verified pieces) are kept without being
// read, and only the others are hashed, so a crash costs a check of what
// was written since the last checkpoint rather than of the whole torrent.
// The result is trusted plus every other piece whose data matches.
func RecheckPieces(ctx context.Context, s Storage, l *Layout, hashes [][20]byte, trusted bitfield.Bitfield, workers int) (bitfield.Bitfield, error) {
	n := l.NumPieces()
	if len(hashes) != n {
		return bitfield.Bitfield{}, fmt.Errorf("storage: %d piece hashes for %d pieces", len(hashes), n)
	}
	if trusted.Len() != n {
		return bitfield.Bitfield{}, fmt.Errorf("storage: trusted set covers %d pieces, layout has %d", trusted.Len(), n)
	}
	have := trusted.Clone()
	todo := make([]int, 0, n-trusted.Count())
	for i := range n {
		if !trusted.Has(i) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		return have, nil
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(todo)))
	prober, _ := s.(DataProber)
	zeros := zeroHashes{l: l}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards have, next and firstErr
		next     int
		firstErr error
	)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, min(l.PieceLength(), chunkSize))
			for ctx.Err() == nil {
				mu.Lock()
				k := next
				next++
				mu.Unlock()
				if k >= len(todo) {
					return
				}
				i := todo[k]
				ok, err := checkPiece(s, prober, &zeros, l, i, hashes[i], buf)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if ok {
					have.Set(i)
				}
				mu.Unlock()
				if err != nil {
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return bitfield.Bitfield{}, firstErr
	}
	if ctx.Err() != nil && next < len(todo) {
		return bitfield.Bitfield{}, fmt.Errorf("storage: recheck stopped before piece %d: %w", todo[min(next, len(todo)-1)], context.Cause(ctx))
	}
	return have, nil
}
