package peerwire

import (
	"encoding/binary"
	"strconv"
)

// MessageID is the one-byte type that starts every message but keep-alive.
type MessageID uint8

// Message types of BEP 3, the Fast extension (BEP 6), the DHT port
// message (BEP 5) and the extension protocol (BEP 10).
const (
	Choke         MessageID = 0
	Unchoke       MessageID = 1
	Interested    MessageID = 2
	NotInterested MessageID = 3
	Have          MessageID = 4
	Bitfield      MessageID = 5
	Request       MessageID = 6
	Piece         MessageID = 7
	Cancel        MessageID = 8
	Port          MessageID = 9
	Suggest       MessageID = 0x0d
	HaveAll       MessageID = 0x0e
	HaveNone      MessageID = 0x0f
	Reject        MessageID = 0x10
	AllowedFast   MessageID = 0x11
	Extended      MessageID = 20
)

// String names the message type for logs.
func (id MessageID) String() string {
	switch id {
	case Choke:
		return "choke"
	case Unchoke:
		return "unchoke"
	case Interested:
		return "interested"
	case NotInterested:
		return "not interested"
	case Have:
		return "have"
	case Bitfield:
		return "bitfield"
	case Request:
		return "request"
	case Piece:
		return "piece"
	case Cancel:
		return "cancel"
	case Port:
		return "port"
	case Suggest:
		return "suggest piece"
	case HaveAll:
		return "have all"
	case HaveNone:
		return "have none"
	case Reject:
		return "reject request"
	case AllowedFast:
		return "allowed fast"
	case Extended:
		return "extended"
	}
	return "unknown(" + strconv.Itoa(int(id)) + ")"
}

// Message is one decoded message, or one to encode. Only the fields that
// belong to ID are meaningful; the others are zero after decoding and
// ignored when encoding. A keep-alive is Message{KeepAlive: true}.
type Message struct {
	KeepAlive bool
	ID        MessageID
	// Index is the piece index of have, request, piece, cancel, reject,
	// suggest and allowed-fast messages.
	Index uint32
	// Begin is the byte offset inside the piece of request, piece, cancel
	// and reject messages.
	Begin uint32
	// Length is the block length of request, cancel and reject messages;
	// for piece messages it is len(Payload).
	Length uint32
	// Port is the DHT port of a port message.
	Port uint16
	// ExtendedID selects the BEP 10 extension message; 0 is the extension
	// handshake.
	ExtendedID uint8
	// Payload is the bitfield bytes, the piece block data or the extended
	// message body (after ExtendedID). See Decoder.Next for how long a
	// decoded payload stays valid.
	Payload []byte
}

// AppendTo appends the wire form of m, length prefix included, to b. It
// does not allocate when b has room for the message. Messages of unknown
// type are encoded as their ID followed by Payload.
func (m Message) AppendTo(b []byte) []byte {
	b = m.appendHeader(b)
	if m.hasPayload() {
		b = append(b, m.Payload...)
	}
	return b
}

// hasPayload reports whether m carries Payload on the wire.
func (m Message) hasPayload() bool {
	if m.KeepAlive {
		return false
	}
	switch m.ID {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone,
		Have, Suggest, AllowedFast, Request, Cancel, Reject, Port:
		return false
	}
	return true // bitfield, piece, extended and unknown types
}

// appendHeader appends everything of m's wire form except Payload, so
// that a writer can send large payloads without copying them.
func (m Message) appendHeader(b []byte) []byte {
	be := binary.BigEndian
	if m.KeepAlive {
		return be.AppendUint32(b, 0)
	}
	switch m.ID {
	case Choke, Unchoke, Interested, NotInterested, HaveAll, HaveNone:
		b = be.AppendUint32(b, 1)
		return append(b, byte(m.ID))
	case Have, Suggest, AllowedFast:
		b = be.AppendUint32(b, 5)
		b = append(b, byte(m.ID))
		return be.AppendUint32(b, m.Index)
	case Request, Cancel, Reject:
		b = be.AppendUint32(b, 13)
		b = append(b, byte(m.ID))
		b = be.AppendUint32(b, m.Index)
		b = be.AppendUint32(b, m.Begin)
		return be.AppendUint32(b, m.Length)
	case Port:
		b = be.AppendUint32(b, 3)
		b = append(b, byte(m.ID))
		return be.AppendUint16(b, m.Port)
	case Piece:
		b = be.AppendUint32(b, uint32(9+len(m.Payload)))
		b = append(b, byte(m.ID))
		b = be.AppendUint32(b, m.Index)
		return be.AppendUint32(b, m.Begin)
	case Extended:
		b = be.AppendUint32(b, uint32(2+len(m.Payload)))
		return append(b, byte(m.ID), m.ExtendedID)
	}
	b = be.AppendUint32(b, uint32(1+len(m.Payload)))
	return append(b, byte(m.ID))
}
