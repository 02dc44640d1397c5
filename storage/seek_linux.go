package storage

import (
	"errors"
	"os"
	"syscall"
)

// seekData is Linux's SEEK_DATA whence (absent from package syscall).
const seekData = 3

// dataIn reports whether f may hold data in [off, off+n). It asks the file
// system for the first data at or after off; ENXIO means only a hole or end
// of file follows. Any other failure answers true, so callers fall back to
// reading.
func dataIn(f *os.File, off, n int64) bool {
	pos, err := f.Seek(off, seekData)
	if err != nil {
		return !errors.Is(err, syscall.ENXIO)
	}
	return pos < off+n
}
