//go:build linux

package trackerserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// serveUDPWorkers answers packets on pc with up to workers goroutines
// until pc is closed, in batches when the socket allows.
func (s *Server) serveUDPWorkers(ctx context.Context, pc net.PacketConn, uc *net.UDPConn, workers int) error {
	bs := make([]*udpBatch, 0, workers)
	for range workers {
		b := newUDPBatch(uc, s.log)
		if b == nil {
			break
		}
		bs = append(bs, b)
	}
	if len(bs) == 0 {
		return s.serveUDPEach(ctx, pc, uc, workers)
	}
	return s.serveUDPBatches(ctx, bs)
}

// serveUDPBatches answers packets with one goroutine per batch until the
// socket is closed. bs[0] leads: it alone waits on the socket through the
// poller. The others are helpers that wait on a channel and are called
// only when requests queue up faster than one goroutine answers them: a
// reader that takes a full batch and finds the socket still backlogged
// (see backlogged) calls one. A helper reads without waiting until the
// queue is empty and goes back to the channel. Several goroutines all
// parked on the socket would all be woken by each burst and contend for
// the descriptor's read lock, taking small batches: more system calls and
// scheduler work per packet, and at loads one core handles, no more
// packets.
func (s *Server) serveUDPBatches(ctx context.Context, bs []*udpBatch) error {
	call := make(chan struct{}, 1) // one pending call is enough: each helper passes it on
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, b := range bs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.udpHelper(b, call, stop)
		}()
	}
	err := s.udpLeader(ctx, bs[0], call)
	close(stop)
	wg.Wait()
	return err
}

// udpLeader reads batches from the socket, waiting in the poller when it
// is empty, until the socket is closed.
func (s *Server) udpLeader(ctx context.Context, b *udpBatch, call chan<- struct{}) error {
	var sc scratch
	for {
		n, err := b.read()
		if err == nil {
			if n == udpBatchSize && b.backlogged() {
				callHelper(call)
			}
			err = s.answerBatch(b, n, &sc)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
	}
}

// udpHelper answers batches while the socket has a backlog, each time it
// is called, until stop is closed. An error (the socket closed under it,
// say) ends the current backlog only: the leader owns the socket's fate.
func (s *Server) udpHelper(b *udpBatch, call chan struct{}, stop <-chan struct{}) {
	var sc scratch
	for {
		select {
		case <-stop:
			return
		case <-call:
		}
		for {
			n, err := b.readNow()
			if err == nil && n > 0 {
				if n == udpBatchSize && b.backlogged() {
					callHelper(call) // the backlog goes on: another hand, if idle
				}
				err = s.answerBatch(b, n, &sc)
			}
			if err != nil {
				s.log.Debug("tracker: udp helper", "err", err)
			}
			if err != nil || n < udpBatchSize {
				break
			}
		}
	}
}

// backlogged reports whether the socket's receive queue holds more than
// half its buffer, which is when a helper is called. A full batch alone
// is not enough: 64 clients refill the queue while the leader answers, so
// full batches follow each other at loads one core answers, and waking a
// helper costs a thread wake-up and several polls and splits the queue
// into smaller batches (calling after four full batches in a row still
// raised the CPU per announce by a tenth on a 2-core machine). A queue
// that grows past half the buffer is one that a reader alone does not
// keep up with, and the kernel drops what does not fit: then another core
// pays. The check is one getsockopt, made only after a full batch; where
// it fails (SO_MEMINFO is Linux 3.9 and later) no helper is called.
func (b *udpBatch) backlogged() bool {
	b.mem = [unix.SK_MEMINFO_VARS]uint32{}
	if b.rc.Control(b.meminfoFn) != nil || b.memErrno != 0 {
		return false
	}
	return 2*uint64(b.mem[unix.SK_MEMINFO_RMEM_ALLOC]) > uint64(b.mem[unix.SK_MEMINFO_RCVBUF])
}

// meminfo is the body of backlogged's system call, made once as
// meminfoFn: getsockopt(SO_MEMINFO), which never blocks.
func (b *udpBatch) meminfo(fd uintptr) {
	l := uint32(unsafe.Sizeof(b.mem))
	_, _, b.memErrno = unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
		uintptr(unsafe.Pointer(&b.mem)), uintptr(unsafe.Pointer(&l)), 0)
}

