package engine

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/storage"
)

// fullStore stores pieces in memory until okWrites writes succeeded, then
// fails every write as a full disk does, and counts the writes of each
// piece.
type fullStore struct {
	storage.Storage
	pieceLen int64
	okWrites int

	mu       sync.Mutex
	attempts map[int]int // writes tried, by piece
	written  map[int]bool
}

func (s *fullStore) WriteAt(p []byte, off int64) (int, error) {
	i := int(off / s.pieceLen)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[i]++
	if len(s.written) >= s.okWrites {
		return 0, &fs.PathError{Op: "write", Path: "/data/swarm/dir/a", Err: syscall.ENOSPC}
	}
	n, err := s.Storage.WriteAt(p, off)
	if err == nil {
		s.written[i] = true
	}
	return n, err
}

// TestRunStopsOnWriteError: once the storage fails a write, Run returns
// that error at once instead of downloading the piece again; every piece
// written before (or by verifications still in flight) stays verified,
// and the piece that failed does not count.
func TestRunStopsOnWriteError(t *testing.T) {
	tt := newTestTorrent(t, []int64{64 * 64 << 10}, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	seed := startNode(t, ctx, &wg, tt, tt.seedStore(t), tt.full())

	store := &fullStore{Storage: storage.NewMemory(tt.layout), pieceLen: tt.info.PieceLength, okWrites: 5,
		attempts: map[int]int{}, written: map[int]bool{}}
	leech, err := New(tt.info, tt.hash, tt.layout, store, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- leech.Run(ctx) }()
	leech.AddPeers(seed.addr)
	select {
	case err = <-runErr:
	case <-ctx.Done():
		t.Fatalf("Run did not stop on a write error: %+v", leech.Stats())
	}
	var we *WriteError
	if !errors.As(err, &we) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Run returned %v (%T), want a *WriteError wrapping ENOSPC", err, err)
	}
	if !strings.Contains(err.Error(), "/data/swarm/dir/a") || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("error %q does not name the file and the cause", err)
	}

	have := leech.Have()
	store.mu.Lock()
	defer store.mu.Unlock()
	if have.Has(we.Piece) {
		t.Fatalf("piece %d failed to write but counts as verified", we.Piece)
	}
	if have.Count() != len(store.written) {
		t.Fatalf("%d pieces verified, %d written: verified pieces were lost", have.Count(), len(store.written))
	}
	for i := range store.written {
		if !have.Has(i) {
			t.Errorf("piece %d was written but does not count as verified", i)
		}
		off := int64(i) * tt.info.PieceLength
		got := make([]byte, tt.info.PieceSize(i))
		if _, err := store.Storage.ReadAt(got, off); err != nil || !bytes.Equal(got, tt.data[off:off+int64(len(got))]) {
			t.Errorf("piece %d: stored data differs (%v)", i, err)
		}
	}
	for i, n := range store.attempts {
		if n > 1 {
			t.Errorf("piece %d was written %d times: downloaded again after the failure", i, n)
		}
	}
}
