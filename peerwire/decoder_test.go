package peerwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// testLimits describes a torrent of 10 pieces of 32 KiB whose last piece
// is 1000 bytes long.
var testLimits = Limits{NumPieces: 10, PieceLength: 32 << 10, TotalLength: 9*(32<<10) + 1000}

// allMessages has one message of every type, valid under testLimits.
func allMessages() []Message {
	return []Message{
		{KeepAlive: true},
		{ID: Choke},
		{ID: Unchoke},
		{ID: Interested},
		{ID: NotInterested},
		{ID: Have, Index: 9},
		{ID: Bitfield, Payload: []byte{0xff, 0xc0}},
		{ID: Request, Index: 3, Begin: 16 << 10, Length: 16 << 10},
		{ID: Piece, Index: 9, Begin: 0, Length: 1000, Payload: bytes.Repeat([]byte{0xab}, 1000)},
		{ID: Cancel, Index: 3, Begin: 16 << 10, Length: 16 << 10},
		{ID: Port, Port: 6881},
		{ID: Suggest, Index: 4},
		{ID: HaveAll},
		{ID: HaveNone},
		{ID: Reject, Index: 9, Begin: 500, Length: 500},
		{ID: AllowedFast, Index: 0},
		{ID: Extended, ExtendedID: 0, Payload: []byte("d1:md11:ut_metadatai1eee")},
		{ID: Extended, ExtendedID: 3, Payload: []byte{}},
	}
}

func encodeAll(ms []Message) []byte {
	var b []byte
	for _, m := range ms {
		b = m.AppendTo(b)
	}
	return b
}

// decodeAll reads messages until an error, copying piece payloads as the
// contract requires.
func decodeAll(r io.Reader, lim Limits) ([]Message, error) {
	d := NewDecoder(r, lim)
	var out []Message
	for {
		m, err := d.Next()
		if err != nil {
			return out, err
		}
		if m.ID == Piece {
			m.Payload = append([]byte(nil), m.Payload...)
		}
		out = append(out, m)
	}
}