// callHelper wakes an idle helper, if there is one and no call is pending.
func callHelper(call chan<- struct{}) {
	select {
	case call <- struct{}{}:
	default:
	}
}

// answerBatch answers the n datagrams of b's last read and sends the
// replies.
func (s *Server) answerBatch(b *udpBatch, n int, sc *scratch) error {
	if s.shared != nil {
		return s.answerBatchShared(b, n)
	}
	k := 0
	t := s.cfg.Now() // once per batch: reading the clock is not free
	for i := range n {
		pkt, from, ok := b.packet(i)
		if !ok {
			continue
		}
		sc.body = b.reply(k)
		if out := s.handleUDPAt(pkt, from, t, sc); len(out) > 0 {
			b.queue(k, i, out)
			k++
		}
	}
	b.handled.Add(int64(n))
	return b.flush(k, b.fail)
}

// answerBatchShared answers each datagram of a batch in a goroutine of its
// own: on a shared store an announce waits for a round trip to the store,
// and concurrent calls share round trips (the store's client pipelines
// them). The replies ready within udpBatchWait go out together in one
// sendmmsg; a request still waiting for the store then (a store that is
// slow or down) sends its own reply when it has one, so that it neither
// holds up the batch nor waits for the slowest request of it. Requests in
// flight are bounded (udpSem), after which the reader waits and the kernel
// queues or drops datagrams.
func (s *Server) answerBatchShared(b *udpBatch, n int) error {
	t := s.cfg.Now()
	sb := &sharedBatch{done: make(chan struct{})}
	// Counted before any goroutine starts, so that none sees the count
	// reach zero early.
	for i := range n {
		if _, _, ok := b.packet(i); ok {
			sb.pending++
		}
	}
	waiting := sb.pending > 0
	for i := range n {
		pkt, from, ok := b.packet(i)
		if !ok {
			continue
		}
		s.udpSem <- struct{}{}
		s.udpInflight.Add(1)
		bp := s.pktPool.Get().(*[]byte)
		buf := append((*bp)[:0], pkt...)
		go func() {
			defer func() {
				*bp = buf[:0]
				s.pktPool.Put(bp)
				<-s.udpSem
				s.udpInflight.Done()
			}()
			sc := s.getScratch()
			out := s.handleUDPAt(buf, from, t, sc)
			if sb.deliver(i, out, sc) {
				return
			}
			if len(out) > 0 {
				if _, err := b.uc.WriteToUDPAddrPort(out, from); err != nil {
					b.fail(err)
				}
			}
			s.putScratch(sc)
		}()
	}
	if waiting {
		tm := time.NewTimer(udpBatchWait)
		select {
		case <-sb.done:
		case <-tm.C:
		}
		tm.Stop()
	}
	sb.mu.Lock()
	sb.closed = true
	sb.mu.Unlock()
	k := 0
	for i := range n {
		if out := sb.outs[i]; len(out) > 0 {
			b.queue(k, i, out)
			k++
		}
	}
	b.handled.Add(int64(n))
	err := b.flush(k, b.fail)
	for _, sc := range sb.scs[:n] {
		if sc != nil {
			s.putScratch(sc)
		}
	}
	return err
}

// udpBatchWait is how long a batch's replies wait for each other on a
// shared store: far longer than a round trip to a healthy store, far
// shorter than a client's patience.
const udpBatchWait = 20 * time.Millisecond

// sharedBatch collects the replies of one batch answered concurrently.
type sharedBatch struct {
	mu      sync.Mutex
	closed  bool // the batch went out: later replies go on their own
	pending int
	done    chan struct{} // closed when every reply is in before closed
	outs    [udpBatchSize][]byte
	scs     [udpBatchSize]*scratch // holding outs, returned after the send
}

// deliver hands reply i (built in sc) to the batch and reports whether it
// took it; false means the batch already went and the caller sends it.
func (sb *sharedBatch) deliver(i int, out []byte, sc *scratch) bool {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if sb.closed {
		return false
	}
	sb.outs[i], sb.scs[i] = out, sc
	if sb.pending--; sb.pending == 0 {
		close(sb.done)
	}
	return true
}

