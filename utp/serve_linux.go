//go:build linux

package utp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recvBatchLen is how many datagrams one recvmmsg takes at most.
const recvBatchLen = 16

// mmsghdr is the kernel's struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// recvBatch holds the buffers of batched reads. It is allocated once and
// never moves: the kernel gets pointers into it.
type recvBatch struct {
	rc    syscall.RawConn
	hdrs  [recvBatchLen]mmsghdr
	iovs  [recvBatchLen]unix.Iovec
	names [recvBatchLen][unix.SizeofSockaddrInet6]byte
	bufs  [recvBatchLen][ReadBufferSize]byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // b.recv, made once: a closure per call would allocate
}

func newRecvBatch(uc *net.UDPConn) *recvBatch {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	b := &recvBatch{rc: rc}
	b.fn = b.recv
	for i := range b.hdrs {
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(ReadBufferSize)
		b.hdrs[i].hdr.Name = &b.names[i][0]
		b.hdrs[i].hdr.Iov = &b.iovs[i]
		b.hdrs[i].hdr.SetIovlen(1)
	}
	return b
}

// recv takes what is queued without waiting; on EAGAIN it asks the poller
// to wait for the socket to become readable.
func (b *recvBatch) recv(fd uintptr) bool {
	for i := range b.hdrs {
		b.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.hdrs[i].hdr.Flags = 0
	}
	for {
		r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), recvBatchLen, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		b.n, b.errno = int(r), e
		return e != unix.EAGAIN
	}
}

// from decodes datagram i's sender.
func (b *recvBatch) from(i int) (netip.AddrPort, bool) {
	name := &b.names[i]
	port := binary.BigEndian.Uint16(name[2:4])
	switch *(*uint16)(unsafe.Pointer(&name[0])) { // sa_family, host order
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(name[4:8])), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(name[8:24])).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// serveBatched is Serve with recvmmsg: it reads up to recvBatchLen
// datagrams a system call and, once the socket is drained, sends the acks
// the batch left pending at once instead of after delayedAck. ok is false
// if the socket does not allow it.
func serveBatched(uc *net.UDPConn, s *Socket, other func([]byte, netip.AddrPort)) (ok bool, err error) {
	b := newRecvBatch(uc)
	if b == nil {
		return false, nil
	}
	s.deferAcks.Store(true)
	defer s.deferAcks.Store(false)
	for {
		if err := b.rc.Read(b.fn); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return true, nil
			}
			return true, fmt.Errorf("utp: read: %w", err)
		}
		if b.errno != 0 {
			continue // an ICMP error or the like: keep reading
		}
		for i := range b.n {
			from, known := b.from(i)
			if !known {
				continue
			}
			p := b.bufs[i][:b.hdrs[i].n]
			if !s.HandlePacket(p, from) && other != nil {
				other(p, from)
			}
		}
		if b.n < recvBatchLen {
			s.flushAcks() // drained
		}
	}
}
