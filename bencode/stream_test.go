package bencode

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const streamInput = "i1e3:abcli1eed1:ai2ee0:le" + "d4:infod6:lengthi5eee"

var streamWant = []any{
	int64(1), "abc", []any{int64(1)}, map[string]any{"a": int64(2)}, "", []any{},
	map[string]any{"info": map[string]any{"length": int64(5)}},
}

func decodeAll(t *testing.T, dec *Decoder) []any {
	t.Helper()
	var got []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("Decode after %d values: %v", len(got), err)
		}
		got = append(got, v)
	}
}

func TestDecoderStream(t *testing.T) {
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return strings.NewReader(streamInput) },
		"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(streamInput)) },
		"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(streamInput)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(strings.NewReader(streamInput)) },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			dec := NewDecoder(r())
			got := decodeAll(t, dec)
			if !reflect.DeepEqual(got, streamWant) {
				t.Fatalf("got %#v, want %#v", got, streamWant)
			}
			if dec.InputOffset() != int64(len(streamInput)) {
				t.Fatalf("InputOffset = %d, want %d", dec.InputOffset(), len(streamInput))
			}
			// EOF is sticky.
			var v any
			if err := dec.Decode(&v); err != io.EOF {
				t.Fatalf("Decode after EOF = %v", err)
			}
		})
	}
}

