package peerwire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/sowerbt/sower/bitfield"
)

const (
	// DefaultMaxBlock is the largest request or piece block accepted when
	// Limits.MaxBlock is zero. Sower itself requests 16 KiB blocks and BEP 3
	// says clients drop peers that ask for more, but some clients do
	// request 32 KiB or more; 128 KiB tolerates them while keeping the
	// per-connection receive buffer small.
	DefaultMaxBlock = 128 << 10

	// MaxExtendedLen bounds the length prefix of a BEP 10 extended message.
	// The largest common ones are ut_metadata data messages (a 16 KiB
	// block plus a small dictionary) and ut_pex lists of a few KiB; 1 MiB
	// is far above both yet small enough to buffer.
	MaxExtendedLen = 1 << 20

	// decodeBufSize is the read buffer size. Messages that fit are
	// decoded in place without copying.
	decodeBufSize = 64 << 10
)

// Limits describes the torrent a connection is for, so the decoder can
// reject messages that cannot be valid for it.
type Limits struct {
	// NumPieces is the number of pieces; 0 means not known yet (a magnet
	// link before the metadata arrived). Then piece indices are not checked
	// and a bitfield of any length up to MaxExtendedLen is accepted.
	NumPieces int
	// PieceLength is the nominal piece size; 0 means unknown, and then
	// begin+length is not checked against the piece end.
	PieceLength int64
	// TotalLength is the torrent size, which makes the last piece shorter.
	// If it is 0 or inconsistent with NumPieces and PieceLength, the last
	// piece is taken to be PieceLength long.
	TotalLength int64
	// MaxBlock is the largest block a request, cancel, reject or piece may
	// carry; 0 means DefaultMaxBlock.
	MaxBlock uint32
}

// Decoder reads and validates a stream of messages. It is not safe for
// concurrent use; one goroutine per connection owns it.
type Decoder struct {
	r   *bufio.Reader
	lim Limits

	maxLen       int64  // largest legal length prefix
	maxBlock     int64  // effective MaxBlock
	lastPieceLen int64  // length of piece NumPieces-1, if known
	bitfieldLen  int64  // exact bitfield payload length, or -1 if unknown
	discard      int    // bytes of the previous message still buffered in r
	big          []byte // buffer for piece messages too large for r
	err          error  // sticky: the stream is unusable after any error
}

// NewDecoder returns a decoder reading from r with a 64 KiB buffer. If r
// is a *bufio.Reader at least that large (for instance the one the
// handshake was read through), it is used directly.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	d := &Decoder{r: bufio.NewReaderSize(r, decodeBufSize)}
	d.SetLimits(lim)
	return d
}

// SetLimits replaces the limits, typically once the metadata of a magnet
// download has arrived. It affects the messages read after it.
func (d *Decoder) SetLimits(lim Limits) {
	d.lim = lim
	d.maxBlock = int64(lim.MaxBlock)
	if d.maxBlock == 0 {
		d.maxBlock = DefaultMaxBlock
	}
	d.bitfieldLen = -1
	if lim.NumPieces > 0 {
		d.bitfieldLen = (int64(lim.NumPieces) + 7) / 8
	}
	d.maxLen = max(13+d.maxBlock, MaxExtendedLen, d.bitfieldLen+1)
	d.lastPieceLen = lim.PieceLength
	if lim.NumPieces > 0 && lim.PieceLength > 0 && lim.TotalLength > 0 {
		last := lim.TotalLength - lim.PieceLength*int64(lim.NumPieces-1)
		if last > 0 && last <= lim.PieceLength {
			d.lastPieceLen = last
		}
	}
}