// normalize makes an empty payload compare equal to a nil one.
func normalize(ms []Message) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		if len(m.Payload) == 0 {
			m.Payload = nil
		}
		out[i] = m
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	want := allMessages()
	wire := encodeAll(want)
	readers := map[string]func() io.Reader{
		"bytes":    func() io.Reader { return bytes.NewReader(wire) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := decodeAll(r(), testLimits)
			if err != io.EOF {
				t.Fatalf("stopped with %v after %d messages", err, len(got))
			}
			if !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Fatalf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestWireFormat(t *testing.T) {
	tests := []struct {
		m    Message
		want string
	}{
		{Message{KeepAlive: true}, "00000000"},
		{Message{ID: Interested}, "0000000102"},
		{Message{ID: Have, Index: 0x01020304}, "000000050401020304"},
		{Message{ID: Request, Index: 1, Begin: 0x4000, Length: 0x4000}, "0000000d06000000010000400000004000"},
		{Message{ID: Piece, Index: 2, Begin: 3, Payload: []byte{9, 8}}, "0000000b07000000020000000309" + "08"},
		{Message{ID: Port, Port: 0x1ae1}, "00000003091ae1"},
		{Message{ID: Extended, ExtendedID: 2, Payload: []byte("x")}, "00000003140278"},
		{Message{ID: 99, Payload: []byte{1}}, "000000026301"},
		// Fields that do not belong to the type are ignored.
		{Message{ID: Choke, Index: 5, Payload: []byte{1}}, "0000000100"},
	}
	for _, tt := range tests {
		got := tt.m.AppendTo(nil)
		if h := hexString(got); h != tt.want {
			t.Errorf("%s: %s, want %s", tt.m.name(), h, tt.want)
		}
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, m := range allMessages() {
		if err := w.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Len() != 0 || w.Buffered() == 0 {
		t.Fatalf("wrote %d bytes before Flush, %d buffered", buf.Len(), w.Buffered())
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), encodeAll(allMessages())) {
		t.Fatal("Writer output differs from AppendTo")
	}
	fw := NewWriter(failWriter{})
	big := Message{ID: Piece, Payload: make([]byte, 100<<10)}
	if err := fw.WriteMessage(big); err == nil || !strings.Contains(err.Error(), "writing piece payload") {
		t.Fatalf("write error %v", err)
	}
	if err := NewWriter(failWriter{}).WriteMessage(Message{ID: Choke}); err != nil {
		t.Fatalf("buffered write failed early: %v", err)
	}
	w2 := NewWriter(failWriter{})
	w2.WriteMessage(Message{ID: Choke})
	if err := w2.Flush(); err == nil || !strings.Contains(err.Error(), "flushing") {
		t.Fatalf("flush error %v", err)
	}
}

func TestAppendToNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 64<<10)
	m := Message{ID: Piece, Index: 1, Begin: 2, Payload: make([]byte, 16<<10)}
	allocs := testing.AllocsPerRun(100, func() { buf = m.AppendTo(buf[:0]) })
	if allocs != 0 {
		t.Fatalf("%v allocations per AppendTo", allocs)
	}
}

func TestMessageIDString(t *testing.T) {
	for id, want := range map[MessageID]string{
		Choke: "choke", NotInterested: "not interested", Bitfield: "bitfield", Port: "port",
		Suggest: "suggest piece", HaveAll: "have all", HaveNone: "have none", Reject: "reject request",
		AllowedFast: "allowed fast", Extended: "extended", 42: "unknown(42)",
	} {
		if got := id.String(); got != want {
			t.Errorf("%d: %q, want %q", uint8(id), got, want)
		}
	}
}

// frame builds a message with an arbitrary length prefix and body.
func frame(n uint32, body ...byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, n), body...)
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestDecoderRejects(t *testing.T) {
	unknown := Limits{}
	small := Limits{NumPieces: 10, PieceLength: 32 << 10, TotalLength: 9*(32<<10) + 1000, MaxBlock: 16 << 10}
	tests := []struct {
		name string
		lim  Limits
		in   []byte
		want string
	}{
		{"length over limit", testLimits, frame(MaxExtendedLen + 1), "peerwire: message length 1048577 exceeds limit 1048576"},
		{"huge length", unknown, frame(0xffffffff, 7), "peerwire: message length 4294967295 exceeds limit 1048576"},
		{"choke with payload", testLimits, frame(2, 0, 0), "peerwire: choke message length 2, want 1"},
		{"unchoke with payload", testLimits, frame(5, 1, 0, 0, 0, 0), "peerwire: unchoke message length 5, want 1"},
		{"interested", testLimits, frame(2, 2, 0), "peerwire: interested message length 2, want 1"},
		{"not interested", testLimits, frame(3, 3, 0, 0), "peerwire: not interested message length 3, want 1"},
		{"have all", testLimits, frame(2, 14, 0), "peerwire: have all message length 2, want 1"},
		{"have none", testLimits, frame(2, 15, 0), "peerwire: have none message length 2, want 1"},
		{"have short", testLimits, frame(4, 4, 0, 0, 0), "peerwire: have message length 4, want 5"},
		{"suggest long", testLimits, frame(6, 13, 0, 0, 0, 0, 0), "peerwire: suggest piece message length 6, want 5"},
		{"allowed fast short", testLimits, frame(1, 17), "peerwire: allowed fast message length 1, want 5"},
		{"request short", testLimits, frame(12, 6), "peerwire: request message length 12, want 13"},
		{"cancel long", testLimits, frame(14, 8), "peerwire: cancel message length 14, want 13"},
		{"reject short", testLimits, frame(9, 16), "peerwire: reject request message length 9, want 13"},
		{"port short", testLimits, frame(2, 9, 1), "peerwire: port message length 2, want 3"},
		{"bitfield short", testLimits, frame(2, 5, 0xff), "peerwire: bitfield of 1 bytes, want 2 for 10 pieces"},
		{"bitfield long", testLimits, frame(4, 5, 0xff, 0xc0, 0), "peerwire: bitfield of 3 bytes, want 2 for 10 pieces"},
		{"bitfield spare bits", testLimits, frame(3, 5, 0xff, 0xe0), "peerwire: invalid bitfield for 10 pieces: bitfield: spare bits set"},
		{"bitfield empty unknown", unknown, frame(1, 5), "peerwire: empty bitfield"},
		{"have index", testLimits, cat(frame(5, 4), u32(10)), "peerwire: have index 10 out of range (10 pieces)"},
		{"suggest index", testLimits, cat(frame(5, 13), u32(11)), "peerwire: suggest piece index 11 out of range (10 pieces)"},
		{"allowed fast index", testLimits, cat(frame(5, 17), u32(1<<31)), "peerwire: allowed fast index 2147483648 out of range (10 pieces)"},
		{"request index", testLimits, cat(frame(13, 6), u32(10), u32(0), u32(1)), "peerwire: request index 10 out of range (10 pieces)"},
		{"cancel index", testLimits, cat(frame(13, 8), u32(10), u32(0), u32(1)), "peerwire: cancel index 10 out of range (10 pieces)"},
		{"reject index", testLimits, cat(frame(13, 16), u32(12), u32(0), u32(1)), "peerwire: reject request index 12 out of range (10 pieces)"},
		{"piece index", testLimits, cat(frame(10, 7), u32(10), u32(0), []byte{1}), "peerwire: piece index 10 out of range (10 pieces)"},
		{"request zero", testLimits, cat(frame(13, 6), u32(1), u32(0), u32(0)), "peerwire: request for piece 1 begin 0 with length 0"},
		{"cancel zero", testLimits, cat(frame(13, 8), u32(1), u32(0), u32(0)), "peerwire: cancel for piece 1 begin 0 with length 0"},
		{"reject zero", testLimits, cat(frame(13, 16), u32(1), u32(0), u32(0)), "peerwire: reject request for piece 1 begin 0 with length 0"},
		{"request too big", small, cat(frame(13, 6), u32(1), u32(0), u32(16<<10+1)), "peerwire: request for piece 1 length 16385 exceeds limit 16384"},
		{"request too big default", testLimits, cat(frame(13, 6), u32(1), u32(0), u32(128<<10+1)), "peerwire: request for piece 1 length 131073 exceeds limit 131072"},
		{"request past piece", testLimits, cat(frame(13, 6), u32(1), u32(32<<10-100), u32(101)), "peerwire: request for piece 1 block [32668,32769) past piece end 32768"},
		{"request past last piece", testLimits, cat(frame(13, 6), u32(9), u32(0), u32(1001)), "peerwire: request for piece 9 block [0,1001) past piece end 1000"},
		{"request begin overflow", testLimits, cat(frame(13, 6), u32(0), u32(0xffffffff), u32(1)), "peerwire: request for piece 0 block [4294967295,4294967296) past piece end 32768"},
		{"cancel past piece", testLimits, cat(frame(13, 8), u32(9), u32(999), u32(2)), "peerwire: cancel for piece 9 block [999,1001) past piece end 1000"},
		{"reject past piece", testLimits, cat(frame(13, 16), u32(0), u32(32<<10), u32(1)), "peerwire: reject request for piece 0 block [32768,32769) past piece end 32768"},
		{"piece short", testLimits, frame(8, 7, 0, 0, 0, 0, 0, 0, 0), "peerwire: piece message length 8, want at least 9"},
		{"piece empty", testLimits, cat(frame(9, 7), u32(0), u32(0)), "peerwire: piece message with empty block"},
		{"piece too big", small, frame(9+16<<10+1, 7), "peerwire: piece block of 16385 bytes exceeds limit 16384"},
		{"piece past last piece", testLimits, cat(frame(9+1001, 7), u32(9), u32(0), make([]byte, 1001)), "peerwire: piece for piece 9 block [0,1001) past piece end 1000"},
		{"extended short", testLimits, frame(1, 20), "peerwire: extended message length 1, want at least 2"},
		{"extended over limit", Limits{MaxBlock: 2 << 20}, frame(MaxExtendedLen+1, 20), "peerwire: extended message length 1048577 exceeds limit 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A valid message first shows the decoder recovers nothing
			// from earlier messages into the failing one.
			in := cat(Message{ID: Unchoke}.AppendTo(nil), tt.in)
			d := NewDecoder(bytes.NewReader(in), tt.lim)
			if m, err := d.Next(); err != nil || m.ID != Unchoke {
				t.Fatalf("first message %+v %v", m, err)
			}
			_, err := d.Next()
			var pe *ProtocolError
			if !errors.As(err, &pe) || err.Error() != tt.want {
				t.Fatalf("error %v, want ProtocolError %q", err, tt.want)
			}
			if _, err2 := d.Next(); err2 != err {
				t.Fatalf("error not sticky: %v then %v", err, err2)
			}
		})
	}
}

