package utp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Packet types (BEP 29).
const (
	stData  = 0
	stFin   = 1
	stState = 2
	stReset = 3
	stSyn   = 4
)

// Extension types. extSack is BEP 29's selective ack. extMaxPacket and
// extPad are Sower's: BEP 29 says receivers skip extensions they do not
// know, so other implementations ignore them.
const (
	extSack      = 1
	extMaxPacket = 0x53 // 4 bytes: the largest datagram the sender reads
	extPad       = 0x50 // padding that makes a packet an MTU probe
)

// headerLen is the size of the fixed uTP header.
const headerLen = 20

var (
	errShort      = errors.New("utp: packet shorter than a header")
	errVersion    = errors.New("utp: not version 1")
	errType       = errors.New("utp: unknown packet type")
	errExtension  = errors.New("utp: extension runs past the packet")
	errSackLength = errors.New("utp: empty selective ack")
)

// header is the fixed part of a packet.
type header struct {
	typ    uint8
	ext    uint8 // the first extension's type, 0 for none
	connID uint16
	ts     uint32 // sender's clock, microseconds
	tsDiff uint32 // sender's last one-way delay sample, microseconds
	wnd    uint32 // sender's free receive buffer, bytes
	seq    uint16
	ack    uint16
}

// packet is a parsed datagram. Its slices point into the datagram.
type packet struct {
	header
	sack      []byte // selective ack bitmask, nil if absent
	maxPacket uint32 // extMaxPacket's value, 0 if absent
	payload   []byte
}

// IsPacket reports whether a datagram looks like uTP: at least a header
// long, version 1 in the low nibble of its first byte and a known type in
// the high nibble. Bencoded KRPC (the DHT) starts with 'd' (0x64), whose low
// nibble is 4, so the two never mix.
func IsPacket(b []byte) bool {
	return len(b) >= headerLen && b[0]&0x0f == 1 && b[0]>>4 <= stSyn
}

// parsePacket decodes b. It never panics and keeps nothing beyond b.
func parsePacket(b []byte) (packet, error) {
	var p packet
	if len(b) < headerLen {
		return p, errShort
	}
	if b[0]&0x0f != 1 {
		return p, errVersion
	}
	p.typ = b[0] >> 4
	if p.typ > stSyn {
		return p, fmt.Errorf("%w %d", errType, p.typ)
	}
	p.ext = b[1]
	p.connID = binary.BigEndian.Uint16(b[2:])
	p.ts = binary.BigEndian.Uint32(b[4:])
	p.tsDiff = binary.BigEndian.Uint32(b[8:])
	p.wnd = binary.BigEndian.Uint32(b[12:])
	p.seq = binary.BigEndian.Uint16(b[16:])
	p.ack = binary.BigEndian.Uint16(b[18:])
	rest := b[headerLen:]
	for ext := p.ext; ext != 0; {
		if len(rest) < 2 {
			return p, errExtension
		}
		next, n := rest[0], int(rest[1])
		if len(rest) < 2+n {
			return p, errExtension
		}
		body := rest[2 : 2+n]
		switch ext {
		case extSack:
			// BEP 29 asks for multiples of 4 bytes, but libtorrent sends
			// as many bytes as its bitmask needs (1 to 32).
			if n == 0 {
				return p, errSackLength
			}
			p.sack = body
		case extMaxPacket:
			if n == 4 {
				p.maxPacket = binary.BigEndian.Uint32(body)
			}
		}
		rest = rest[2+n:]
		ext = next
	}
	if p.typ == stData || p.typ == stFin {
		p.payload = rest
	}
	return p, nil
}

// putHeader writes h at the start of b (at least headerLen long).
func putHeader(b []byte, h *header) {
	b[0] = h.typ<<4 | 1
	b[1] = h.ext
	binary.BigEndian.PutUint16(b[2:], h.connID)
	binary.BigEndian.PutUint32(b[4:], h.ts)
	binary.BigEndian.PutUint32(b[8:], h.tsDiff)
	binary.BigEndian.PutUint32(b[12:], h.wnd)
	binary.BigEndian.PutUint16(b[16:], h.seq)
	binary.BigEndian.PutUint16(b[18:], h.ack)
}

// padLen is the size of the padding extensions appendPad writes for n
// bytes: n itself, except that one byte cannot be padded and takes two.
func padLen(n int) int {
	if n == 1 {
		return 2
	}
	return n
}

// appendPad appends a chain of extPad extensions totalling padLen(n)
// bytes; next is the type of the extension after the chain. It returns the
// new slice and the type the chain starts with (next if n is 0).
func appendPad(b []byte, n int, next uint8) ([]byte, uint8) {
	n = padLen(n)
	if n == 0 {
		return b, next
	}
	for n > 0 {
		l := min(n, 257) - 2
		if n-(l+2) == 1 { // leave at least 2 for the last one
			l--
		}
		n -= l + 2
		t := uint8(extPad)
		if n == 0 {
			t = next
		}
		b = append(b, t, byte(l))
		b = append(b, make([]byte, l)...)
	}
	return b, extPad
}
