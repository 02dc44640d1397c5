// Package storage keeps a torrent's data: it maps the single byte space
// that BEP 3 pieces are hashed over onto the torrent's files, reads and
// writes it on disk (Dir) or in memory (Memory), and rechecks existing data
// against the piece hashes so a download can resume after a crash.
//
// Offsets are always global (into the concatenation of all files), so the
// engine never has to know where file boundaries fall.
//
// Missing data: a region that was never written reads either as zeros or
// as an error wrapping ErrMissing. ErrMissing is returned where absence is
// known for certain (Dir: the file does not exist or is shorter than its
// length; Memory: the piece was never written). Sparse holes inside an
// existing file read as zeros, because telling them apart on every read
// would cost a system call in the hot path. Only data of verified pieces
// should be trusted or served. Recheck finds absent pieces cheaply through
// the optional DataProber interface, which both Dir and Memory implement.
package storage

import (
	"errors"
	"io"
)

// Storage reads and writes the torrent's byte space. Implementations are
// safe for concurrent use: the engine writes verified pieces from one
// goroutine while uploads read from others.
type Storage interface {
	// ReadAt follows io.ReaderAt. Reading past the end of the byte space
	// returns io.EOF; reading data that is known to be absent returns an
	// error wrapping ErrMissing.
	io.ReaderAt
	// WriteAt follows io.WriterAt. A write that does not fit in the byte
	// space is rejected whole, with ErrOutOfRange.
	io.WriterAt
	// Sync makes the data written so far durable.
	Sync() error
	// Close releases resources. It does not Sync. Operations still in
	// flight may fail; later ones return ErrClosed.
	Close() error
}

// DataProber is implemented by storages that can tell, without reading
// data, that a region holds nothing. Recheck uses it to skip missing files
// and sparse holes instead of hashing gigabytes of zeros.
type DataProber interface {
	// HasData reports whether any byte of [off, off+n) may hold stored
	// data. false is a promise: every byte of the region reads as zero or
	// fails with ErrMissing. true may be a conservative guess.
	HasData(off, n int64) (bool, error)
}

var (
	// ErrMissing marks data known not to be stored.
	ErrMissing = errors.New("storage: data missing")
	// ErrOutOfRange marks a write outside the torrent's byte space.
	ErrOutOfRange = errors.New("storage: region out of range")
	// ErrClosed marks use of a closed storage.
	ErrClosed = errors.New("storage: closed")
)