func TestDecoderAcceptsUnknownLimits(t *testing.T) {
	// Before the metadata is known, indices and bitfield lengths cannot be
	// checked; only the size bounds apply.
	in := encodeAll([]Message{
		{ID: Have, Index: 1 << 30},
		{ID: Bitfield, Payload: []byte{1, 2, 3, 4, 5}},
		{ID: Request, Index: 7, Begin: 1 << 30, Length: 16 << 10},
		{ID: Piece, Index: 7, Begin: 1 << 30, Payload: make([]byte, 128<<10)},
	})
	got, err := decodeAll(bytes.NewReader(in), Limits{})
	if err != io.EOF || len(got) != 4 {
		t.Fatalf("decoded %d messages, stopped with %v", len(got), err)
	}
}

func TestSetLimits(t *testing.T) {
	in := encodeAll([]Message{{ID: Have, Index: 50}, {ID: Have, Index: 50}})
	d := NewDecoder(bytes.NewReader(in), Limits{})
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	d.SetLimits(testLimits)
	if _, err := d.Next(); err == nil || err.Error() != "peerwire: have index 50 out of range (10 pieces)" {
		t.Fatalf("after SetLimits: %v", err)
	}
	// Inconsistent TotalLength falls back to PieceLength for the last piece.
	d = NewDecoder(bytes.NewReader(encodeAll([]Message{{ID: Request, Index: 9, Begin: 0, Length: 16 << 10}})),
		Limits{NumPieces: 10, PieceLength: 32 << 10, TotalLength: 1})
	if _, err := d.Next(); err != nil {
		t.Fatalf("inconsistent TotalLength: %v", err)
	}
}