func TestDecoderLargeValueOneByte(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	in, err := Marshal(map[string]any{"pieces": payload, "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	in = append(in, "i7e"...)
	dec := NewDecoder(iotest.OneByteReader(bytes.NewReader(in)))
	var v struct {
		N      int    `bencode:"n"`
		Pieces []byte `bencode:"pieces"`
	}
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.N != 1 || !bytes.Equal(v.Pieces, payload) {
		t.Fatalf("decoded n=%d, %d piece bytes", v.N, len(v.Pieces))
	}
	var n int
	if err := dec.Decode(&n); err != nil || n != 7 {
		t.Fatalf("second value: %d %v", n, err)
	}
}

func TestDecoderReleasesLargeBuffer(t *testing.T) {
	big, err := Marshal(bytes.Repeat([]byte{'x'}, 2*maxRetainedBuffer))
	if err != nil {
		t.Fatal(err)
	}
	// One reader, so the small values may arrive in the same Read as the
	// end of the big one.
	dec := NewDecoder(bytes.NewReader(append(big, "i1ei2e"...)))
	var s string
	if err := dec.Decode(&s); err != nil || len(s) != 2*maxRetainedBuffer {
		t.Fatalf("big value: %d bytes, %v", len(s), err)
	}
	var n int
	if err := dec.Decode(&n); err != nil || n != 1 {
		t.Fatalf("after big value: %d %v", n, err)
	}
	if cap(dec.buf) > maxRetainedBuffer {
		t.Fatalf("Decoder still holds a %d-byte buffer", cap(dec.buf))
	}
	if err := dec.Decode(&n); err != nil || n != 2 {
		t.Fatalf("after big value: %d %v", n, err)
	}
	if dec.InputOffset() != int64(len(big)+6) {
		t.Fatalf("InputOffset = %d, want %d", dec.InputOffset(), len(big)+6)
	}
}

// countingReader counts the bytes handed out.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestDecoderReadsBoundedAhead(t *testing.T) {
	src := &countingReader{r: strings.NewReader(strings.Repeat("i1e", 1<<20))}
	dec := NewDecoder(src)
	var n int
	if err := dec.Decode(&n); err != nil || n != 1 {
		t.Fatalf("Decode = %d, %v", n, err)
	}
	if src.n > minRead {
		t.Fatalf("read %d bytes for a 3-byte value, want at most %d", src.n, minRead)
	}
	if dec.InputOffset() != 3 {
		t.Fatalf("InputOffset = %d", dec.InputOffset())
	}
	rest, _ := io.ReadAll(dec.Buffered())
	if len(rest) != src.n-3 || !strings.HasPrefix(string(rest), "i1ei1e") {
		t.Fatalf("Buffered holds %d bytes %.12q, want %d", len(rest), rest, src.n-3)
	}
}

// endless yields the same byte forever.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

func TestDecoderSizeLimit(t *testing.T) {
	// A length prefix over the limit fails before the data is read,
	// even though the data would never end.
	src := &countingReader{r: io.MultiReader(strings.NewReader("l4:spam100000000:"), endless('x'))}
	dec := NewDecoder(src)
	dec.MaxValueSize = 1 << 20
	var v any
	err := dec.Decode(&v)
	wantSyntax(t, err, 7, "value larger than the limit of 1048576 bytes")
	if src.n > minRead {
		t.Fatalf("read %d bytes before rejecting", src.n)
	}
	// The error is sticky.
	if err2 := dec.Decode(&v); err2 != err {
		t.Fatalf("second Decode = %v, want the same error", err2)
	}

	// A value that grows past the limit token by token is cut off too.
	dec = NewDecoder(io.MultiReader(strings.NewReader("l"), strings.NewReader(strings.Repeat("i1e", 1000))))
	dec.MaxValueSize = 100
	wantSyntax(t, dec.Decode(&v), 100, "value larger than the limit of 100 bytes")
	// An endless integer is refused once it is longer than any int64.
	dec = NewDecoder(io.MultiReader(strings.NewReader("i"), endless('1')))
	wantSyntax(t, dec.Decode(&v), 0, "integer overflows int64")
	// Deep nesting is refused while scanning, before the value is complete.
	dec = NewDecoder(endless('l'))
	wantSyntax(t, dec.Decode(&v), 64, "nesting deeper than 64")
	dec = NewDecoder(endless('l'))
	dec.Options.MaxDepth = 1 << 30 // clamped
	wantSyntax(t, dec.Decode(&v), maxMaxDepth, "nesting deeper than 10000")

	// Values at the limit are fine.
	in := "10:0123456789"
	dec = NewDecoder(strings.NewReader(in + in))
	dec.MaxValueSize = len(in)
	for range 2 {
		if err := dec.Decode(&v); err != nil || v != "0123456789" {
			t.Fatalf("value at the limit: %v %v", v, err)
		}
	}
}

func TestDecoderErrors(t *testing.T) {
	var v any
	// Truncated stream.
	dec := NewDecoder(iotest.OneByteReader(strings.NewReader("i1eli1e")))
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	err := dec.Decode(&v)
	wantSyntax(t, err, 7, "unexpected end of input")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncation does not wrap io.ErrUnexpectedEOF: %v", err)
	}
	// Offsets in later values count from the start of the stream, and
	// strictness violations found by the full check are sticky.
	dec = NewDecoder(strings.NewReader("i1ei03ei2e"))
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	err = dec.Decode(&v)
	wantSyntax(t, err, 4, "leading zero")
	if dec.Decode(&v) != err {
		t.Fatal("syntax error not sticky")
	}
	// Unsorted keys follow the Options.
	dec = NewDecoder(strings.NewReader("d1:bi1e1:ai2eed1:bi1e1:ai2ee"))
	dec.Options.AllowUnsortedKeys = true
	if got := decodeAll(t, dec); len(got) != 2 {
		t.Fatalf("decoded %d values", len(got))
	}
	dec = NewDecoder(strings.NewReader("d1:bi1e1:ai2ee"))
	wantSyntax(t, dec.Decode(&v), 7, "not sorted")
	// Scanner-level errors.
	for in, off := range map[string]int64{"x": 0, "e": 0, "li1xe": 3, "l1x:e": 2} {
		dec = NewDecoder(strings.NewReader(in))
		var se *SyntaxError
		if err := dec.Decode(&v); !errors.As(err, &se) || se.Offset != off {
			t.Errorf("Decode(%q) = %v, want syntax error at %d", in, err, off)
		}
	}
	// A type error leaves the stream usable.
	dec = NewDecoder(strings.NewReader("3:abci5e"))
	var n int
	var te *UnmarshalTypeError
	if err := dec.Decode(&n); !errors.As(err, &te) {
		t.Fatalf("got %v, want type error", err)
	}
	if err := dec.Decode(&n); err != nil || n != 5 {
		t.Fatalf("after type error: %d %v", n, err)
	}
	// Read errors are reported with the offset and kept.
	boom := errors.New("boom")
	dec = NewDecoder(io.MultiReader(strings.NewReader("li1e"), iotest.ErrReader(boom)))
	err = dec.Decode(&v)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "offset 4") {
		t.Fatalf("read error: %v", err)
	}
	// A reader that never makes progress.
	dec = NewDecoder(stuckReader{})
	if err := dec.Decode(&v); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("stuck reader: %v", err)
	}
	// Bad destinations are refused without consuming input.
	dec = NewDecoder(strings.NewReader("i1e"))
	var ie *InvalidUnmarshalError
	if err := dec.Decode(n); !errors.As(err, &ie) {
		t.Fatalf("non-pointer: %v", err)
	}
	if err := dec.Decode(&n); err != nil || n != 1 {
		t.Fatalf("after invalid destination: %d %v", n, err)
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }
