package mse

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"time"
)

const (
	// maxPad is the longest pad (PadA to PadD) the specification allows.
	maxPad = 512
	// vcLen is the size of the verification constant VC, 8 zero bytes.
	vcLen = 8
	// maxIA is the longest initial payload: its length field has 2 bytes.
	maxIA = 1<<16 - 1
	// bufSize is a handshake's whole read buffer. The most it must hold at
	// once is the window searched for a synchronisation point (a pad and
	// the pattern after it) or PadC and the fields around it, about 550
	// bytes; the rest lets a read take in what the peer sent after.
	bufSize = 1024
)

// handshake is one handshake's state: its connection, a fixed read buffer
// (the memory of a handshake does not depend on what the peer sends) and
// the context watch.
type handshake struct {
	c    net.Conn
	buf  [bufSize]byte
	r, w int // buf[r:w] is read and not yet consumed
	read int // bytes read from c in all
	// maxRead bounds read until the synchronisation point is found: no
	// more than the longest legal pad and the pattern after it.
	maxRead int

	stop func() bool
	ctx  context.Context
}

// begin arms the handshake's deadline and makes ctx's end interrupt it.
func begin(ctx context.Context, c net.Conn, opts *Options) (*handshake, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := &handshake{c: c, ctx: ctx, maxRead: bufSize}
	if p, ok := c.(*peekedConn); ok {
		// Detect's bytes go straight into the buffer, and the handshake
		// reads from the connection beneath.
		h.w = copy(h.buf[:], p.peeked)
		h.read = h.w
		h.c = p.Conn
	}
	if err := h.c.SetDeadline(time.Now().Add(opts.timeout())); err != nil {
		return nil, fmt.Errorf("mse: setting the handshake deadline: %w", err)
	}
	h.stop = context.AfterFunc(ctx, func() { h.c.SetDeadline(time.Unix(1, 0)) })
	return h, nil
}

// end disarms what begin armed. On success it clears the deadline; an error
// caused by the context's end is reported as the context's error.
func (h *handshake) end(err error) error {
	if !h.stop() && h.ctx.Err() != nil {
		return fmt.Errorf("mse: handshake: %w", h.ctx.Err())
	}
	if err != nil {
		return err
	}
	if err := h.c.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("mse: clearing the handshake deadline: %w", err)
	}
	return nil
}

// fill reads once into the window buf[r:r+limit] (limit <= bufSize),
// compacting the buffer first when the window would pass its end; it
// returns at once if the window is full already.
func (h *handshake) fill(limit int) error {
	if h.r+limit > bufSize {
		h.w = copy(h.buf[:], h.buf[h.r:h.w])
		h.r = 0
	}
	if h.w >= h.r+limit {
		return nil
	}
	end := h.r + limit
	if room := h.maxRead - h.read; end-h.w > room {
		end = h.w + room
	}
	if h.w >= end {
		return fmt.Errorf("%w within %d bytes", ErrNoSync, h.maxRead)
	}
	n, err := h.c.Read(h.buf[h.w:end])
	h.w += n
	h.read += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("mse: reading the handshake: %w", err)
}

// next consumes n bytes (n <= bufSize), reading as needed; the returned
// slice aliases the buffer until the next call.
func (h *handshake) next(n int) ([]byte, error) {
	for h.w-h.r < n {
		// Read ahead as far as the buffer allows: the bytes after the
		// handshake become the start of the stream.
		if err := h.fill(max(n, bufSize-h.r)); err != nil {
			return nil, err
		}
	}
	b := h.buf[h.r : h.r+n]
	h.r += n
	return b, nil
}

// sync consumes up to and including pattern, which must start within
// maxSkip bytes. It never reads past that window, so a peer sending
// garbage is dropped after at most maxSkip+len(pattern) bytes.
func (h *handshake) sync(pattern []byte, maxSkip int) error {
	window := maxSkip + len(pattern)
	for {
		avail := h.buf[h.r:min(h.w, h.r+window)]
		if i := bytes.Index(avail, pattern); i >= 0 {
			h.r += i + len(pattern)
			h.maxRead = math.MaxInt
			return nil
		}
		if len(avail) == window {
			return fmt.Errorf("%w within %d bytes", ErrNoSync, maxSkip)
		}
		if err := h.fill(window); err != nil {
			return err
		}
	}
}

// rest returns a copy of what was read past the handshake, nil if nothing.
func (h *handshake) rest() []byte {
	if h.r == h.w {
		return nil
	}
	return bytes.Clone(h.buf[h.r:h.w])
}