// udpBatchSize is how many datagrams one recvmmsg or sendmmsg call moves.
// Under load the socket queue holds many requests, and taking them 32 at a
// time saves a system call and a trip through the poller per packet.
const udpBatchSize = 32

// mmsghdr is struct mmsghdr of recvmmsg(2): Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// udpBatch is one worker's buffers for batched reads and writes. It is
// allocated once and never moves, so the kernel may be given pointers
// into it.
type udpBatch struct {
	rc syscall.RawConn

	in      [udpBatchSize]mmsghdr
	inIov   [udpBatchSize]unix.Iovec
	inNames [udpBatchSize][unix.SizeofSockaddrInet6]byte
	inBufs  [udpBatchSize][udpReadLen]byte

	out      [udpBatchSize]mmsghdr
	outIov   [udpBatchSize]unix.Iovec
	outNames [udpBatchSize][unix.SizeofSockaddrInet6]byte
	outBufs  [udpBatchSize][]byte // reply of each queued message
	uc       *net.UDPConn         // for replies sent one at a time (answerBatchShared)

	recvFn, sendFn       func(fd uintptr) bool // b.recv and b.send
	recvNowFn, sendNowFn func(fd uintptr)      // b.recvNow and b.sendNow
	meminfoFn            func(fd uintptr)      // b.meminfo
	mem                  [unix.SK_MEMINFO_VARS]uint32
	memErrno             syscall.Errno
	fail                 func(error) // reports a reply the kernel refused
	n                    int         // result of the last recv or send
	errno                syscall.Errno
	sent, queued         int          // progress of flush
	handled              atomic.Int64 // datagrams answered through this batch, for tests
}

// newUDPBatch prepares batched I/O on uc, or returns nil when the socket
// does not allow it (then the worker reads one packet at a time). Failed
// replies are logged to log at debug level.
func newUDPBatch(uc *net.UDPConn, log *slog.Logger) *udpBatch {
	if uc == nil {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	b := &udpBatch{rc: rc, uc: uc}
	b.recvFn, b.sendFn = b.recv, b.send
	b.recvNowFn, b.sendNowFn = b.recvNow, b.sendNow
	b.meminfoFn = b.meminfo
	b.fail = func(err error) { log.Debug("tracker: udp reply", "err", err) }
	for i := range b.in {
		b.inIov[i].Base = &b.inBufs[i][0]
		b.inIov[i].SetLen(udpReadLen)
		b.in[i].hdr.Name = &b.inNames[i][0]
		b.in[i].hdr.Iov = &b.inIov[i]
		b.in[i].hdr.SetIovlen(1)
		b.out[i].hdr.Name = &b.outNames[i][0]
		b.out[i].hdr.Iov = &b.outIov[i]
		b.out[i].hdr.SetIovlen(1)
	}
	for i := range b.outBufs {
		b.outBufs[i] = make([]byte, 0, udpReplyCap)
	}
	return b
}

// read waits for datagrams and returns how many were received (at least
// one), or the socket's error (net.ErrClosed after Close).
func (b *udpBatch) read() (int, error) {
	b.reset()
	if err := b.rc.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", b.errno)
	}
	return b.n, nil
}

// readNow is read without waiting: it returns 0 when no datagram is
// queued. It does not take the descriptor's read lock, so it runs beside
// a leader parked in read.
func (b *udpBatch) readNow() (int, error) {
	b.reset()
	if err := b.rc.Control(b.recvNowFn); err != nil {
		return 0, err
	}
	switch b.errno {
	case 0:
		return b.n, nil
	case unix.EAGAIN:
		return 0, nil
	}
	return 0, fmt.Errorf("recvmmsg: %w", b.errno)
}

// reset prepares the receive headers for the next recvmmsg.
func (b *udpBatch) reset() {
	for i := range b.in {
		b.in[i].hdr.Namelen = unix.SizeofSockaddrInet6
		b.in[i].hdr.Flags = 0
		b.in[i].n = 0
	}
	b.n, b.errno = 0, 0
}

// recvNow is the body of readNow's system call, made once as recvNowFn.
func (b *udpBatch) recvNow(fd uintptr) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.in[0])), udpBatchSize, unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			b.n, b.errno = int(r), e
			return
		}
	}
}

