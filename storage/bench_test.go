package storage

import (
	"fmt"
	"testing"
)

// benchLayout is n MiB of 1 MiB pieces over four files.
func benchLayout(b *testing.B, mib int64) *Layout {
	var files []File
	for i := range 4 {
		files = append(files, File{Path: fmt.Sprintf("bench/f%d", i), Length: mib << 20 / 4})
	}
	return mustLayout(b, files, 1<<20)
}

func BenchmarkWriteAt(b *testing.B) {
	l := benchLayout(b, 64)
	d := openDir(b, b.TempDir(), l, Options{})
	piece := randBytes(20, 1<<20)
	b.SetBytes(int64(len(piece)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := d.WriteAt(piece, l.PieceOffset(i%l.NumPieces())); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkReadAt(b *testing.B) {
	l := benchLayout(b, 64)
	d := openDir(b, b.TempDir(), l, Options{})
	piece := randBytes(21, 1<<20)
	for i := range l.NumPieces() {
		if _, err := d.WriteAt(piece, l.PieceOffset(i)); err != nil {
			b.Fatal(err)
		}
	}
	buf := make([]byte, 16<<10) // one request block
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		if _, err := d.ReadAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off = (off + 16<<10 + 16<<10) % (l.TotalLength() - int64(len(buf)))
	}
}

func BenchmarkRecheck(b *testing.B) {
	l := benchLayout(b, 256)
	d := openDir(b, b.TempDir(), l, Options{})
	hashes := make([][20]byte, l.NumPieces())
	for i := range l.NumPieces() {
		piece := randBytes(uint64(i), 1<<20)
		if _, err := d.WriteAt(piece, l.PieceOffset(i)); err != nil {
			b.Fatal(err)
		}
		hashes[i] = pieceHashes(mustLayout(b, []File{{Path: "p", Length: 1 << 20}}, 1<<20), piece)[0]
	}
	b.SetBytes(l.TotalLength())
	b.ReportAllocs()
	for b.Loop() {
		have, err := Recheck(b.Context(), d, l, hashes, 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		if !have.Full() {
			b.Fatalf("%d of %d pieces", have.Count(), l.NumPieces())
		}
	}
}

// BenchmarkRecheckEmpty measures a recheck of a fresh download: every
// file exists but holds only holes, which should cost almost nothing.
func BenchmarkRecheckEmpty(b *testing.B) {
	l := benchLayout(b, 256)
	d := openDir(b, b.TempDir(), l, Options{})
	for i := range 4 {
		if _, err := d.WriteAt([]byte{1}, l.FileOffset(i)); err != nil {
			b.Fatal(err)
		}
	}
	hashes := make([][20]byte, l.NumPieces())
	b.SetBytes(l.TotalLength())
	for b.Loop() {
		if _, err := Recheck(b.Context(), d, l, hashes, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
}
