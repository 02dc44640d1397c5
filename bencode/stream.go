package bencode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// DefaultMaxValueSize is the largest encoded value a Decoder accepts unless
// its MaxValueSize says otherwise. It comfortably fits large metainfo files
// while bounding what a remote peer can make us buffer.
const DefaultMaxValueSize = 16 << 20

const (
	// minRead is the smallest buffer a Decoder reads into, so that a
	// stream of small values does not cost one Read call per token.
	minRead = 4096
	// maxEmptyReads is how many consecutive (0, nil) reads are tolerated
	// before giving up with io.ErrNoProgress.
	maxEmptyReads = 100
	// maxIntToken is the longest possible integer token, "i-9223372036854775808e".
	maxIntToken = 22
)

// Decoder reads a sequence of bencode values from a stream, such as a
// network connection, one value per Decode call. Values are written back to
// back with no separators. It buffers input: it may read up to a few
// kilobytes past the end of the current value, which Buffered returns.
type Decoder struct {
	// Options controls strictness as for DecodeOptions.Unmarshal.
	Options DecodeOptions
	// MaxValueSize is the largest encoded size of one value in bytes; zero
	// means DefaultMaxValueSize. A value announced to be larger (by a
	// string length prefix, or by its bytes so far) is rejected before it
	// is buffered.
	MaxValueSize int

	r     io.Reader
	buf   []byte // buf[start:] is read but not yet decoded
	start int
	pos   int64 // stream offset of buf[0]
	rerr  error // error from the last Read, reported once the buffer is used up
	err   error // sticky error: once the stream is broken, Decode keeps failing
}

// NewDecoder returns a Decoder reading from r with strict options and the
// default size limit.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: r}
}

// Decode reads the next value from the stream and stores it in v, as
// Unmarshal does. At a clean end of stream (no bytes of a further value) it
// returns io.EOF. Offsets in errors count from the start of the stream. A
// syntax or read error breaks the stream and is returned by every later
// call; an *UnmarshalTypeError does not, the value has been consumed and
// the next call continues with the following value.
//
// Unmarshaler methods get a slice of the Decoder's buffer, which is reused
// by the next call.
func (dec *Decoder) Decode(v any) error {
	if dec.err != nil {
		return dec.err
	}
	if rv := reflect.ValueOf(v); rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &InvalidUnmarshalError{Type: reflect.TypeOf(v)}
	}
	n, err := dec.scanValue()
	if err != nil {
		dec.err = err
		return err
	}
	data := dec.buf[dec.start : dec.start+n]
	base := dec.pos + int64(dec.start)
	dec.start += n
	err = dec.Options.unmarshal(data, v, base)
	if _, ok := errors.AsType[*SyntaxError](err); ok {
		dec.err = err
	}
	return err
}

// InputOffset returns the stream offset just past the last decoded value.
func (dec *Decoder) InputOffset() int64 {
	return dec.pos + int64(dec.start)
}

// Buffered returns the bytes read from the stream but not yet decoded. The
// reader is valid until the next call to Decode.
func (dec *Decoder) Buffered() io.Reader {
	return bytes.NewReader(dec.buf[dec.start:])
}

func (dec *Decoder) maxValueSize() int {
	if dec.MaxValueSize <= 0 {
		return DefaultMaxValueSize
	}
	return dec.MaxValueSize
}

// scanValue reads until buf[start:] holds one complete value and returns
// its length. The full validation happens afterwards in Unmarshal; the
// scanner only finds the end of the value and enforces the limits that
// protect the buffer.
func (dec *Decoder) scanValue() (int, error) {
	if have := len(dec.buf) - dec.start; cap(dec.buf) > maxRetainedBuffer && have <= minRead {
		// Release a buffer that a rare large value grew, rather than
		// pinning it for the stream's lifetime.
		nb := make([]byte, have, minRead)
		copy(nb, dec.buf[dec.start:])
		dec.pos += int64(dec.start)
		dec.buf, dec.start = nb, 0
	}
	s := scanner{
		base:     dec.pos + int64(dec.start),
		maxDepth: dec.Options.maxDepth(),
		limit:    dec.maxValueSize(),
	}
	for empty := 0; ; {
		b := dec.buf[dec.start:]
		need, err := s.scan(b)
		if err != nil {
			return 0, err
		}
		if need == 0 {
			return s.pos, nil
		}
		if dec.rerr != nil {
			if errors.Is(dec.rerr, io.EOF) {
				if len(b) == 0 {
					return 0, io.EOF
				}
				return 0, &SyntaxError{
					Offset: s.base + int64(len(b)),
					Msg:    "unexpected end of input",
					err:    io.ErrUnexpectedEOF,
				}
			}
			return 0, fmt.Errorf("bencode: reading value at offset %d: %w", s.base+int64(len(b)), dec.rerr)
		}
		n := dec.fill(need)
		if n > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads && dec.rerr == nil {
			dec.rerr = io.ErrNoProgress
		}
	}
}