// sendNow is the body of a sendmmsg of queued messages [b.sent, b.queued)
// for Control: it returns EAGAIN in b.errno instead of waiting for the
// socket to become writable (send does that, through the poller).
func (b *udpBatch) sendNow(fd uintptr) {
	for {
		v, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.out[b.sent])), uintptr(b.queued-b.sent), unix.MSG_DONTWAIT, 0, 0)
		if e != unix.EINTR {
			b.n, b.errno = int(v), e
			return
		}
	}
}

// recv is the body of read's system call, kept as a method value made
// once (recvFn): a closure made per call would escape to the heap with the
// variables it sets, several allocations per batch.
//
// All four batch calls are raw system calls, which the runtime does not
// see: they never block (MSG_DONTWAIT), and a system call the runtime sees
// wakes its monitor thread (sysmon) whenever every P had gone idle, which
// under load is after nearly every batch. Woken that way, sysmon polls
// every 20 µs until the process is idle again, a visible share of the
// tracker's CPU under load.
func (b *udpBatch) recv(fd uintptr) bool {
	b.recvNow(fd)
	return b.errno != unix.EAGAIN // on EAGAIN, wait until the socket is readable
}

// send is the body of flush's system call, made once as sendFn like recv:
// it sends queued messages [b.sent, b.queued).
func (b *udpBatch) send(fd uintptr) bool {
	b.sendNow(fd)
	return b.errno != unix.EAGAIN // on EAGAIN, wait until the socket is writable
}

// packet returns datagram i of the last read and its sender. ok is false
// for a sender address of an unknown family.
func (b *udpBatch) packet(i int) (pkt []byte, from netip.AddrPort, ok bool) {
	name := &b.inNames[i]
	pkt = b.inBufs[i][:b.in[i].n]
	// sa_family is in host order; the port is in network order.
	switch *(*uint16)(unsafe.Pointer(&name[0])) {
	case unix.AF_INET:
		from = netip.AddrPortFrom(netip.AddrFrom4([4]byte(name[4:8])), binary.BigEndian.Uint16(name[2:4]))
	case unix.AF_INET6:
		from = netip.AddrPortFrom(netip.AddrFrom16([16]byte(name[8:24])), binary.BigEndian.Uint16(name[2:4]))
	default:
		return nil, netip.AddrPort{}, false
	}
	return pkt, from, true
}

// reply returns an empty buffer for the answer to datagram i of the last
// read; queue sends it.
func (b *udpBatch) reply(k int) []byte { return b.outBufs[k][:0] }

// queue adds reply k, an answer to datagram i (whose sender address,
// including any IPv6 scope, it goes back to).
func (b *udpBatch) queue(k, i int, reply []byte) {
	b.outBufs[k] = reply
	b.outNames[k] = b.inNames[i]
	b.out[k].hdr.Namelen = b.in[i].hdr.Namelen
	b.outIov[k].Base = unsafe.SliceData(reply)
	b.outIov[k].SetLen(len(reply))
}

// flush sends the first n queued replies. A reply the kernel refuses is
// reported through fail and skipped; the others still go.
func (b *udpBatch) flush(n int, fail func(error)) error {
	b.queued = n
	for b.sent = 0; b.sent < n; {
		// Try without the descriptor's write lock first (other workers
		// send on the same socket); wait for room only when there is none.
		b.n, b.errno = 0, 0
		if err := b.rc.Control(b.sendNowFn); err != nil {
			return err
		}
		if b.errno == unix.EAGAIN {
			b.n, b.errno = 0, 0
			if err := b.rc.Write(b.sendFn); err != nil {
				return err
			}
		}
		r := b.n
		if b.errno != 0 || r <= 0 {
			// The first message failed (an unreachable address, say):
			// drop it and go on with the rest.
			fail(fmt.Errorf("sendmmsg: %w", b.errno))
			r = 1
		}
		b.sent += r
	}
	for k := range n {
		// Keep the buffers (replies are appended to them) but let the
		// kernel-facing pointers go with the next queue.
		b.outBufs[k] = b.outBufs[k][:0]
	}
	return nil
}
