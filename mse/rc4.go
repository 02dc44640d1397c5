package mse

import "crypto/rc4"

// discard is how many bytes of each keystream are dropped before use: the
// first bytes of RC4 leak information about the key.
const discard = 1024

// stream is one direction's RC4 keystream, past the discarded start.
type stream struct{ c *rc4.Cipher }

func newStream(key [20]byte) *stream {
	c, _ := rc4.NewCipher(key[:]) // cannot fail: 20 bytes is a valid key
	var drop [discard]byte
	c.XORKeyStream(drop[:], drop[:])
	return &stream{c: c}
}

// xor encrypts or decrypts b in place.
func (s *stream) xor(b []byte) { s.c.XORKeyStream(b, b) }

// xorTo sets dst to src xor the keystream; dst must be as long as src and
// must not overlap it partly.
func (s *stream) xorTo(dst, src []byte) { s.c.XORKeyStream(dst, src) }
