package memconn

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

var (
	hostA = netip.MustParseAddr("10.0.0.1")
	hostB = netip.MustParseAddrPort("10.0.0.2:6881")
)

// connect returns a dialled connection and its accepted other end.
func connect(t *testing.T, n *Network) (client, server net.Conn) {
	t.Helper()
	l, err := n.Listen(hostB)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	client, err = n.Dial(t.Context(), hostA, hostB)
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestBothWriteFirst: both ends write before they read, as in a
// BitTorrent handshake; with net.Pipe this would deadlock.
func TestBothWriteFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n Network
		c, s := connect(t, &n)
		if got, want := c.RemoteAddr().String(), hostB.String(); got != want {
			t.Errorf("client's remote address %s, want %s", got, want)
		}
		if got := s.RemoteAddr().(*net.TCPAddr).AddrPort(); got.Addr() != hostA || got != c.LocalAddr().(*net.TCPAddr).AddrPort() {
			t.Errorf("server sees %v, client is %v", got, c.LocalAddr())
		}
		for _, w := range []net.Conn{c, s} {
			if _, err := w.Write([]byte("hello from " + w.LocalAddr().String())); err != nil {
				t.Fatal(err)
			}
		}
		for _, r := range []net.Conn{c, s} {
			want := "hello from " + r.RemoteAddr().String()
			got := make([]byte, len(want))
			if _, err := io.ReadFull(r, got); err != nil || string(got) != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		}
	})
}

// TestBackpressure: a writer blocks once the buffer is full and resumes
// as the reader drains it; every byte arrives in order.
func TestBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Network{Buffer: 1000}
		c, s := connect(t, &n)
		data := make([]byte, 10_000)
		for i := range data {
			data[i] = byte(i * 7)
		}
		written := make(chan error, 1)
		go func() {
			_, err := c.Write(data)
			written <- err
		}()
		synctest.Wait()
		select {
		case err := <-written:
			t.Fatalf("a write of 10 times the buffer returned at once (%v)", err)
		default:
		}
		got, err := io.ReadAll(io.LimitReader(s, int64(len(data))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes (%v), differing from those written", len(got), err)
		}
		if err := <-written; err != nil {
			t.Fatal(err)
		}
	})
}

// TestClose: the other side reads what was sent, then io.EOF, and its
// writes fail; this side's operations fail with net.ErrClosed, waiting
// ones included.
func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Network{Buffer: 10}
		c, s := connect(t, &n)
		blockedRead := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			blockedRead <- err
		}()
		if _, err := s.Write([]byte("0123456789")); err != nil { // fills the buffer
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 9)); err != nil { // with the byte above, drains it
			t.Fatal(err)
		}
		if err := <-blockedRead; err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		blockedWrite := make(chan error, 1)
		go func() {
			_, err := s.Write([]byte("more"))
			blockedWrite <- err
		}()
		go func() {
			_, err := c.Read(make([]byte, 0))
			blockedRead <- err
		}()
		if err := <-blockedRead; err != nil {
			t.Fatalf("empty read: %v", err)
		}
		synctest.Wait()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-blockedWrite; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("write waiting at Close: %v, want net.ErrClosed", err)
		}
		if err := s.Close(); err == nil {
			t.Fatal("second Close succeeded")
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "0123456789" {
			t.Fatalf("after the other side closed: %q, %v", got, err)
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("write to a closed peer: %v", err)
		}
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
		go func() {
			_, err := c.Read(make([]byte, 1))
			blockedRead <- err
		}()
		synctest.Wait()
		if err := <-blockedRead; err != io.EOF {
			t.Fatalf("read at end of stream: %v", err)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

// TestDeadlines: an operation fails exactly at its deadline, a deadline
// moved while an operation waits takes effect, a past deadline fails at
// once, and a cleared one lets operations work again.
func TestDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Network{Buffer: 4}
		c, s := connect(t, &n)
		start := time.Now()
		c.SetReadDeadline(start.Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("read past deadline: %v", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Fatalf("read timed out after %v, want 5s", d)
		}
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("read after deadline: %v", err)
		}

		// Moved later while waiting: the first timer must not fire.
		start = time.Now()
		c.SetReadDeadline(start.Add(time.Second))
		done := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		time.Sleep(500 * time.Millisecond)
		c.SetReadDeadline(start.Add(3 * time.Second))
		if err := <-done; !isTimeout(err) {
			t.Fatalf("read: %v", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("moved deadline fired after %v, want 3s", d)
		}

		// Moved into the past while waiting: fails now.
		c.SetReadDeadline(time.Time{})
		go func() {
			_, err := c.Read(make([]byte, 1))
			done <- err
		}()
		synctest.Wait()
		start = time.Now()
		c.SetReadDeadline(start.Add(-time.Second))
		if err := <-done; !isTimeout(err) || time.Since(start) != 0 {
			t.Fatalf("read: %v after %v", err, time.Since(start))
		}

		// Cleared: reads work again.
		c.SetReadDeadline(time.Time{})
		s.Write([]byte("x"))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}

		// Writes: blocked on a full buffer until the deadline.
		start = time.Now()
		s.SetWriteDeadline(start.Add(2 * time.Second))
		k, err := s.Write([]byte("0123456789"))
		if !isTimeout(err) || k != 4 || time.Since(start) != 2*time.Second {
			t.Fatalf("write: %d bytes, %v, after %v; want 4, a timeout, 2s", k, err, time.Since(start))
		}
		s.SetDeadline(time.Time{})
		if got, err := io.ReadAll(io.LimitReader(c, 4)); err != nil || string(got) != "0123" {
			t.Fatalf("read %q, %v", got, err)
		}
	})
}

