package mse

import (
	"bytes"
	"crypto/rc4"
	"testing"
)

// TestStreamMatchesCryptoRC4 checks the package's RC4 (assembly where
// there is some, and the portable loop) against crypto/rc4, past the
// discarded start, over pieces of every length around the 8-byte blocks.
func TestStreamMatchesCryptoRC4(t *testing.T) {
	key := [20]byte{3, 1, 4, 1, 5, 9, 2, 6}
	ref, _ := rc4.NewCipher(key[:])
	var drop [discard]byte
	ref.XORKeyStream(drop[:], drop[:])
	s, g := newStream(key), newStream(key)
	data := randBytes(30, 70000)
	for off, n := 0, 0; off < len(data); off += n {
		n = min(1+off%37, len(data)-off)
		if off > 60000 {
			n = len(data) - off // one long piece
		}
		piece := data[off : off+n]
		want := make([]byte, n)
		ref.XORKeyStream(want, piece)
		in := bytes.Clone(piece)
		s.xor(in)
		out := make([]byte, n)
		xorKeyStreamGeneric(g, out, piece)
		if !bytes.Equal(in, want) || !bytes.Equal(out, want) {
			t.Fatalf("keystream differs from crypto/rc4 at %d (+%d)", off, n)
		}
	}
	// xorTo leaves src alone.
	src := randBytes(31, 100)
	keep := bytes.Clone(src)
	dst := make([]byte, 100)
	s.xorTo(dst, src)
	if !bytes.Equal(src, keep) {
		t.Fatal("xorTo changed src")
	}
	want := make([]byte, 100)
	ref.XORKeyStream(want, src)
	if !bytes.Equal(dst, want) {
		t.Fatal("xorTo differs from crypto/rc4")
	}
}
