package storage

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readv fills bufs from f at off with preadv, returning io.EOF if the
// file ends first.
func readv(f *os.File, bufs [][]byte, off int64) (int, error) {
	return vectorIO(f, bufs, off, unix.Preadv, 0)
}

// writev writes bufs to f at off with pwritev, at most maxWrite bytes
// per call.
func writev(f *os.File, bufs [][]byte, off int64) (int, error) {
	return vectorIO(f, bufs, off, unix.Pwritev, maxWrite)
}

// vectorIO runs preadv or pwritev until every buffer is done: a call may
// move fewer bytes than asked (at most maxIov buffers, or a short count).
// A limit above zero caps the bytes a call is given (whole buffers, or
// the first buffer's first limit bytes).
func vectorIO(f *os.File, bufs [][]byte, off int64, op func(int, [][]byte, int64) (int, error), limit int) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	done := 0
	for len(bufs) > 0 {
		iov := bufs[:min(len(bufs), maxIov)]
		if limit > 0 {
			iov = capBytes(iov, limit)
		}
		var n int
		var opErr error
		if err := rc.Control(func(fd uintptr) {
			for {
				n, opErr = op(int(fd), iov, off+int64(done))
				if opErr != unix.EINTR {
					return
				}
			}
		}); err != nil {
			return done, err
		}
		if opErr != nil {
			return done, opErr
		}
		if n == 0 {
			return done, io.EOF // preadv past the end; pwritev never returns 0 for a non-empty buffer
		}
		done += n
		// Drop the buffers done, and the done part of the next one.
		for n > 0 && len(bufs) > 0 {
			if n < len(bufs[0]) {
				bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
				break
			}
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return done, nil
}