// TestLatency: bytes become readable Latency after they were written, in
// order, whatever the size of the reads.
func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Network{Latency: 30 * time.Millisecond}
		c, s := connect(t, &n)
		start := time.Now()
		c.Write([]byte("ab"))
		time.Sleep(10 * time.Millisecond)
		c.Write([]byte("cd"))
		buf := make([]byte, 10)
		k, err := s.Read(buf)
		if err != nil || string(buf[:k]) != "ab" || time.Since(start) != 30*time.Millisecond {
			t.Fatalf("first read %q, %v at %v", buf[:k], err, time.Since(start))
		}
		k, err = s.Read(buf)
		if err != nil || string(buf[:k]) != "cd" || time.Since(start) != 40*time.Millisecond {
			t.Fatalf("second read %q, %v at %v", buf[:k], err, time.Since(start))
		}
		// A close is seen after the data before it.
		c.Write([]byte("ef"))
		c.Close()
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "ef" {
			t.Fatalf("read %q, %v", got, err)
		}
	})
}

// TestListener: dials to nobody, to a taken address and to a closed
// listener fail; closing a listener ends Accept and the connections it
// had not accepted.
func TestListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n Network
		ctx := context.Background()
		if _, err := n.Dial(ctx, hostA, hostB); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial to nobody: %v", err)
		}
		l, err := n.Listen(hostB)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Listen(hostB); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("second listen: %v", err)
		}
		if _, err := n.Listen(netip.AddrPort{}); err == nil {
			t.Fatal("listen on no address succeeded")
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := n.Dial(cctx, hostA, hostB); !errors.Is(err, context.Canceled) {
			t.Fatalf("dial with a cancelled context: %v", err)
		}
		first, err := n.Dial(ctx, hostA, hostB)
		if err != nil {
			t.Fatal(err)
		}
		pending, err := n.Dial(ctx, hostA, hostB)
		if err != nil {
			t.Fatal(err)
		}
		if first.LocalAddr().String() == pending.LocalAddr().String() {
			t.Fatalf("two dials from the same port %v", first.LocalAddr())
		}
		a, err := l.Accept()
		if err != nil || a.RemoteAddr().String() != first.LocalAddr().String() {
			t.Fatalf("accepted %v, %v; want the first dial from %v", a, err, first.LocalAddr())
		}
		l.Close()
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("accept after close: %v", err)
		}
		if _, err := pending.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("a connection never accepted reads %v, want io.EOF", err)
		}
		if _, err := n.Dial(ctx, hostA, hostB); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial to a closed listener: %v", err)
		}
		// The accepted connection outlives its listener.
		first.Write([]byte("x"))
		if _, err := a.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		first.Close()
		a.Close()

		// A waiting Accept ends with Close.
		l2, err := n.Listen(hostB)
		if err != nil {
			t.Fatalf("address not free after close: %v", err)
		}
		accepted := make(chan error, 1)
		go func() {
			_, err := l2.Accept()
			accepted <- err
		}()
		synctest.Wait()
		l2.Close()
		if err := <-accepted; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("waiting accept: %v", err)
		}
	})
}