func TestUnknownMessagesSkipped(t *testing.T) {
	in := cat(
		frame(3, 0x63, 1, 2),
		Message{ID: Have, Index: 1}.AppendTo(nil),
		frame(1, 0xff),
		frame(70<<10, 0x42), make([]byte, 70<<10-1), // larger than the read buffer
		Message{ID: HaveNone}.AppendTo(nil),
	)
	got, err := decodeAll(iotest.HalfReader(bytes.NewReader(in)), testLimits)
	want := []Message{{ID: Have, Index: 1}, {ID: HaveNone}}
	if err != io.EOF || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Skipping is still bounded by the length limit.
	_, err = decodeAll(bytes.NewReader(frame(MaxExtendedLen+1, 0x63)), testLimits)
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("oversized unknown message: %v", err)
	}
}

func TestDecoderEOF(t *testing.T) {
	full := encodeAll([]Message{{ID: Have, Index: 1}, {ID: Piece, Index: 2, Payload: make([]byte, 100)}})
	for cut := 1; cut < len(full); cut++ {
		if cut == 9 {
			continue // a message boundary
		}
		_, err := decodeAll(bytes.NewReader(full[:cut]), testLimits)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("cut at %d: %v, want unexpected EOF", cut, err)
		}
	}
	got, err := decodeAll(bytes.NewReader(full[:9]), testLimits)
	if err != io.EOF || len(got) != 1 {
		t.Fatalf("cut at boundary: %d messages, %v", len(got), err)
	}
	// A large piece read outside the buffer, truncated.
	big := Message{ID: Piece, Index: 1, Payload: make([]byte, 100<<10)}.AppendTo(nil)
	lim := Limits{NumPieces: 2, PieceLength: 1 << 20}
	if _, err := decodeAll(bytes.NewReader(big[:len(big)-1]), lim); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated big piece: %v", err)
	}
	readErr := errors.New("connection reset")
	_, err = decodeAll(io.MultiReader(bytes.NewReader(full[:3]), iotest.ErrReader(readErr)), testLimits)
	if !errors.Is(err, readErr) {
		t.Fatalf("read error not wrapped: %v", err)
	}
}

