package trackerserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// udpTestbed is a server socket with client sockets on loopback, for the
// worker tests that drive the batch loops directly.
type udpTestbed struct {
	s       *Server
	sock    *net.UDPConn
	clients []*net.UDPConn
}

func newUDPTestbed(t *testing.T, clients int) *udpTestbed {
	t.Helper()
	s, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Skipf("no udp4 loopback: %v", err)
	}
	t.Cleanup(func() { sock.Close() })
	// Room for a few hundred queued datagrams (the kernel caps it at
	// twice net.core.rmem_max, which still holds them).
	if err := sock.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	tb := &udpTestbed{s: s, sock: sock}
	for range clients {
		c, err := net.DialUDP("udp4", nil, sock.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		tb.clients = append(tb.clients, c)
	}
	return tb
}

// batch is a udpBatch on the server socket.
func (tb *udpTestbed) batch(t *testing.T) *udpBatch {
	t.Helper()
	b := newUDPBatch(tb.sock, tb.s.log)
	if b == nil {
		t.Fatal("newUDPBatch: nil for a *net.UDPConn")
	}
	return b
}

// sendConnects queues n connect requests, spread over the clients, with
// transaction ids first, first+1, ...
func (tb *udpTestbed) sendConnects(t *testing.T, first, n int) {
	t.Helper()
	for i := range n {
		p := binary.BigEndian.AppendUint64(nil, udpProtocolID)
		p = binary.BigEndian.AppendUint32(p, udpConnect)
		p = binary.BigEndian.AppendUint32(p, uint32(first+i))
		if _, err := tb.clients[i%len(tb.clients)].Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads answers on every client until want distinct transaction
// ids came back or 10 s passed, and returns the ids seen and the first
// problem met.
func (tb *udpTestbed) collect(want int, action uint32) (map[uint32]bool, error) {
	var mu sync.Mutex
	seen := make(map[uint32]bool, want)
	var first error
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for _, c := range tb.clients {
		wg.Go(func() {
			c.SetReadDeadline(deadline)
			buf := make([]byte, 2048)
			for {
				mu.Lock()
				done := len(seen) >= want || first != nil
				mu.Unlock()
				if done {
					// Wake the others, whose reads may be waiting.
					for _, o := range tb.clients {
						o.SetReadDeadline(time.Now())
					}
					return
				}
				n, err := c.Read(buf)
				mu.Lock()
				switch {
				case err != nil:
					if len(seen) < want && first == nil {
						first = fmt.Errorf("after %d of %d answers: %w", len(seen), want, err)
					}
				case n < 8 || binary.BigEndian.Uint32(buf) != action:
					first = fmt.Errorf("answer %x: want action %d", buf[:n], action)
				default:
					seen[binary.BigEndian.Uint32(buf[4:])] = true
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return seen, first
}

// TestUDPHelperDrainsBacklog: a called helper reads without waiting until
// the queue is empty, answers everything in it, and then waits for the
// next call (it stops when told, not when the queue is empty).
func TestUDPHelperDrainsBacklog(t *testing.T) {
	tb := newUDPTestbed(t, 4)
	b := tb.batch(t)
	const n = 3*udpBatchSize + 7
	tb.sendConnects(t, 0, n)
	call, stop, done := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tb.s.udpHelper(b, call, stop)
	}()
	call <- struct{}{}
	seen, err := tb.collect(n, udpConnect)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !seen[uint32(i)] {
			t.Fatalf("no answer to transaction %d", i)
		}
	}
	select {
	case <-done:
		t.Fatal("helper returned before it was stopped")
	case <-time.After(50 * time.Millisecond):
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("helper did not return within 5s of stop")
	}
	if b.handled.Load() != n {
		t.Errorf("helper handled %d datagrams, want %d", b.handled.Load(), n)
	}
}

// backlogAt returns how many queued datagrams of size bytes make a socket
// with a read buffer of udpTestBuffer backlogged.
func backlogAt(t *testing.T, size int) int {
	t.Helper()
	tb := newUDPTestbed(t, 1)
	defer tb.sock.Close()
	if err := tb.sock.SetReadBuffer(udpTestBuffer); err != nil {
		t.Fatal(err)
	}
	probe := tb.batch(t)
	if probe.backlogged() {
		t.Fatal("an empty socket is backlogged")
	}
	pkt := make([]byte, size)
	for k := 0; k < 5000; k++ {
		if probe.backlogged() {
			if k < 2*udpBatchSize {
				t.Fatalf("backlogged after %d datagrams: the test needs a buffer for more", k)
			}
			return k
		}
		if _, err := tb.clients[0].Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("5000 queued datagrams do not make the socket backlogged")
	return 0
}

// udpTestBuffer is the read buffer the backlog tests ask for (the kernel
// doubles it).
const udpTestBuffer = 256 << 10

// TestUDPLeaderCallsOnBacklog: the leader calls a helper when, after a
// full batch, the socket still holds more than half its buffer, and not
// for a queue below that, however many full batches it makes.
func TestUDPLeaderCallsOnBacklog(t *testing.T) {
	k := backlogAt(t, 16) // connect requests are 16 bytes
	for _, tc := range []struct {
		queued int
		call   bool
	}{
		{k + udpBatchSize/2, true},  // still over half after the first batch
		{k - 2*udpBatchSize, false}, // full batches, never over half
		{udpBatchSize / 2, false},   // one short batch
	} {
		t.Run(fmt.Sprint(tc.queued), func(t *testing.T) {
			tb := newUDPTestbed(t, 4)
			if err := tb.sock.SetReadBuffer(udpTestBuffer); err != nil {
				t.Fatal(err)
			}
			b := tb.batch(t)
			tb.sendConnects(t, 0, tc.queued)
			call := make(chan struct{}, 1)
			errc := make(chan error, 1)
			go func() { errc <- tb.s.udpLeader(context.Background(), b, call) }()
			if _, err := tb.collect(tc.queued, udpConnect); err != nil {
				t.Fatal(err)
			}
			tb.sock.Close()
			select {
			case err := <-errc:
				if err != nil {
					t.Fatalf("leader: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("leader did not return within 5s of the socket's close")
			}
			if called := len(call) == 1; called != tc.call {
				t.Errorf("%d queued (backlogged from %d): helper called %v, want %v", tc.queued, k, called, tc.call)
			}
			if int(b.handled.Load()) != tc.queued {
				t.Errorf("leader handled %d, want %d", b.handled.Load(), tc.queued)
			}
		})
	}
}

// TestUDPWorkersShareBursts runs a leader and two helpers on bursts of
// announces from several clients until the helpers have answered some,
// checks that every request was answered, and that closing the socket
// stops all of them.
func TestUDPWorkersShareBursts(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("helpers run beside the leader only with two or more Ps")
	}
	// Bursts fill three quarters of the buffer: over the half that calls
	// helpers, short of the drops.
	k := backlogAt(t, udpAnnounceLen)
	burst := k + k/2
	goroutines := runtime.NumGoroutine()
	tb := newUDPTestbed(t, 6)
	if err := tb.sock.SetReadBuffer(udpTestBuffer); err != nil {
		t.Fatal(err)
	}
	bs := []*udpBatch{tb.batch(t), tb.batch(t), tb.batch(t)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tb.s.serveUDPBatches(ctx, bs) }()

	// A connection id per client, then bursts of announces.
	tb.sendConnects(t, 0, len(tb.clients))
	ids := make([]uint64, len(tb.clients))
	for i, c := range tb.clients {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil || n != 16 {
			t.Fatalf("connect answer of client %d: %d bytes, %v", i, n, err)
		}
		ids[i] = binary.BigEndian.Uint64(buf[8:])
	}
	tid, helped := 1000, 0
	for round := 0; helped == 0; round++ {
		if round == 50 {
			t.Fatalf("helpers answered nothing in %d bursts of %d", round, burst)
		}
		for i := range burst {
			c := i % len(tb.clients)
			p := binary.BigEndian.AppendUint64(nil, ids[c])
			p = binary.BigEndian.AppendUint32(p, udpAnnounce)
			p = binary.BigEndian.AppendUint32(p, uint32(tid+i))
			var ih, pid [20]byte
			copy(ih[:], fmt.Sprintf("burst-torrent-%d", i%7))
			copy(pid[:], fmt.Sprintf("burst-peer-%d-%d", round, i))
			p = append(p, ih[:]...)
			p = append(p, pid[:]...)
			p = binary.BigEndian.AppendUint64(p, 0)    // downloaded
			p = binary.BigEndian.AppendUint64(p, 1)    // left
			p = binary.BigEndian.AppendUint64(p, 0)    // uploaded
			p = binary.BigEndian.AppendUint32(p, 2)    // started
			p = binary.BigEndian.AppendUint32(p, 0)    // ip
			p = binary.BigEndian.AppendUint32(p, 0)    // key
			p = binary.BigEndian.AppendUint32(p, 10)   // numwant
			p = binary.BigEndian.AppendUint16(p, 6881) // port
			if _, err := tb.clients[c].Write(p); err != nil {
				t.Fatal(err)
			}
		}
		seen, err := tb.collect(burst, udpAnnounce)
		if err != nil {
			t.Fatalf("burst %d: %v", round, err)
		}
		for i := range burst {
			if !seen[uint32(tid+i)] {
				t.Fatalf("burst %d: no answer to transaction %d", round, tid+i)
			}
		}
		tid += burst
		for _, b := range bs[1:] {
			helped += int(b.handled.Load())
		}
	}
	cancel()
	tb.sock.Close()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("serveUDPBatches: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("workers did not stop within 5s of the socket's close")
	}
	total := 0
	for _, b := range bs {
		total += int(b.handled.Load())
	}
	if want := len(tb.clients) + tid - 1000; total != want {
		t.Errorf("workers handled %d datagrams, %d were sent", total, want)
	}
	if n := tb.s.table.peers(); n != int64(tid-1000) {
		t.Errorf("%d peers tracked after %d announces of distinct peers", n, tid-1000)
	}
	// No goroutine of the workers outlives serveUDPBatches.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines after the workers stopped, %d before", n, goroutines)
	}
}