// Next reads the next message. Messages of unknown type are skipped, as
// future extensions may send them; Next never returns them.
//
// The Payload of a Piece message aliases the decoder's buffer and is only
// valid until the next call to Next, so that receiving blocks costs no
// allocation: copy it out before calling Next again. Bitfield and Extended
// payloads are freshly allocated and belong to the caller.
//
// A peer that breaks the protocol gets a *ProtocolError. At a clean end of
// stream between messages Next returns io.EOF; inside a message,
// io.ErrUnexpectedEOF (wrapped). Errors are sticky: once Next fails it
// keeps returning the same error.
func (d *Decoder) Next() (Message, error) {
	if d.err != nil {
		return Message{}, d.err
	}
	m, err := d.next()
	if err != nil {
		d.err = err
	}
	return m, err
}

// Ready reports whether the next message (or keep-alive) is wholly in
// the read buffer, so that Next returns it without reading from the
// connection. A reader can then hand several messages on at once: one
// wake-up of whoever consumes them instead of one per message.
func (d *Decoder) Ready() bool {
	if d.err != nil {
		return false
	}
	buffered := d.r.Buffered() - d.discard
	if buffered < 4 {
		return false
	}
	hdr, err := d.r.Peek(d.discard + 4) // buffered already: cannot block
	if err != nil {
		return false
	}
	n := int64(binary.BigEndian.Uint32(hdr[d.discard:]))
	return 4+n <= int64(buffered)
}

func (d *Decoder) next() (Message, error) {
	if d.discard > 0 {
		// The bytes are buffered already, so this cannot fail.
		d.r.Discard(d.discard)
		d.discard = 0
	}
	for {
		hdr, err := d.r.Peek(4)
		if err != nil {
			if errors.Is(err, io.EOF) && len(hdr) == 0 {
				return Message{}, io.EOF
			}
			return Message{}, fmt.Errorf("peerwire: reading length prefix: %w", noEOF(err))
		}
		n := int64(binary.BigEndian.Uint32(hdr))
		if n == 0 {
			d.r.Discard(4)
			return Message{KeepAlive: true}, nil
		}
		if n > d.maxLen {
			return Message{}, protoErrf("message length %d exceeds limit %d", n, d.maxLen)
		}
		hdr, err = d.r.Peek(5)
		if err != nil {
			return Message{}, fmt.Errorf("peerwire: reading message type: %w", noEOF(err))
		}
		id := MessageID(hdr[4])
		if !known(id) {
			if _, err := d.r.Discard(int(4 + n)); err != nil {
				return Message{}, fmt.Errorf("peerwire: skipping %s message of length %d: %w", id, n, noEOF(err))
			}
			continue
		}
		if err := d.checkLen(id, n); err != nil {
			return Message{}, err
		}
		return d.decode(id, n)
	}
}

// known reports the message types the decoder understands.
func known(id MessageID) bool {
	return id <= Port || (id >= Suggest && id <= AllowedFast) || id == Extended
}

// checkLen validates the length prefix n for type id before the payload
// is read, so a lying peer costs no buffering.
func (d *Decoder) checkLen(id MessageID, n int64) error {
	var want int64
	switch id {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		want = 1
	case Have, Suggest, AllowedFast:
		want = 5
	case Request, Cancel, Reject:
		want = 13
	case Port:
		want = 3
	case Bitfield:
		if d.bitfieldLen >= 0 && n-1 != d.bitfieldLen {
			return protoErrf("bitfield of %d bytes, want %d for %d pieces", n-1, d.bitfieldLen, d.lim.NumPieces)
		}
		if n == 1 {
			return protoErrf("empty bitfield")
		}
		return nil
	case Piece:
		if n < 9 {
			return protoErrf("piece message length %d, want at least 9", n)
		}
		if n == 9 {
			return protoErrf("piece message with empty block")
		}
		if n-9 > d.maxBlock {
			return protoErrf("piece block of %d bytes exceeds limit %d", n-9, d.maxBlock)
		}
		return nil
	case Extended:
		if n < 2 {
			return protoErrf("extended message length %d, want at least 2", n)
		}
		if n > MaxExtendedLen {
			return protoErrf("extended message length %d exceeds limit %d", n, MaxExtendedLen)
		}
		return nil
	}
	if n != want {
		return protoErrf("%s message length %d, want %d", id, n, want)
	}
	return nil
}