func TestLargePiece(t *testing.T) {
	// Blocks larger than the read buffer go through the decoder's own
	// buffer, which is reused.
	lim := Limits{NumPieces: 4, PieceLength: 1 << 20, TotalLength: 4 << 20}
	var in []byte
	for i := range 3 {
		p := bytes.Repeat([]byte{byte(i + 1)}, 100<<10+i)
		in = Message{ID: Piece, Index: uint32(i), Begin: 1000, Payload: p}.AppendTo(in)
	}
	d := NewDecoder(iotest.OneByteReader(bytes.NewReader(in)), lim)
	for i := range 3 {
		m, err := d.Next()
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != Piece || m.Index != uint32(i) || m.Begin != 1000 || int(m.Length) != 100<<10+i ||
			!bytes.Equal(m.Payload, bytes.Repeat([]byte{byte(i + 1)}, 100<<10+i)) {
			t.Fatalf("piece %d decoded wrong (len %d)", i, len(m.Payload))
		}
	}
}

func TestOwnedPayloads(t *testing.T) {
	// Bitfield and extended payloads survive later calls to Next; piece
	// payloads cannot grow into the decoder's buffer.
	in := encodeAll([]Message{
		{ID: Bitfield, Payload: []byte{0xaa, 0x80}},
		{ID: Extended, ExtendedID: 1, Payload: []byte("hello")},
		{ID: Piece, Index: 0, Payload: []byte{1, 2, 3}},
		{ID: Have, Index: 0},
	})
	d := NewDecoder(bytes.NewReader(in), testLimits)
	bf, _ := d.Next()
	ext, _ := d.Next()
	piece, _ := d.Next()
	if cap(piece.Payload) != len(piece.Payload) {
		t.Fatalf("piece payload has spare capacity %d", cap(piece.Payload)-len(piece.Payload))
	}
	for range 2 {
		d.Next()
	}
	if !bytes.Equal(bf.Payload, []byte{0xaa, 0x80}) || string(ext.Payload) != "hello" {
		t.Fatalf("payloads changed: %x %q", bf.Payload, ext.Payload)
	}
}

func TestExistingBufioReused(t *testing.T) {
	// The handshake and the messages after it can share one buffer.
	var buf bytes.Buffer
	h := testHandshake()
	WriteHandshake(&buf, h)
	buf.Write(Message{ID: Have, Index: 3}.AppendTo(nil))
	br := bufioReader(&buf)
	if _, err := ReadHandshake(br); err != nil {
		t.Fatal(err)
	}
	m, err := NewDecoder(br, testLimits).Next()
	if err != nil || m.ID != Have || m.Index != 3 {
		t.Fatalf("%+v %v", m, err)
	}
}

// loopReader returns its data over and over, without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func TestNextZeroAllocs(t *testing.T) {
	var in []byte
	for i := range 8 {
		in = Message{ID: Piece, Index: uint32(i), Begin: 16 << 10, Payload: make([]byte, 16<<10)}.AppendTo(in)
		in = Message{ID: Have, Index: uint32(i)}.AppendTo(in)
		in = Message{KeepAlive: true}.AppendTo(in)
		in = Message{ID: Request, Index: uint32(i), Length: 16 << 10}.AppendTo(in)
	}
	lim := Limits{NumPieces: 8, PieceLength: 256 << 10, TotalLength: 2 << 20}
	d := NewDecoder(&loopReader{data: in}, lim)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Next", allocs)
	}
	// Large blocks reuse the decoder's own buffer after the first.
	big := Message{ID: Piece, Index: 1, Payload: make([]byte, 100<<10)}.AppendTo(nil)
	d = NewDecoder(&loopReader{data: big}, lim)
	d.Next()
	if allocs := testing.AllocsPerRun(100, func() { d.Next() }); allocs != 0 {
		t.Fatalf("%v allocations per large Next", allocs)
	}
}

