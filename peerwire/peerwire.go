// Package peerwire implements the BitTorrent peer wire protocol of BEP 3
// together with the message formats of the Fast extension (BEP 6) and the
// extension protocol envelope (BEP 10): the handshake, a validating
// streaming message decoder, message encoding and peer id conventions
// (BEP 20).
//
// The package only frames and validates messages. Protocol state (who is
// choked, which requests are outstanding, whether the Fast or extension
// protocol was negotiated) belongs to the caller.
package peerwire

import (
	"fmt"
	"io"
)

// Protocol is the protocol string every BitTorrent handshake starts with,
// after its one-byte length.
const Protocol = "BitTorrent protocol"

// HandshakeLen is the size of a complete handshake on the wire.
const HandshakeLen = 1 + len(Protocol) + 8 + 20 + 20

// handshakeStartLen is the part of the handshake up to and including the
// info-hash, which is all a listener needs to pick the torrent.
const handshakeStartLen = 1 + len(Protocol) + 8 + 20

// ProtocolError reports a peer that broke the wire protocol. Every
// violation the package detects is a *ProtocolError, so the caller can log
// the reason and drop the connection without inspecting the message.
type ProtocolError struct {
	Msg string
}

// Error implements error.
func (e *ProtocolError) Error() string { return "peerwire: " + e.Msg }

func protoErrf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// Reserved is the eight reserved handshake bytes through which peers
// advertise protocol extensions.
type Reserved [8]byte

// SupportsFast reports the Fast extension bit of BEP 6.
func (r Reserved) SupportsFast() bool { return r[7]&0x04 != 0 }

// SupportsExtended reports the extension protocol bit of BEP 10.
func (r Reserved) SupportsExtended() bool { return r[5]&0x10 != 0 }

// SupportsDHT reports the DHT bit of BEP 5; such peers may send a port
// message.
func (r Reserved) SupportsDHT() bool { return r[7]&0x01 != 0 }

// SetFast advertises the Fast extension.
func (r *Reserved) SetFast() { r[7] |= 0x04 }

// SetExtended advertises the extension protocol.
func (r *Reserved) SetExtended() { r[5] |= 0x10 }

// SetDHT advertises a DHT node.
func (r *Reserved) SetDHT() { r[7] |= 0x01 }

// Handshake is the first thing each side of a connection sends.
type Handshake struct {
	Reserved Reserved
	InfoHash [20]byte
	PeerID   [20]byte
}

// WriteHandshake sends h in a single Write, so that on a TCP connection it
// normally leaves in one segment.
func WriteHandshake(w io.Writer, h Handshake) error {
	var b [HandshakeLen]byte
	b[0] = byte(len(Protocol))
	n := 1 + copy(b[1:], Protocol)
	n += copy(b[n:], h.Reserved[:])
	n += copy(b[n:], h.InfoHash[:])
	copy(b[n:], h.PeerID[:])
	if _, err := w.Write(b[:]); err != nil {
		return fmt.Errorf("peerwire: writing handshake: %w", err)
	}
	return nil
}

// ReadHandshakeStart reads the first 48 bytes of a handshake: everything up
// to the info-hash. A listener serving several torrents uses it to find the
// torrent before it answers; it then reads the peer id with ReadPeerID.
//
// The protocol length byte is checked before more is read, so a client
// speaking some other protocol is rejected at once instead of when the
// read deadline expires.
//
// r is read exactly as far as the handshake goes. If r is buffered, later
// messages must be read through the same buffer (NewDecoder reuses a
// *bufio.Reader that is large enough).
func ReadHandshakeStart(r io.Reader) (reserved Reserved, infoHash [20]byte, err error) {
	var b [handshakeStartLen]byte
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return reserved, infoHash, fmt.Errorf("peerwire: reading handshake: %w", err)
	}
	if b[0] != byte(len(Protocol)) {
		return reserved, infoHash, protoErrf("handshake protocol length %d at offset 0, want %d", b[0], len(Protocol))
	}
	if _, err := io.ReadFull(r, b[1:]); err != nil {
		return reserved, infoHash, fmt.Errorf("peerwire: reading handshake: %w", noEOF(err))
	}
	if p := b[1 : 1+len(Protocol)]; string(p) != Protocol {
		return reserved, infoHash, protoErrf("handshake protocol %q at offset 1, want %q", p, Protocol)
	}
	copy(reserved[:], b[1+len(Protocol):])
	copy(infoHash[:], b[1+len(Protocol)+8:])
	return reserved, infoHash, nil
}

// ReadPeerID reads the last 20 bytes of a handshake.
func ReadPeerID(r io.Reader) ([20]byte, error) {
	var id [20]byte
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return id, fmt.Errorf("peerwire: reading handshake peer id: %w", noEOF(err))
	}
	return id, nil
}

// ReadHandshake reads a complete handshake.
func ReadHandshake(r io.Reader) (Handshake, error) {
	var h Handshake
	var err error
	h.Reserved, h.InfoHash, err = ReadHandshakeStart(r)
	if err != nil {
		return h, err
	}
	h.PeerID, err = ReadPeerID(r)
	return h, err
}

// noEOF turns a clean EOF into ErrUnexpectedEOF for reads that happen in
// the middle of a structure, where stopping is never clean.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
