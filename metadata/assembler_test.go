package metadata

import (
	"crypto/rand"
	"crypto/sha1"
	"errors"
	"strings"
	"testing"
)

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewAssemblerSizes(t *testing.T) {
	for _, size := range []int{-1, 0, MaxSize + 1, 1 << 40} {
		if _, err := NewAssembler(size, [20]byte{}); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("NewAssembler(%d): %v, want out of range", size, err)
		}
	}
	for _, tt := range []struct{ size, pieces int }{{1, 1}, {BlockSize, 1}, {BlockSize + 1, 2}, {MaxSize, MaxSize / BlockSize}} {
		a, err := NewAssembler(tt.size, [20]byte{})
		if err != nil {
			t.Fatalf("NewAssembler(%d): %v", tt.size, err)
		}
		if a.NumPieces() != tt.pieces || a.Size() != tt.size || a.Done() {
			t.Errorf("NewAssembler(%d): %d pieces, size %d, done %v", tt.size, a.NumPieces(), a.Size(), a.Done())
		}
	}
}

func TestAssemblerAdd(t *testing.T) {
	data := randomBytes(t, 2*BlockSize+100)
	hash := sha1.Sum(data)
	tests := []struct {
		name    string
		piece   int
		data    []byte
		wantErr string
	}{
		{"negative piece", -1, data[:BlockSize], "piece -1 out of range 0..2"},
		{"piece past end", 3, data[:100], "piece 3 out of range 0..2"},
		{"short full piece", 0, data[:BlockSize-1], "has 16383 bytes, want 16384"},
		{"long full piece", 1, data[:BlockSize+1], "want 16384"},
		{"last piece full size", 2, data[:BlockSize], "piece 2 has 16384 bytes, want 100"},
		{"last piece short", 2, data[:99], "want 100"},
		{"last piece empty", 2, nil, "has 0 bytes, want 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAssembler(len(data), hash)
			if err != nil {
				t.Fatal(err)
			}
			err = a.Add(tt.piece, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Add: %v, want %q", err, tt.wantErr)
			}
			if a.Missing() != 3 {
				t.Fatalf("a refused piece was kept: %d missing", a.Missing())
			}
		})
	}
}

func TestAssemblerComplete(t *testing.T) {
	data := randomBytes(t, 2*BlockSize+100)
	a, err := NewAssembler(len(data), sha1.Sum(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bytes(); err == nil || !strings.Contains(err.Error(), "3 of 3 pieces missing") {
		t.Fatalf("Bytes on empty assembler: %v", err)
	}
	// Out of order, and the caller's buffer is reused after each Add.
	buf := make([]byte, BlockSize)
	for _, p := range []int{2, 0, 1} {
		n := copy(buf, data[p*BlockSize:min(len(data), (p+1)*BlockSize)])
		if err := a.Add(p, buf[:n]); err != nil {
			t.Fatalf("Add(%d): %v", p, err)
		}
		clear(buf)
	}
	if err := a.Add(1, data[BlockSize:2*BlockSize]); err == nil || !strings.Contains(err.Error(), "already received") {
		t.Fatalf("second Add of piece 1: %v", err)
	}
	if !a.Done() || a.Missing() != 0 || !a.Has(2) || a.Has(3) || a.Has(-1) {
		t.Fatalf("Done %v Missing %d", a.Done(), a.Missing())
	}
	got, err := a.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Fatal("assembled bytes differ")
	}
}

func TestAssemblerHashMismatch(t *testing.T) {
	data := randomBytes(t, BlockSize+1)
	a, err := NewAssembler(len(data), sha1.Sum(data))
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data[:BlockSize]...)
	bad[100] ^= 1
	if err := a.Add(0, bad); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(1, data[BlockSize:]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bytes(); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Bytes: %v, want ErrHashMismatch", err)
	}
	a.Reset()
	if a.Done() || a.Missing() != 2 {
		t.Fatalf("after Reset: done %v, missing %d", a.Done(), a.Missing())
	}
	if err := a.Add(0, data[:BlockSize]); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(1, data[BlockSize:]); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Bytes(); err != nil || string(got) != string(data) {
		t.Fatalf("after Reset and good pieces: %v", err)
	}
}
