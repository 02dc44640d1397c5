package engine

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileSender sends uploaded blocks from the page cache to a TCP socket
// with sendfile(2), so the seeder neither reads a block into user space
// nor copies it back into the kernel. Profiles of a 1 GiB upload showed
// those two copies (pread and write) as nearly all of the seeder's CPU.
type fileSender struct {
	rc     syscall.RawConn
	corked bool
}

// newFileSender returns a sender for c, or nil when c is not a plain TCP
// connection (a rate-limited connection must see every byte it sends).
func newFileSender(c net.Conn) *fileSender {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &fileSender{rc: rc}
}

// setCork holds (on) or releases (off) partial segments. Corked, the
// header and block of many uploads leave in full-sized segments instead
// of one pushed segment per block.
func (s *fileSender) setCork(on bool) error {
	if s.corked == on {
		return nil
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	err := s.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, v)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("setting TCP_CORK: %w", err)
	}
	s.corked = on
	return nil
}

// send writes hdr (with MSG_MORE, since the block follows), then n bytes
// of f from off. It honours the connection's write deadline.
func (s *fileSender) send(hdr []byte, f *os.File, off int64, n int) error {
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		for len(hdr) > 0 {
			w, err := unix.SendmsgN(int(fd), hdr, nil, nil, unix.MSG_MORE|unix.MSG_NOSIGNAL)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				serr = err
				return true
			}
			hdr = hdr[w:]
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("writing piece header: %w", err)
	}
	frc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("sendfile: %w", err)
	}
	serr = nil
	ferr := frc.Control(func(ffd uintptr) {
		err = s.rc.Write(func(fd uintptr) bool {
			for n > 0 {
				w, err := unix.Sendfile(int(fd), int(ffd), &off, n)
				switch {
				case err == unix.EINTR:
					continue
				case err == unix.EAGAIN:
					return false
				case err != nil:
					serr = err
					return true
				case w == 0:
					serr = io.ErrUnexpectedEOF // the file is shorter than it should be
					return true
				}
				n -= w
			}
			return true
		})
	})
	err = errors.Join(ferr, err, serr)
	if err != nil {
		return fmt.Errorf("sendfile: %w", err)
	}
	return nil
}