// decode reads the body of a message whose length prefix n was validated.
func (d *Decoder) decode(id MessageID, n int64) (Message, error) {
	body, err := d.body(id, n)
	if err != nil {
		return Message{}, err
	}
	be := binary.BigEndian
	m := Message{ID: id}
	switch id {
	case Have, Suggest, AllowedFast:
		m.Index = be.Uint32(body)
		if err := d.checkIndex(id, m.Index); err != nil {
			return Message{}, err
		}
	case Request, Cancel, Reject:
		m.Index, m.Begin, m.Length = be.Uint32(body), be.Uint32(body[4:]), be.Uint32(body[8:])
		if m.Length == 0 {
			return Message{}, protoErrf("%s for piece %d begin %d with length 0", id, m.Index, m.Begin)
		}
		if int64(m.Length) > d.maxBlock {
			return Message{}, protoErrf("%s for piece %d length %d exceeds limit %d", id, m.Index, m.Length, d.maxBlock)
		}
		if err := d.checkBlock(id, m.Index, m.Begin, m.Length); err != nil {
			return Message{}, err
		}
	case Piece:
		m.Index, m.Begin = be.Uint32(body), be.Uint32(body[4:])
		m.Payload = body[8:]
		m.Length = uint32(len(m.Payload))
		if err := d.checkBlock(id, m.Index, m.Begin, m.Length); err != nil {
			return Message{}, err
		}
	case Port:
		m.Port = be.Uint16(body)
	case Bitfield:
		if d.lim.NumPieces > 0 {
			if _, err := bitfield.FromBytes(body, d.lim.NumPieces); err != nil {
				return Message{}, protoErrf("invalid bitfield for %d pieces: %v", d.lim.NumPieces, err)
			}
		}
		m.Payload = body
	case Extended:
		m.ExtendedID = body[0]
		m.Payload = body[1:]
	}
	return m, nil
}

// body returns the n-1 bytes after the message type. Piece blocks stay in
// the read buffer (or the reused big buffer); bitfield and extended bodies
// are copied so the caller may keep them.
func (d *Decoder) body(id MessageID, n int64) ([]byte, error) {
	total := int(4 + n)
	if total <= d.r.Size() {
		b, err := d.r.Peek(total)
		if err != nil {
			return nil, fmt.Errorf("peerwire: reading %s message of length %d: %w", id, n, noEOF(err))
		}
		d.discard = total
		b = b[5:total:total] // capped so appending cannot scribble on the buffer
		if id == Bitfield || id == Extended {
			b = append([]byte(nil), b...)
		}
		return b, nil
	}
	d.r.Discard(5) // peeked already
	var b []byte
	if id == Piece {
		if int64(cap(d.big)) < n-1 {
			d.big = make([]byte, n-1)
		}
		b = d.big[:n-1]
	} else {
		b = make([]byte, n-1)
	}
	if _, err := io.ReadFull(d.r, b); err != nil {
		return nil, fmt.Errorf("peerwire: reading %s message of length %d: %w", id, n, noEOF(err))
	}
	return b, nil
}

// checkIndex rejects piece indices past the end of the torrent.
func (d *Decoder) checkIndex(id MessageID, index uint32) error {
	if d.lim.NumPieces > 0 && int64(index) >= int64(d.lim.NumPieces) {
		return protoErrf("%s index %d out of range (%d pieces)", id, index, d.lim.NumPieces)
	}
	return nil
}

// checkBlock rejects blocks outside their piece.
func (d *Decoder) checkBlock(id MessageID, index, begin, length uint32) error {
	if err := d.checkIndex(id, index); err != nil {
		return err
	}
	size := d.lim.PieceLength
	if d.lim.NumPieces > 0 && int64(index) == int64(d.lim.NumPieces)-1 {
		size = d.lastPieceLen
	}
	if size > 0 && int64(begin)+int64(length) > size {
		return protoErrf("%s for piece %d block [%d,%d) past piece end %d", id, index, begin, int64(begin)+int64(length), size)
	}
	return nil
}