func TestAllowedFastSet(t *testing.T) {
	var ih [20]byte
	for i := range ih {
		ih[i] = 0xaa
	}
	ip := net.ParseIP("80.4.4.200")
	for _, tt := range []struct {
		k    int
		want []uint32
	}{
		{7, []uint32{1059, 431, 808, 1217, 287, 376, 1188}},
		{9, []uint32{1059, 431, 808, 1217, 287, 376, 1188, 353, 508}},
	} {
		if got := AllowedFastSet(ip, ih, 1313, tt.k); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("k=%d: %v, want %v", tt.k, got, tt.want)
		}
	}
	// Same /24, same set; the 4-byte and 16-byte forms agree.
	if got := AllowedFastSet(net.ParseIP("80.4.4.1").To16(), ih, 1313, 7); got[0] != 1059 {
		t.Errorf("same /24 gave %v", got)
	}
	if got := AllowedFastSet(net.ParseIP("80.4.5.200"), ih, 1313, 7); got[0] == 1059 && got[1] == 431 {
		t.Errorf("other /24 gave the same set %v", got)
	}
	// k larger than the torrent gives every piece once.
	got := AllowedFastSet(ip, ih, 5, 10)
	if len(got) != 5 {
		t.Fatalf("k > numPieces: %v", got)
	}
	seen := map[uint32]bool{}
	for _, p := range got {
		if p >= 5 || seen[p] {
			t.Fatalf("k > numPieces: %v", got)
		}
		seen[p] = true
	}
	a := AllowedFastSet(net.ParseIP("2001:db8:1:2:3:4:5:6"), ih, 1313, 10)
	b := AllowedFastSet(net.ParseIP("2001:db8:1:2:ffff::1"), ih, 1313, 10)
	c := AllowedFastSet(net.ParseIP("2001:db8:1:3::1"), ih, 1313, 10)
	if len(a) != 10 || !reflect.DeepEqual(a, b) || reflect.DeepEqual(a, c) {
		t.Errorf("IPv6 /64 masking: %v %v %v", a, b, c)
	}
	if AllowedFastSet(nil, ih, 10, 3) != nil || AllowedFastSet(ip, ih, 0, 3) != nil || AllowedFastSet(ip, ih, 10, 0) != nil {
		t.Error("invalid input gave a set")
	}
}

// chunkReader returns its chunks one Read at a time.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	if len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestReady checks that Ready is true exactly when the next message is
// whole in the buffer: the stream arrives as a have and half a piece,
// then the rest of the piece, a keep-alive and a choke.
func TestReady(t *testing.T) {
	have := Message{ID: Have, Index: 3}.AppendTo(nil)
	piece := Message{ID: Piece, Index: 1, Begin: 0, Payload: bytes.Repeat([]byte{7}, 100)}.AppendTo(nil)
	rest := append(append([]byte{}, piece[50:]...), Message{KeepAlive: true}.AppendTo(nil)...)
	rest = Message{ID: Choke}.AppendTo(rest)
	d := NewDecoder(&chunkReader{chunks: [][]byte{append(have, piece[:50]...), rest}}, testLimits)
	steps := []struct {
		want  MessageID
		alive bool
		ready bool // Ready after this message
	}{
		{want: Have, ready: false},
		{want: Piece, ready: true},
		{alive: true, ready: true},
		{want: Choke, ready: false},
	}
	if d.Ready() {
		t.Fatal("Ready before anything was read")
	}
	for i, s := range steps {
		m, err := d.Next()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if m.KeepAlive != s.alive || (!s.alive && m.ID != s.want) {
			t.Fatalf("step %d: got %+v, want %v (keep-alive %v)", i, m, s.want, s.alive)
		}
		if got := d.Ready(); got != s.ready {
			t.Errorf("step %d (%v): Ready = %v, want %v", i, m.ID, got, s.ready)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("after the stream: %v, want io.EOF", err)
	}
	if d.Ready() {
		t.Error("Ready after an error")
	}
}
