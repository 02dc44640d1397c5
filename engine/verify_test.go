package engine

import (
	"bytes"
	"context"
	"crypto/sha1"
	"errors"
	"io/fs"
	"net"
	"net/netip"
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

// TestBlameMixedPiece: a piece whose blocks came from three peers fails
// its hash check; nobody is banned on suspicion, the next copy comes from
// one peer alone, and once it verifies, the peer whose block differs from
// it is banned and disconnected, the others not.
func TestBlameMixedPiece(t *testing.T) {
	tt := newTestTorrent(t, []int64{4 * blockSize}, 4*blockSize)
	tor, err := New(tt.info, tt.hash, tt.layout, storage.NewMemory(tt.layout), Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var a, b, c *peer
	for i, pp := range []**peer{&a, &b, &c} {
		conn, other := net.Pipe()
		t.Cleanup(func() { conn.Close(); other.Close() })
		p := &peer{conn: conn, addr: netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(6881+i)),
			notify: make(chan struct{}, 1), has: tt.full(), pending: map[blockKey]time.Time{}}
		tor.peers[p] = struct{}{}
		tor.byAddr[p.addr] = p
		*pp = p
	}
	block := func(i int) []byte { return bytes.Clone(tt.data[i*blockSize : (i+1)*blockSize]) }
	// Deliver the piece's blocks from the given senders, with block bad
	// (if not -1) corrupted, and hand the result to onHashed.
	deliver := func(from []*peer, bad int) {
		t.Helper()
		pc, _ := tor.pk.request(from[0], time.Now())
		if pc == nil {
			t.Fatal("nothing to request")
		}
		for i, p := range from {
			data := block(i)
			if i == bad {
				data[7] ^= 1
			}
			if _, res := tor.pk.received(makeKey(0, uint32(i*blockSize)), data, p.addr); res == blockWasted || res == blockBadSize {
				t.Fatalf("block %d not taken: %v", i, res)
			}
		}
		h := sha1.New()
		for i := range pc.blocks {
			h.Write(pc.blocks[i].data)
		}
		tor.onHashed(hashResult{pc: pc, ok: [20]byte(h.Sum(nil)) == tt.info.Pieces[0]})
	}
	deliver([]*peer{a, b, c, a}, 1)
	if tor.hashFails != 1 || len(tor.banned) != 0 {
		t.Fatalf("after a mixed failure: %d hash failures, %d banned; want 1 and none on suspicion", tor.hashFails, len(tor.banned))
	}
	if a.hashFails != 1 || b.hashFails != 1 || c.hashFails != 1 {
		t.Fatalf("strikes %d %d %d, want one each", a.hashFails, b.hashFails, c.hashFails)
	}
	// The next copy is exclusive to the first peer that asks.
	pc, _ := tor.pk.request(c, time.Now())
	if pc == nil || !pc.exclusive || pc.owner != c {
		t.Fatalf("re-fetch %+v, want exclusive to the asking peer", pc)
	}
	if q, _ := tor.pk.request(a, time.Now()); q != nil {
		t.Fatal("another peer was asked for a block of the exclusive piece")
	}
	tor.pk.release(makeKey(0, 0))
	tor.pk.disown(c)
	tor.pk.failed(pc, true) // drop this attempt; deliver starts it again
	deliver([]*peer{a, a, a, a}, -1)
	if !tor.pk.hasPiece(0) {
		t.Fatal("the good copy did not verify")
	}
	if !tor.banned[banKey(b.addr)] || len(tor.banned) != 1 {
		t.Fatalf("banned %v, want only %v, who sent the bad block", tor.banned, b.addr)
	}
	if _, err := b.conn.Write([]byte{0}); err == nil {
		t.Fatal("the banned peer's connection is still open")
	}
}
