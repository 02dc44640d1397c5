package mse

// discard is how many bytes of each keystream are dropped before use: the
// first bytes of RC4 leak information about the key.
const discard = 1024

// stream is one direction's RC4 keystream, past the discarded start.
//
// It is RC4 itself rather than crypto/rc4 because crypto/rc4's portable
// loop costs a fast peer more CPU than the rest of its transfer; the amd64
// assembly of xorKeyStream is faster (BenchmarkRC4 against
// BenchmarkCryptoRC4, figures in docs/benchmarks.md;
// TestStreamMatchesCryptoRC4 checks they agree).
type stream struct {
	s    [256]uint32
	i, j uint32 // always < 256; the assembly reads them at offsets 1024, 1028
}

func newStream(key [20]byte) *stream {
	st := &stream{}
	for i := range st.s {
		st.s[i] = uint32(i)
	}
	var j uint8
	for i := range st.s {
		j += uint8(st.s[i]) + key[i%len(key)]
		st.s[i], st.s[j] = st.s[j], st.s[i]
	}
	var drop [discard]byte
	st.xor(drop[:])
	return st
}

// xor encrypts or decrypts b in place.
func (s *stream) xor(b []byte) {
	if len(b) > 0 {
		xorKeyStream(s, &b[0], &b[0], len(b))
	}
}

// xorTo sets dst to src xor the keystream; dst must be at least as long
// as src and must not overlap it, unless they are the same bytes.
func (s *stream) xorTo(dst, src []byte) {
	if len(src) > 0 {
		_ = dst[len(src)-1]
		xorKeyStream(s, &dst[0], &src[0], len(src))
	}
}

// xorKeyStreamGeneric is the portable xorKeyStream: crypto/rc4's loop
// over this package's state.
func xorKeyStreamGeneric(st *stream, dst, src []byte) {
	s := &st.s
	i, j := uint8(st.i), uint8(st.j)
	dst = dst[:len(src)]
	for k, v := range src {
		i++
		x := s[i]
		j += uint8(x)
		y := s[j]
		s[i], s[j] = y, x
		dst[k] = v ^ uint8(s[uint8(x+y)])
	}
	st.i, st.j = uint32(i), uint32(j)
}
