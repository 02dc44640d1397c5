package storage

import (
	"context"
	"crypto/sha1"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sowerbt/sower/bitfield"
)

func pieceHashes(l *Layout, data []byte) [][20]byte {
	h := make([][20]byte, l.NumPieces())
	for i := range h {
		off := l.PieceOffset(i)
		h[i] = sha1.Sum(data[off : off+l.PieceSize(i)])
	}
	return h
}

func assertPieces(t *testing.T, got bitfield.Bitfield, want ...int) {
	t.Helper()
	var have []int
	for i := range got.Len() {
		if got.Has(i) {
			have = append(have, i)
		}
	}
	if !slices.Equal(have, want) {
		t.Errorf("verified pieces %v, want %v", have, want)
	}
}

// fourFiles: piece length 1024 over a(2500) b(1000) c(3000) d(1500).
//
//	p0 [0,1024) a      p4 [4096,5120) c
//	p1 [1024,2048) a   p5 [5120,6144) c
//	p2 [2048,3072) a b p6 [6144,7168) c d
//	p3 [3072,4096) b c p7 [7168,8000) d (short)
func fourFiles(t testing.TB) *Layout {
	return mustLayout(t, []File{
		{Path: "t/a", Length: 2500}, {Path: "t/b", Length: 1000},
		{Path: "t/c", Length: 3000}, {Path: "t/d", Length: 1500},
	}, 1024)
}

func TestRecheckComplete(t *testing.T) {
	l := fourFiles(t)
	data := randBytes(10, l.TotalLength())
	hashes := pieceHashes(l, data)
	for _, s := range []Storage{openDir(t, t.TempDir(), l, Options{}), NewMemory(l)} {
		if _, err := s.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
		for _, workers := range []int{0, 1, 3, 100} {
			var calls []int
			got, err := Recheck(t.Context(), s, l, hashes, workers, func(n int) { calls = append(calls, n) })
			if err != nil {
				t.Fatalf("%T workers %d: %v", s, workers, err)
			}
			if !got.Full() {
				t.Errorf("%T workers %d: %d of %d pieces", s, workers, got.Count(), l.NumPieces())
			}
			if !slices.Equal(calls, []int{1, 2, 3, 4, 5, 6, 7, 8}) {
				t.Errorf("progress calls %v", calls)
			}
		}
	}
}

func TestRecheckPartialDir(t *testing.T) {
	l := fourFiles(t)
	dir := t.TempDir()
	data := randBytes(11, l.TotalLength())
	hashes := pieceHashes(l, data)
	d := openDir(t, dir, l, Options{})
	if _, err := d.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	d.Close()
	// Corrupt one byte of p1, delete d (p6, p7), cut c to 1200 bytes so it
	// ends at 4700, inside p4 (p4, p5, p6).
	f, err := os.OpenFile(filepath.Join(dir, "t/a"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[1500] ^ 1}, 1500); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Remove(filepath.Join(dir, "t/d")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "t/c"), 1200); err != nil {
		t.Fatal(err)
	}
	d = openDir(t, dir, l, Options{})
	got, err := Recheck(t.Context(), d, l, hashes, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertPieces(t, got, 0, 2, 3)
}

// TestRecheckAfterPartialWrite models a crash: only some pieces were
// written, the rest of each created file is a sparse hole.
func TestRecheckAfterPartialWrite(t *testing.T) {
	l := fourFiles(t)
	dir := t.TempDir()
	data := randBytes(12, l.TotalLength())
	// Piece 5 is all zeros: it verifies even though nothing was written,
	// because its bytes are a hole in an existing file.
	clear(data[5*1024 : 6*1024])
	hashes := pieceHashes(l, data)
	d := openDir(t, dir, l, Options{})
	for _, p := range []int{0, 3, 7} {
		off := l.PieceOffset(p)
		if _, err := d.WriteAt(data[off:off+l.PieceSize(p)], off); err != nil {
			t.Fatal(err)
		}
	}
	// Half of piece 1: a partially written piece never verifies.
	if _, err := d.WriteAt(data[1024:1536], 1024); err != nil {
		t.Fatal(err)
	}
	d.Close() // no Sync: page-cache data is what survives a SIGKILL
	d = openDir(t, dir, l, Options{})
	got, err := Recheck(t.Context(), d, l, hashes, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	assertPieces(t, got, 0, 3, 5, 7)
}

// countingStorage records which offsets were read.
type countingStorage struct {
	*Memory
	mu    sync.Mutex
	reads map[int64]bool
}

func (c *countingStorage) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	c.reads[off] = true
	c.mu.Unlock()
	return c.Memory.ReadAt(p, off)
}

