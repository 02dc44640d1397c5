package storage

import (
	"context"
	"crypto/sha1"
	"testing"

	"github.com/sowerbt/sower/bitfield"
)

func TestRecheckPiecesHashesOnlyUntrusted(t *testing.T) {
	const pl = 1024
	l, err := NewLayout([]File{{Path: "a", Length: 10*pl + 100}}, pl)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, l.TotalLength())
	for i := range data {
		data[i] = byte(i * 7)
	}
	hashes := make([][20]byte, l.NumPieces())
	for i := range hashes {
		off := l.PieceOffset(i)
		hashes[i] = sha1.Sum(data[off : off+l.PieceSize(i)])
	}
	m := NewMemory(l)
	// Pieces 0-4 and 10 are stored; piece 3 is stored damaged.
	for _, i := range []int{0, 1, 2, 3, 4, 10} {
		off := l.PieceOffset(i)
		m.WriteAt(data[off:off+l.PieceSize(i)], off)
	}
	m.WriteAt([]byte{0xff}, l.PieceOffset(3))

	// The checkpoint trusts 0, 1 and 3 (3 must stay trusted: it is not
	// re-read) and 7 (likewise), and knows nothing of 2, 4 and 10.
	trusted := bitfield.New(l.NumPieces())
	for _, i := range []int{0, 1, 3, 7} {
		trusted.Set(i)
	}
	have, err := RecheckPieces(context.Background(), m, l, hashes, trusted, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := range l.NumPieces() {
		want := i == 0 || i == 1 || i == 2 || i == 3 || i == 4 || i == 7 || i == 10
		if have.Has(i) != want {
			t.Errorf("piece %d: have %v, want %v", i, have.Has(i), want)
		}
	}
	if trusted.Has(2) {
		t.Fatal("RecheckPieces changed its trusted argument")
	}

	if _, err := RecheckPieces(context.Background(), m, l, hashes[:3], trusted, 0); err == nil {
		t.Fatal("wrong hash count accepted")
	}
	if _, err := RecheckPieces(context.Background(), m, l, hashes, bitfield.New(3), 0); err == nil {
		t.Fatal("wrong trusted length accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RecheckPieces(ctx, m, l, hashes, bitfield.New(l.NumPieces()), 1); err == nil {
		t.Fatal("cancelled recheck returned no error")
	}
}
