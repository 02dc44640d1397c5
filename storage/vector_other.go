//go:build !linux

package storage

import "os"

// readv reads bufs from f at off, one ReadAt per buffer (no preadv here).
func readv(f *os.File, bufs [][]byte, off int64) (int, error) {
	return eachBuf(f.ReadAt, bufs, off)
}

// writev writes bufs to f at off, at least one WriteAt per buffer.
func writev(f *os.File, bufs [][]byte, off int64) (int, error) {
	return eachBuf(func(b []byte, off int64) (int, error) { return writeChunked(f, b, off) }, bufs, off)
}