func TestRecheckSkipsMissingWithoutReading(t *testing.T) {
	l := fourFiles(t)
	data := randBytes(13, l.TotalLength())
	clear(data[4*1024 : 5*1024]) // p4: zeros, never written
	hashes := pieceHashes(l, data)
	m := &countingStorage{Memory: NewMemory(l), reads: map[int64]bool{}}
	for _, p := range []int{0, 3} {
		off := l.PieceOffset(p)
		if _, err := m.WriteAt(data[off:off+l.PieceSize(p)], off); err != nil {
			t.Fatal(err)
		}
	}
	// A corrupt piece 6 is read and rejected.
	if _, err := m.WriteAt(make([]byte, 1024), 6*1024); err != nil {
		t.Fatal(err)
	}
	got, err := Recheck(t.Context(), m, l, hashes, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	// p4 is all zeros but was never stored: Memory reports it missing.
	assertPieces(t, got, 0, 3)
	var read []int
	for off := range m.reads {
		read = append(read, int(off/1024))
	}
	slices.Sort(read)
	// p4 is read because its hash is that of zeros; p1, p2, p5, p7 are not.
	if want := []int{0, 3, 4, 6}; !slices.Equal(read, want) {
		t.Errorf("read pieces %v, want %v", read, want)
	}
}

func TestRecheckCancel(t *testing.T) {
	l := mustLayout(t, []File{{Path: "x", Length: 1 << 20}}, 1024)
	m := NewMemory(l)
	data := randBytes(14, l.TotalLength())
	if _, err := m.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	hashes := pieceHashes(l, data)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Recheck(ctx, m, l, hashes, 2, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	var last atomic.Int64
	_, err := Recheck(ctx, m, l, hashes, 2, func(n int) {
		last.Store(int64(n))
		if n == 10 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel mid-way: %v", err)
	}
	// Each worker finishes at most the piece it is on.
	if n := last.Load(); n < 10 || n > 12 {
		t.Errorf("checked %d pieces after cancelling at 10", n)
	}
}

type failingStorage struct{ *Memory }

var errDisk = errors.New("disk on fire")

func (failingStorage) ReadAt(p []byte, off int64) (int, error) { return 0, errDisk }

func TestRecheckErrors(t *testing.T) {
	l := fourFiles(t)
	m := NewMemory(l)
	if _, err := m.WriteAt(make([]byte, l.TotalLength()), 0); err != nil {
		t.Fatal(err)
	}
	hashes := make([][20]byte, l.NumPieces())
	if _, err := Recheck(t.Context(), failingStorage{m}, l, hashes, 2, nil); !errors.Is(err, errDisk) {
		t.Errorf("read error: %v", err)
	}
	if _, err := Recheck(t.Context(), m, l, hashes[1:], 2, nil); err == nil {
		t.Error("wrong hash count accepted")
	}
	if _, err := VerifyPiece(m, l, 8, [20]byte{}, nil); err == nil {
		t.Error("VerifyPiece out of range accepted")
	}
}

func TestVerifyPieceSmallBuffer(t *testing.T) {
	l := fourFiles(t)
	m := NewMemory(l)
	data := randBytes(15, l.TotalLength())
	if _, err := m.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	hashes := pieceHashes(l, data)
	for i := range l.NumPieces() {
		if ok, err := VerifyPiece(m, l, i, hashes[i], make([]byte, 100)); !ok || err != nil {
			t.Errorf("piece %d: %v %v", i, ok, err)
		}
	}
	if ok, _ := VerifyPiece(m, l, 0, hashes[1], nil); ok {
		t.Error("wrong hash verified")
	}
}
