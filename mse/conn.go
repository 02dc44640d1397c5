package mse

import (
	"net"
	"sync"
)

// writeChunk bounds the buffer Write encrypts into (it cannot change the
// caller's bytes); WriteInPlace needs none.
const writeChunk = 128 << 10

// Conn is a connection after a successful handshake: Read decrypts and
// Write encrypts as its Method says. As with any net.Conn, one goroutine
// may read while another writes; concurrent Reads (or Writes) take turns.
// Deadlines and the rest are the underlying connection's.
type Conn struct {
	net.Conn
	method Method
	iaLen  int

	rmu     sync.Mutex
	dec     *stream
	pending []byte // read during the handshake, not yet returned, still encrypted
	// decLeft counts the stream bytes still to decrypt when the payload is
	// plaintext: the initial payload that comes first is always encrypted.
	decLeft int

	wmu     sync.Mutex
	enc     *stream
	scratch []byte // Write's ciphertext, reused
}

func newConn(c net.Conn, m Method, enc, dec *stream, pending []byte, decLeft int) *Conn {
	return &Conn{Conn: c, method: m, enc: enc, dec: dec, pending: pending, decLeft: decLeft}
}

// Method is the crypto method of the payload: RC4 or Plaintext.
func (c *Conn) Method() Method { return c.method }

// IALen is, on the accepting side, the length of the initiator's initial
// payload at the start of the stream; 0 on the initiating side.
func (c *Conn) IALen() int { return c.iaLen }

// Unwrap returns the connection beneath the encryption.
func (c *Conn) Unwrap() net.Conn { return c.Conn }

// Read reads and decrypts into p, in place: no buffer of its own.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	var n int
	var err error
	if len(c.pending) > 0 {
		n = copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) == 0 {
			c.pending = nil
		}
	} else {
		n, err = c.Conn.Read(p)
	}
	c.decrypt(p[:n])
	return n, err
}

// decrypt decrypts the next len(b) bytes of the stream in place.
func (c *Conn) decrypt(b []byte) {
	if c.method == RC4 {
		c.dec.xor(b)
		return
	}
	if c.decLeft > 0 {
		k := min(len(b), c.decLeft)
		c.dec.xor(b[:k])
		c.decLeft -= k
	}
}

// Write encrypts b into a buffer of the Conn's (b is not changed, as
// io.Writer demands) and writes it, in pieces of at most 128 KiB.
func (c *Conn) Write(b []byte) (int, error) {
	if c.method != RC4 {
		return c.Conn.Write(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if want := min(len(b), writeChunk); len(c.scratch) < want {
		c.scratch = make([]byte, want)
	}
	written := 0
	for len(b) > 0 {
		chunk := c.scratch[:min(len(b), len(c.scratch))]
		c.enc.xorTo(chunk, b[:len(chunk)])
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		b = b[len(chunk):]
	}
	return written, nil
}

// WriteInPlace is Write without the copy: it encrypts b in place, so b
// holds ciphertext afterwards, and writes it with a single Write of the
// underlying connection. It is for callers that own b and refill it only
// after the call, as a peer's writer does with its batch buffer: the
// encryption then costs one pass over the bytes and no extra memory.
func (c *Conn) WriteInPlace(b []byte) (int, error) {
	if c.method != RC4 {
		return c.Conn.Write(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.enc.xor(b)
	return c.Conn.Write(b)
}
