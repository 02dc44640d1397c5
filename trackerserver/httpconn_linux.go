//go:build linux

package trackerserver

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawConnIO reads and writes a connection of the announce path with raw
// system calls, as the UDP batches do (see udpBatch.recv): the socket is
// non-blocking, so the calls never block, and a call the runtime does not
// see does not wake its monitor thread after each idle spell. Waiting for
// the socket, and its deadlines, still go through the poller.
type rawConnIO struct {
	rc              syscall.RawConn
	p               []byte // buffer of the call in progress
	n               int
	errno           syscall.Errno
	readFn, writeFn func(fd uintptr) bool // read and write, made once
}

// newRawConnIO returns raw I/O for c, or nil when c has no descriptor.
func newRawConnIO(c net.Conn) *rawConnIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawConnIO{rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (r *rawConnIO) read(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.p))), uintptr(len(r.p)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the poller
		}
		r.n, r.errno = int(n), e
		return true
	}
}

func (r *rawConnIO) write(fd uintptr) bool {
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(r.p))), uintptr(len(r.p)))
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.errno = int(n), e
		return true
	}
}

// read is c.Read, raw when it can be.
func (cs *connState) read(p []byte) (int, error) {
	r := cs.raw
	if r == nil || len(p) == 0 {
		return cs.c.Read(p)
	}
	r.p, r.n, r.errno = p, 0, 0
	err := r.rc.Read(r.readFn)
	r.p = nil
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, fmt.Errorf("read: %w", r.errno)
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// write is c.Write of all of b, raw when it can be.
func (cs *connState) write(b []byte) error {
	r := cs.raw
	if r == nil {
		_, err := cs.c.Write(b)
		return err
	}
	var err error
	for r.p = b; len(r.p) > 0 && err == nil; r.p = r.p[r.n:] {
		r.n, r.errno = 0, 0
		if err = r.rc.Write(r.writeFn); err == nil && r.errno != 0 {
			err = fmt.Errorf("write: %w", r.errno)
		}
	}
	r.p = nil
	return err
}
