package metadata

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/metainfo"
)

// BlockSize is the size of every metadata piece but the last (BEP 9).
const BlockSize = 16 << 10

// MaxSize is the hard ceiling on a metadata size this package accepts in a
// message or an Assembler. An info dictionary is part of a .torrent file,
// and Sower refuses .torrent files larger than metainfo.MaxFileSize, so
// a larger claim can only be a lie meant to make us allocate.
const MaxSize = metainfo.MaxFileSize

// ExtensionName is the name under which peers advertise the metadata
// extension in the "m" dictionary of the BEP 10 handshake.
const ExtensionName = "ut_metadata"

// Message types of BEP 9.
const (
	TypeRequest = 0
	TypeData    = 1
	TypeReject  = 2
)

// ErrUnknownType is returned (wrapped) by ParseMsg for a well-formed message
// whose msg_type BEP 9 does not define. The BEP says such messages must be
// ignored, so a caller should skip them rather than drop the peer; the
// returned Msg still carries Type and Piece.
var ErrUnknownType = errors.New("unknown ut_metadata msg_type")

// Msg is one ut_metadata message: the payload of a BEP 10 extended message,
// without the extended message id.
type Msg struct {
	// Type is TypeRequest, TypeData or TypeReject.
	Type int
	// Piece is the index of the 16 KiB metadata piece the message is about.
	Piece int
	// TotalSize is the metadata size; only data messages carry it.
	TotalSize int
	// Data is the piece itself for data messages. After ParseMsg it aliases
	// the payload.
	Data []byte
}

// msgDict is the bencoded part of a message. Pointers tell a missing key
// from a zero value, so that a message without "piece" is an error rather
// than a request for piece 0.
type msgDict struct {
	MsgType   *int64 `bencode:"msg_type"`
	Piece     *int64 `bencode:"piece"`
	TotalSize *int64 `bencode:"total_size"`
}

// PieceCount returns how many pieces metadata of size bytes has.
func PieceCount(size int) int {
	if size <= 0 {
		return 0
	}
	return (size + BlockSize - 1) / BlockSize
}

// PieceLen returns the length of piece of metadata of size bytes: BlockSize
// for all but the last piece. It returns 0 for a piece out of range.
func PieceLen(size, piece int) int {
	if piece < 0 || piece >= PieceCount(size) {
		return 0
	}
	return min(BlockSize, size-piece*BlockSize)
}

// ParseMsg decodes a ut_metadata message. The dictionary must be strict
// bencode (sorted, unique keys) with integer msg_type and piece; a data
// message must carry a total_size in 1..MaxSize, a piece index inside it
// and exactly the bytes that piece has (BEP 9 requires every piece but the
// last to be full). Requests and rejects must not be followed by data.
// Unknown keys are ignored, as BEP 10 asks for extensibility; an unknown
// msg_type gives ErrUnknownType.
func ParseMsg(payload []byte) (Msg, error) {
	if len(payload) == 0 {
		return Msg{}, errors.New("ut_metadata: empty message")
	}
	if payload[0] != 'd' {
		return Msg{}, fmt.Errorf("ut_metadata: message starts with %q at offset 0, want a dictionary", payload[0])
	}
	dec := bencode.NewDecoder(bytes.NewReader(payload))
	dec.MaxValueSize = len(payload)
	var d msgDict
	if err := dec.Decode(&d); err != nil {
		return Msg{}, fmt.Errorf("ut_metadata: %w", err)
	}
	end := int(dec.InputOffset())
	if d.MsgType == nil {
		return Msg{}, errors.New("ut_metadata: missing key msg_type")
	}
	if d.Piece == nil {
		return Msg{}, errors.New("ut_metadata: missing key piece")
	}
	if *d.Piece < 0 || *d.Piece >= int64(PieceCount(MaxSize)) {
		return Msg{}, fmt.Errorf("ut_metadata: piece %d out of range 0..%d", *d.Piece, PieceCount(MaxSize)-1)
	}
	m := Msg{Piece: int(*d.Piece)}
	if *d.MsgType < 0 || *d.MsgType > TypeReject {
		// Clamp so that a huge value cannot overflow int on 32-bit systems.
		m.Type = int(max(min(*d.MsgType, 1<<30), -1))
		return m, fmt.Errorf("ut_metadata: msg_type %d: %w", *d.MsgType, ErrUnknownType)
	}
	m.Type = int(*d.MsgType)
	rest := payload[end:]
	if m.Type != TypeData {
		if len(rest) != 0 {
			return Msg{}, fmt.Errorf("ut_metadata: %d bytes after the dictionary of a msg_type %d message at offset %d", len(rest), m.Type, end)
		}
		return m, nil
	}
	if d.TotalSize == nil {
		return Msg{}, errors.New("ut_metadata: data message without total_size")
	}
	if *d.TotalSize <= 0 || *d.TotalSize > MaxSize {
		return Msg{}, fmt.Errorf("ut_metadata: total_size %d out of range 1..%d", *d.TotalSize, MaxSize)
	}
	m.TotalSize = int(*d.TotalSize)
	if m.Piece >= PieceCount(m.TotalSize) {
		return Msg{}, fmt.Errorf("ut_metadata: piece %d beyond the %d pieces of total_size %d", m.Piece, PieceCount(m.TotalSize), m.TotalSize)
	}
	if want := PieceLen(m.TotalSize, m.Piece); len(rest) != want {
		return Msg{}, fmt.Errorf("ut_metadata: piece %d has %d data bytes (from offset %d), want %d", m.Piece, len(rest), end, want)
	}
	m.Data = rest
	return m, nil
}

// Append appends the wire form of m (the bencoded dictionary, then the
// piece for a data message) to b. It checks m as ParseMsg checks what it
// reads, so that we never send a message a strict peer would refuse.
func (m Msg) Append(b []byte) ([]byte, error) {
	if m.Piece < 0 || m.Piece >= PieceCount(MaxSize) {
		return b, fmt.Errorf("ut_metadata: piece %d out of range 0..%d", m.Piece, PieceCount(MaxSize)-1)
	}
	d := msgDict{MsgType: new(int64(m.Type)), Piece: new(int64(m.Piece))}
	switch m.Type {
	case TypeRequest, TypeReject:
		if len(m.Data) != 0 {
			return b, fmt.Errorf("ut_metadata: msg_type %d cannot carry data", m.Type)
		}
	case TypeData:
		if m.TotalSize <= 0 || m.TotalSize > MaxSize {
			return b, fmt.Errorf("ut_metadata: total_size %d out of range 1..%d", m.TotalSize, MaxSize)
		}
		want := PieceLen(m.TotalSize, m.Piece)
		if want == 0 {
			return b, fmt.Errorf("ut_metadata: piece %d beyond the %d pieces of total_size %d", m.Piece, PieceCount(m.TotalSize), m.TotalSize)
		}
		if len(m.Data) != want {
			return b, fmt.Errorf("ut_metadata: piece %d has %d data bytes, want %d", m.Piece, len(m.Data), want)
		}
		d.TotalSize = new(int64(m.TotalSize))
	default:
		return b, fmt.Errorf("ut_metadata: msg_type %d: %w", m.Type, ErrUnknownType)
	}
	out, err := bencode.Append(b, d)
	if err != nil {
		return b, fmt.Errorf("ut_metadata: encoding: %w", err)
	}
	return append(out, m.Data...), nil
}