// fill makes room for at least need unread bytes (need never exceeds the
// value size limit and always exceeds what is buffered) and performs one
// Read. Growth is by doubling rather than straight to need, so a length
// prefix alone cannot make the Decoder commit memory; the data must arrive.
func (dec *Decoder) fill(need int) int {
	if len(dec.buf) == cap(dec.buf) || dec.start+need > cap(dec.buf) {
		have := len(dec.buf) - dec.start
		if need > cap(dec.buf) {
			nb := make([]byte, have, max(minRead, min(need, 2*cap(dec.buf))))
			copy(nb, dec.buf[dec.start:])
			dec.buf = nb
		} else {
			// Moving the unread bytes to the front frees enough room.
			dec.buf = dec.buf[:copy(dec.buf, dec.buf[dec.start:])]
		}
		dec.pos += int64(dec.start)
		dec.start = 0
	}
	n, err := dec.r.Read(dec.buf[len(dec.buf):cap(dec.buf)])
	if n < 0 || n > cap(dec.buf)-len(dec.buf) {
		dec.rerr = fmt.Errorf("bencode: reader returned invalid count %d", n)
		return 0
	}
	dec.buf = dec.buf[:len(dec.buf)+n]
	if err != nil {
		dec.rerr = err
	}
	return n
}

// scanner finds the end of one value in a buffer that grows between calls.
// It works token by token and resumes at the first incomplete token, so
// each byte is examined a bounded number of times no matter how the input
// is split into reads.
type scanner struct {
	pos      int // length of the complete tokens scanned so far
	depth    int
	base     int64 // stream offset of the value, for errors
	maxDepth int
	limit    int // maximum size of the value
}

func (s *scanner) errorAt(off int, msg string) error {
	return &SyntaxError{Offset: s.base + int64(off), Msg: msg}
}

// scan advances over the complete tokens in b, which holds the value's
// bytes read so far. It returns 0 once the value is complete (its length is
// s.pos), or else how many bytes b must hold before scanning can progress.
func (s *scanner) scan(b []byte) (int, error) {
	tooLarge := func(off int) error {
		return s.errorAt(off, fmt.Sprintf("value larger than the limit of %d bytes", s.limit))
	}
	for {
		if s.pos >= len(b) {
			if s.pos+1 > s.limit {
				return 0, tooLarge(s.pos)
			}
			return s.pos + 1, nil
		}
		switch c := b[s.pos]; {
		case c == 'i':
			j := s.pos + 1
			for ; j < len(b) && b[j] != 'e'; j++ {
				if !isDigit(b[j]) && !(b[j] == '-' && j == s.pos+1) {
					return 0, s.errorAt(j, fmt.Sprintf("invalid byte %q in integer", b[j]))
				}
				if j-s.pos >= maxIntToken {
					return 0, s.errorAt(s.pos, "integer overflows int64")
				}
			}
			if j+1 > s.limit {
				return 0, tooLarge(s.pos)
			}
			if j >= len(b) {
				return j + 1, nil
			}
			s.pos = j + 1
		case isDigit(c):
			j, n := s.pos, 0
			for ; j < len(b) && b[j] != ':'; j++ {
				if !isDigit(b[j]) {
					return 0, s.errorAt(j, fmt.Sprintf("invalid byte %q in string length", b[j]))
				}
				n = n*10 + int(b[j]-'0')
				if n > s.limit {
					return 0, tooLarge(s.pos)
				}
			}
			if j >= len(b) {
				if j+1 > s.limit {
					return 0, tooLarge(s.pos)
				}
				return j + 1, nil
			}
			end := j + 1 + n
			if end > s.limit {
				return 0, tooLarge(s.pos)
			}
			if end > len(b) {
				return end, nil
			}
			s.pos = end
		case s.pos+1 > s.limit:
			return 0, tooLarge(s.pos)
		case c == 'l' || c == 'd':
			if s.depth >= s.maxDepth {
				return 0, s.errorAt(s.pos, fmt.Sprintf("nesting deeper than %d levels", s.maxDepth))
			}
			s.depth++
			s.pos++
		case c == 'e':
			if s.depth == 0 {
				return 0, s.errorAt(s.pos, "unexpected 'e' where a value was expected")
			}
			s.depth--
			s.pos++
		default:
			return 0, s.errorAt(s.pos, fmt.Sprintf("invalid byte %q at start of value", c))
		}
		if s.depth == 0 {
			return 0, nil
		}
	}
}

// Encoder writes bencode values to a stream, one Write call per value, so a
// failed encoding never leaves a partial value on the stream.
type Encoder struct {
	w   io.Writer
	buf []byte
}

// NewEncoder returns an Encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w}
}

// maxRetainedBuffer is the largest buffer a Decoder or Encoder keeps for
// reuse; a rare huge value should not pin its memory forever.
const maxRetainedBuffer = 1 << 20

// Encode writes the canonical encoding of v, as Marshal produces it.
func (enc *Encoder) Encode(v any) error {
	b, err := Append(enc.buf[:0], v)
	if err != nil {
		return err
	}
	if cap(b) <= maxRetainedBuffer {
		enc.buf = b
	} else {
		enc.buf = nil
	}
	if _, err := enc.w.Write(b); err != nil {
		return fmt.Errorf("bencode: writing value: %w", err)
	}
	return nil
}
