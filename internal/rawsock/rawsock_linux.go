package rawsock

import (
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// conn is a *net.TCPConn whose Read and Write are raw.
type conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w call
}

// call is the state of one direction's system call. Its mutex makes
// concurrent Reads (or Writes) take turns, as net's do; fn is made once,
// so a call does not allocate a closure.
type call struct {
	mu    sync.Mutex
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func wrap(tc *net.TCPConn) net.Conn {
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &conn{TCPConn: tc, rc: rc}
	c.r.fn = c.r.do(unix.SYS_READ)
	c.w.fn = c.w.do(unix.SYS_WRITE)
	return c
}

// do returns the body of a RawConn.Read or Write: the system call trap on
// c.p, false (wait in the poller) while the socket is not ready.
func (c *call) do(trap uintptr) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		for {
			n, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(c.p))), uintptr(len(c.p)))
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			c.n, c.errno = int(n), e
			return true
		}
	}
}

// Read implements net.Conn.
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r := &c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p, r.n, r.errno = p, 0, 0
	err := c.rc.Read(r.fn)
	r.p = nil
	switch {
	case err != nil:
		return 0, err
	case r.errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: fmt.Errorf("read: %w", r.errno)}
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// Write implements net.Conn: all of b, or an error.
func (c *conn) Write(b []byte) (int, error) {
	w := &c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	done := 0
	for done < len(b) {
		w.p, w.n, w.errno = b[done:], 0, 0
		err := c.rc.Write(w.fn)
		w.p = nil
		if err == nil && w.errno != 0 {
			err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: fmt.Errorf("write: %w", w.errno)}
		}
		if err != nil {
			return done, err
		}
		done += w.n
	}
	return done, nil
}
