//go:build !linux

package storage

import "os"

// readv reads bufs from f at off, one ReadAt per buffer (no preadv here).
func readv(f *os.File, bufs [][]byte, off int64) (int, error) {
	return eachBuf(f.ReadAt, bufs, off)
}

// writev writes bufs to f at off, one WriteAt per buffer.
func writev(f *os.File, bufs [][]byte, off int64) (int, error) {
	return eachBuf(f.WriteAt, bufs, off)
}
