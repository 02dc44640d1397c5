package peerwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzDecoder feeds arbitrary bytes to a decoder under limits chosen by
// the fuzzer. The decoder must never panic, must make progress, and must
// end with io.EOF or an error; every message it accepts must re-encode to
// bytes it decodes the same way.
func FuzzDecoder(f *testing.F) {
	f.Add(encodeAll(allMessages()), uint16(10), uint32(32<<10), uint32(1000), uint32(0))
	f.Add(encodeAll(allMessages()), uint16(0), uint32(0), uint32(0), uint32(16<<10))
	f.Add(cat(frame(3, 5, 0xff, 0xe0)), uint16(10), uint32(32<<10), uint32(1000), uint32(0))
	f.Add(cat(frame(13, 6), u32(9), u32(999), u32(2)), uint16(10), uint32(32<<10), uint32(1000), uint32(0))
	f.Add(frame(0xffffffff, 7), uint16(1), uint32(1), uint32(1), uint32(1))
	f.Add(cat(frame(2, 0x63, 0), frame(0)), uint16(3), uint32(100), uint32(50), uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, numPieces uint16, pieceLen, lastLen, maxBlock uint32) {
		lim := Limits{NumPieces: int(numPieces), PieceLength: int64(pieceLen), MaxBlock: maxBlock % (1 << 20)}
		if numPieces > 0 {
			lim.TotalLength = int64(numPieces-1)*int64(pieceLen) + int64(lastLen)
		}
		d := NewDecoder(bytes.NewReader(data), lim)
		var accepted []Message
		var wire []byte
		// Every message consumes at least 4 bytes.
		for i := 0; i <= len(data)/4; i++ {
			m, err := d.Next()
			if err != nil {
				var pe *ProtocolError
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &pe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				checkReencoded(t, accepted, wire, lim)
				return
			}
			if m.ID == Piece && (len(m.Payload) == 0 || int64(len(m.Payload)) > d.maxBlock) {
				t.Fatalf("accepted piece block of %d bytes", len(m.Payload))
			}
			if lim.NumPieces > 0 && hasIndex(m) && int(m.Index) >= lim.NumPieces {
				t.Fatalf("accepted %s index %d of %d", m.ID, m.Index, lim.NumPieces)
			}
			if len(accepted) < 64 {
				m.Payload = bytes.Clone(m.Payload)
				accepted = append(accepted, m)
				wire = m.AppendTo(wire)
			}
		}
		t.Fatalf("decoder did not stop after %d messages from %d bytes", len(data)/4+1, len(data))
	})
}

// hasIndex reports message types that carry a piece index.
func hasIndex(m Message) bool {
	if m.KeepAlive {
		return false
	}
	switch m.ID {
	case Have, Suggest, AllowedFast, Request, Cancel, Reject, Piece:
		return true
	}
	return false
}

// checkReencoded decodes the re-encoded form of accepted messages and
// compares.
func checkReencoded(t *testing.T, accepted []Message, wire []byte, lim Limits) {
	t.Helper()
	d := NewDecoder(bytes.NewReader(wire), lim)
	for _, m := range accepted {
		again, err := d.Next()
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", m, err)
		}
		if again.KeepAlive != m.KeepAlive || again.ID != m.ID || again.Index != m.Index || again.Begin != m.Begin ||
			again.Length != m.Length || again.Port != m.Port || again.ExtendedID != m.ExtendedID ||
			!bytes.Equal(again.Payload, m.Payload) {
			t.Fatalf("re-encoded %+v decodes as %+v", m, again)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("re-encoded stream ends with %v", err)
	}
}

func BenchmarkDecodePiece(b *testing.B) {
	const block = 16 << 10
	var in []byte
	for i := range 64 {
		in = Message{ID: Piece, Index: uint32(i), Begin: 0, Payload: make([]byte, block)}.AppendTo(in)
	}
	lim := Limits{NumPieces: 64, PieceLength: block, TotalLength: 64 * block}
	d := NewDecoder(&loopReader{data: in}, lim)
	b.SetBytes(block)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendTo(b *testing.B) {
	buf := make([]byte, 0, 32<<10)
	m := Message{ID: Piece, Index: 1, Begin: 16 << 10, Payload: make([]byte, 16<<10)}
	req := Message{ID: Request, Index: 1, Begin: 16 << 10, Length: 16 << 10}
	b.SetBytes(int64(len(m.Payload)) + 13 + 17)
	b.ReportAllocs()
	for b.Loop() {
		buf = m.AppendTo(buf[:0])
		buf = req.AppendTo(buf)
	}
	_ = binary.BigEndian.Uint32(buf)
}

// FuzzClientName checks that any peer id gets a printable name without
// panicking.
func FuzzClientName(f *testing.F) {
	for _, s := range []string{"-qB4520-abcdefghijkl", "M4-3-6--xxxxxxxxxxxx", "A2-1-36-0-xxxxxxxxxx", "T03I-----xxxxxxxxxxx", "-SW0100-000000000000", "-ZZzzzz-\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var id [20]byte
		copy(id[:], b)
		name := ClientName(id)
		if name == "" || !utf8.ValidString(name) || len(name) > 64 {
			t.Fatalf("ClientName(%q) = %q", id, name)
		}
		for _, r := range name {
			if !unicode.IsPrint(r) {
				t.Fatalf("ClientName(%q) = %q: not printable", id, name)
			}
		}
	})
}

// FuzzReadHandshake checks the handshake readers on any byte stream: a
// handshake is returned only when the stream starts with one, and the
// readers never read past it.
func FuzzReadHandshake(f *testing.F) {
	var h Handshake
	h.Reserved.SetFast()
	h.InfoHash[0], h.PeerID[0] = 1, 2
	var good bytes.Buffer
	WriteHandshake(&good, h)
	f.Add(good.Bytes())
	f.Add(append(bytes.Clone(good.Bytes()), 0, 0, 0, 1, 2))
	f.Add(good.Bytes()[:30])
	f.Add([]byte("\x13BitTorrent protocoX"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		got, err := ReadHandshake(r)
		if err != nil {
			return
		}
		if len(b) < fullHandshakeLen || string(b[1:20]) != Protocol || b[0] != 19 {
			t.Fatalf("handshake %+v read from %q", got, b)
		}
		if r.Len() != len(b)-fullHandshakeLen {
			t.Fatalf("read %d bytes of a %d-byte handshake", len(b)-r.Len(), fullHandshakeLen)
		}
		var again bytes.Buffer
		WriteHandshake(&again, got)
		if !bytes.Equal(again.Bytes(), b[:fullHandshakeLen]) {
			t.Fatalf("handshake %q re-encodes as %q", b[:fullHandshakeLen], again.Bytes())
		}
	})
}

// fullHandshakeLen is a whole handshake: its start and the peer id.
const fullHandshakeLen = handshakeStartLen + 20