// appendPad appends a pad of random bytes and random length in [0, maxPad].
func appendPad(b []byte, r io.Reader) ([]byte, error) {
	var nb [2]byte
	if _, err := io.ReadFull(r, nb[:]); err != nil {
		return nil, fmt.Errorf("mse: drawing a pad: %w", err)
	}
	n := int(binary.BigEndian.Uint16(nb[:])) % (maxPad + 1)
	start := len(b)
	b = append(b, make([]byte, n)...)
	if _, err := io.ReadFull(r, b[start:]); err != nil {
		return nil, fmt.Errorf("mse: drawing a pad: %w", err)
	}
	return b, nil
}

// sendKey writes the public key and a random pad (steps 1 and 2).
func (h *handshake) sendKey(d *dh, r io.Reader) error {
	var b [keyLen + maxPad]byte
	msg, err := appendPad(append(b[:0], d.pub[:]...), r)
	if err != nil {
		return err
	}
	if _, err := h.c.Write(msg); err != nil {
		return fmt.Errorf("mse: sending the public key: %w", err)
	}
	return nil
}

// Initiate performs the initiating side's handshake over c, for the torrent
// whose info-hash is skey, offering the methods in provide, and sends ia
// (at most 65535 bytes, normally the BitTorrent handshake) as the initial
// payload. It returns the encrypted connection; its Method is the one the
// peer selected. c's deadline is cleared on success; on failure the caller
// closes c. A peer that does not speak MSE, or refuses what was offered,
// usually closes or resets the connection: the error then wraps
// io.ErrUnexpectedEOF or syscall.ECONNRESET, and a plaintext retry on a new
// connection may succeed.
func Initiate(ctx context.Context, c net.Conn, skey [20]byte, provide Method, ia []byte, opts *Options) (*Conn, error) {
	if provide == 0 || provide&^known != 0 {
		return nil, fmt.Errorf("mse: cannot offer methods %v", provide)
	}
	if len(ia) > maxIA {
		return nil, fmt.Errorf("mse: initial payload of %d bytes, at most %d", len(ia), maxIA)
	}
	h, err := begin(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	conn, err := h.initiate(skey, provide, ia, opts.random())
	if err := h.end(err); err != nil {
		return nil, err
	}
	return conn, nil
}

func (h *handshake) initiate(skey [20]byte, provide Method, ia []byte, r io.Reader) (*Conn, error) {
	h.maxRead = keyLen + maxPad + vcLen
	d, err := newDH(r)
	if err != nil {
		return nil, err
	}
	if err := h.sendKey(d, r); err != nil {
		return nil, err
	}
	yb, err := h.next(keyLen)
	if err != nil {
		return nil, err
	}
	s, err := d.secret(yb)
	if err != nil {
		return nil, err
	}

	// Step 3: HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
	// ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA).
	// PadC is empty, as in most clients.
	enc := newStream(hash("keyA", s[:], skey[:]))
	dec := newStream(hash("keyB", s[:], skey[:]))
	req1 := hash("req1", s[:])
	req2, req3 := Req2(skey), hash("req3", s[:])
	msg := make([]byte, 0, 40+vcLen+4+2+2+len(ia))
	msg = append(msg, req1[:]...)
	for i := range req2 {
		msg = append(msg, req2[i]^req3[i])
	}
	start := len(msg)
	msg = append(msg, make([]byte, vcLen)...)
	msg = binary.BigEndian.AppendUint32(msg, uint32(provide))
	msg = binary.BigEndian.AppendUint16(msg, 0) // len(PadC)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(ia)))
	msg = append(msg, ia...)
	enc.xor(msg[start:])
	if _, err := h.c.Write(msg); err != nil {
		return nil, fmt.Errorf("mse: sending the crypto offer: %w", err)
	}

	// Step 4: PadB (at most 512 bytes), then ENCRYPT(VC, crypto_select,
	// len(PadD), PadD). VC encrypted is the first 8 bytes of B's stream.
	var vc [vcLen]byte
	dec.xor(vc[:])
	if err := h.sync(vc[:], maxPad); err != nil {
		return nil, err
	}
	f, err := h.next(4 + 2)
	if err != nil {
		return nil, err
	}
	dec.xor(f)
	sel := Method(binary.BigEndian.Uint32(f))
	padD := int(binary.BigEndian.Uint16(f[4:]))
	if sel != Plaintext && sel != RC4 || sel&provide == 0 {
		return nil, fmt.Errorf("%w: peer selected %v, offered %v", ErrProtocol, sel, provide)
	}
	if padD > maxPad {
		return nil, fmt.Errorf("%w: PadD of %d bytes", ErrProtocol, padD)
	}
	pad, err := h.next(padD)
	if err != nil {
		return nil, err
	}
	dec.xor(pad)
	return newConn(h.c, sel, enc, dec, h.rest(), 0), nil
}

// Accept performs the accepting side's handshake over c (as returned by
// [Detect], or any connection none of whose bytes were read yet). lookup
// maps HASH("req2", SKEY) (see [Req2]) to the SKEY, the info-hash, of a
// torrent served here. allow is the set of methods this side accepts; when
// the peer offers both, RC4 is chosen if allowed, unless
// opts.PreferPlaintext.
//
// The returned connection's stream starts with the initiator's initial
// payload (Conn.IALen bytes, normally its BitTorrent handshake, possibly
// none) and goes on with what it sends next. c's deadline is cleared on
// success; on failure the caller closes c.
func Accept(ctx context.Context, c net.Conn, lookup func(req2 [20]byte) (skey [20]byte, ok bool), allow Method, opts *Options) (*Conn, error) {
	if allow == 0 || allow&^known != 0 {
		return nil, fmt.Errorf("mse: cannot allow methods %v", allow)
	}
	if lookup == nil {
		return nil, errors.New("mse: Accept needs a lookup")
	}
	h, err := begin(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	conn, err := h.accept(lookup, allow, opts != nil && opts.PreferPlaintext, opts.random())
	if err := h.end(err); err != nil {
		return nil, err
	}
	return conn, nil
}

func (h *handshake) accept(lookup func([20]byte) ([20]byte, bool), allow Method, preferPlain bool, r io.Reader) (*Conn, error) {
	h.maxRead = keyLen + maxPad + 20
	ya, err := h.next(keyLen)
	if err != nil {
		return nil, err
	}
	d, err := newDH(r)
	if err != nil {
		return nil, err
	}
	// A bad key is refused before anything is sent back.
	s, err := d.secret(ya)
	if err != nil {
		return nil, err
	}
	if err := h.sendKey(d, r); err != nil {
		return nil, err
	}
	req1 := hash("req1", s[:])
	if err := h.sync(req1[:], maxPad); err != nil {
		return nil, err
	}
	x, err := h.next(20)
	if err != nil {
		return nil, err
	}
	var req2 [20]byte
	req3 := hash("req3", s[:])
	for i := range req2 {
		req2[i] = x[i] ^ req3[i]
	}
	skey, ok := lookup(req2)
	if !ok {
		return nil, ErrUnknownTorrent
	}
	if Req2(skey) != req2 {
		return nil, fmt.Errorf("mse: lookup returned SKEY %x, whose HASH('req2') is not the one asked for", skey)
	}
	dec := newStream(hash("keyA", s[:], skey[:]))
	enc := newStream(hash("keyB", s[:], skey[:]))

	f, err := h.next(vcLen + 4 + 2)
	if err != nil {
		return nil, err
	}
	dec.xor(f)
	if !bytes.Equal(f[:vcLen], make([]byte, vcLen)) {
		return nil, fmt.Errorf("%w: bad verification constant", ErrProtocol)
	}
	provide := Method(binary.BigEndian.Uint32(f[vcLen:]))
	padC := int(binary.BigEndian.Uint16(f[vcLen+4:]))
	if padC > maxPad {
		return nil, fmt.Errorf("%w: PadC of %d bytes", ErrProtocol, padC)
	}
	f, err = h.next(padC + 2)
	if err != nil {
		return nil, err
	}
	dec.xor(f)
	iaLen := int(binary.BigEndian.Uint16(f[padC:]))

	var sel Method
	switch common := provide & allow; {
	case common&Plaintext != 0 && preferPlain:
		sel = Plaintext
	case common&RC4 != 0:
		sel = RC4
	case common&Plaintext != 0:
		sel = Plaintext
	default:
		return nil, fmt.Errorf("%w: peer offers %v, %v allowed", ErrNoCommonMethod, provide, allow)
	}
	// Step 4: ENCRYPT(VC, crypto_select, len(PadD), PadD), PadD empty.
	var msg [vcLen + 4 + 2]byte
	binary.BigEndian.PutUint32(msg[vcLen:], uint32(sel))
	enc.xor(msg[:])
	if _, err := h.c.Write(msg[:]); err != nil {
		return nil, fmt.Errorf("mse: sending the crypto selection: %w", err)
	}
	c := newConn(h.c, sel, enc, dec, h.rest(), iaLen)
	c.iaLen = iaLen
	return c, nil
}