// TestConcurrent: several goroutines write and read both ends at once,
// with latency and a small buffer; each direction delivers exactly the
// bytes written (checked under -race).
func TestConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Network{Buffer: 3000, Latency: time.Millisecond}
		c, s := connect(t, &n)
		r := rand.New(rand.NewPCG(3, 4))
		send := func(w net.Conn, data []byte, seed uint64) {
			r := rand.New(rand.NewPCG(seed, 0))
			for len(data) > 0 {
				k := min(len(data), 1+r.IntN(5000))
				if _, err := w.Write(data[:k]); err != nil {
					t.Error(err)
					return
				}
				data = data[k:]
			}
		}
		data := [2][]byte{make([]byte, 200_000), make([]byte, 150_000)}
		for _, d := range data {
			for i := range d {
				d[i] = byte(r.Uint32())
			}
		}
		var wg sync.WaitGroup
		var got [2][]byte
		wg.Go(func() { send(c, data[0], 1) })
		wg.Go(func() { send(s, data[1], 2) })
		wg.Go(func() { got[0], _ = io.ReadAll(io.LimitReader(s, int64(len(data[0])))) })
		wg.Go(func() { got[1], _ = io.ReadAll(io.LimitReader(c, int64(len(data[1])))) })
		wg.Wait()
		for i := range data {
			if !bytes.Equal(got[i], data[i]) {
				t.Fatalf("direction %d: %d bytes read differ from the %d written", i, len(got[i]), len(data[i]))
			}
		}
	})
}

// TestVanish: after a host vanishes, its connections deliver nothing in
// either direction, not even a close; only deadlines and local closes end
// waiting operations, and dials to it wait for their context.
func TestVanish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Network{Buffer: 100}
		c, s := connect(t, &n)
		c.Write([]byte("sent before"))
		n.Vanish(hostB.Addr())

		start := time.Now()
		s.SetReadDeadline(start.Add(time.Minute))
		if _, err := s.Read(make([]byte, 100)); !isTimeout(err) || time.Since(start) != time.Minute {
			t.Fatalf("read on the vanished host: %v after %v", err, time.Since(start))
		}
		s.Close() // not seen by c
		c.SetReadDeadline(start.Add(2 * time.Minute))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) || time.Since(start) != 2*time.Minute {
			t.Fatalf("read from the vanished host: %v after %v", err, time.Since(start))
		}
		// Writes fill the buffer, then wait.
		c.SetWriteDeadline(start.Add(3 * time.Minute))
		k, err := c.Write(make([]byte, 1000))
		if !isTimeout(err) || k != 100-len("sent before") {
			t.Fatalf("write to the vanished host: %d bytes, %v", k, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start = time.Now()
		if _, err := n.Dial(ctx, hostA, hostB); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Fatalf("dial to the vanished host: %v after %v", err, time.Since(start))
		}
		// Other hosts are unaffected.
		other := netip.MustParseAddrPort("10.0.0.3:6881")
		l, err := n.Listen(other)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d, err := n.Dial(context.Background(), hostA, other)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		a, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		d.Write([]byte("x"))
		if _, err := a.Read(make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	})
}
