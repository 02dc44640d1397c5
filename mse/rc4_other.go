//go:build !amd64

package mse

import "unsafe"

// xorKeyStream sets the n bytes at dst to those at src xor the keystream.
func xorKeyStream(st *stream, dst, src *byte, n int) {
	xorKeyStreamGeneric(st, unsafe.Slice(dst, n), unsafe.Slice(src, n))
}
