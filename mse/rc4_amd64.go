package mse

// xorKeyStream sets the n bytes at dst to those at src xor the keystream
// (rc4_amd64.s).
//
//go:noescape
func xorKeyStream(st *stream, dst, src *byte, n int)
