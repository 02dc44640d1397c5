package metadata

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"testing"
)

func FuzzParseMsg(f *testing.F) {
	for _, s := range []string{
		"d8:msg_typei0e5:piecei0ee",
		"d8:msg_typei2e5:piecei3ee",
		"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc",
		"d8:msg_typei1e5:piecei1e10:total_sizei16390eeabcdef",
		"d8:msg_typei9e5:piecei0ee",
		"d8:msg_typei1e5:piecei0e10:total_sizei4294967296eeabc",
		"d5:piecei0e8:msg_typei0ee",
		"d8:msg_type1:05:piecei0ee",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := ParseMsg(payload)
		if err != nil {
			return
		}
		if m.Type < TypeRequest || m.Type > TypeReject || m.Piece < 0 {
			t.Fatalf("accepted %+v", m)
		}
		if m.Type == TypeData && len(m.Data) != PieceLen(m.TotalSize, m.Piece) {
			t.Fatalf("data message with %d bytes for piece %d of %d", len(m.Data), m.Piece, m.TotalSize)
		}
		// Whatever is accepted re-encodes to something that parses the same.
		b, err := m.Append(nil)
		if err != nil {
			t.Fatalf("Append(%+v) of a parsed message: %v", m, err)
		}
		m2, err := ParseMsg(b)
		if err != nil || m2.Type != m.Type || m2.Piece != m.Piece || m2.TotalSize != m.TotalSize || !bytes.Equal(m2.Data, m.Data) {
			t.Fatalf("round trip %+v -> %q -> %+v, %v", m, b, m2, err)
		}
	})
}

// FuzzAssembler feeds an assembler a size and a sequence of pieces cut from
// ops: each op is a piece index byte, a length byte pair and that many bytes
// of data. Pieces that are accepted must be kept exactly, and Bytes must
// succeed only for the data whose hash the assembler was given.
func FuzzAssembler(f *testing.F) {
	f.Add(uint32(5), []byte{0, 0, 5, 'h', 'e', 'l', 'l', 'o'}, true)
	f.Add(uint32(BlockSize+3), []byte{1, 0, 3, 'a', 'b', 'c', 0, 0x40, 0}, false)
	f.Add(uint32(0), []byte{0, 0, 0}, true)
	f.Add(uint32(1<<31), []byte{}, false)
	f.Fuzz(func(t *testing.T, size uint32, ops []byte, hashOfZeros bool) {
		var want [20]byte
		if hashOfZeros && size <= 256<<10 {
			want = sha1.Sum(make([]byte, size))
		}
		a, err := NewAssembler(int(size), want)
		if err != nil {
			if size > 0 && size <= MaxSize {
				t.Fatalf("NewAssembler(%d): %v", size, err)
			}
			return
		}
		if size > 256<<10 {
			return // valid; skip the pieces to keep the fuzzer fast
		}
		shadow := make([]byte, size)
		for len(ops) >= 3 {
			piece := int(int8(ops[0]))
			n := int(ops[1])<<8 | int(ops[2])
			ops = ops[3:]
			var data []byte
			if n <= len(ops) {
				data, ops = ops[:n], ops[n:]
			} else {
				// A full piece of zeros, so that complete data is reachable.
				data = make([]byte, n&(BlockSize*2-1))
			}
			had := a.Has(piece)
			if err := a.Add(piece, data); err == nil {
				if had || len(data) != PieceLen(int(size), piece) {
					t.Fatalf("Add(%d, %d bytes) accepted (had %v)", piece, len(data), had)
				}
				copy(shadow[piece*BlockSize:], data)
			}
		}
		got, err := a.Bytes()
		if !a.Done() {
			if err == nil {
				t.Fatal("Bytes succeeded on incomplete metadata")
			}
			return
		}
		if sha1.Sum(shadow) == want {
			if err != nil || !bytes.Equal(got, shadow) {
				t.Fatalf("Bytes: %v", err)
			}
		} else if !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("Bytes with wrong data: %v", err)
		}
	})
}
