package rawsock

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection, the first
// wrapped.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return Wrap(c), r.c
}

func TestWrapOnlyTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Error("a net.Pipe end was wrapped")
	}
	w, _ := pair(t)
	_, raw := w.(*conn)
	if raw != (runtime.GOOS == "linux") {
		t.Errorf("TCP conn wrapped: %v on %s", raw, runtime.GOOS)
	}
}

// TestLargeWriteSlowReader writes more than the socket buffers hold to a
// reader that takes its time, so writes wait in the poller midway, and
// reads the peer's answer through the wrapped end at the same time.
func TestLargeWriteSlowReader(t *testing.T) {
	w, peer := pair(t)
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	got := make(chan []byte, 1)
	go func() {
		var buf bytes.Buffer
		chunk := make([]byte, 64<<10)
		for buf.Len() < len(data) {
			if buf.Len() < 1<<20 {
				time.Sleep(time.Millisecond) // slow at first: the writer must wait
			}
			n, err := peer.Read(chunk)
			buf.Write(chunk[:n])
			if err != nil {
				break
			}
		}
		peer.Write([]byte("thanks"))
		got <- buf.Bytes()
	}()
	if n, err := w.Write(data); err != nil || n != len(data) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(<-got, data) {
		t.Fatal("the peer received different bytes")
	}
	reply := make([]byte, 6)
	if _, err := io.ReadFull(w, reply); err != nil || string(reply) != "thanks" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	peer.Close()
	if n, err := w.Read(reply); n != 0 || err != io.EOF {
		t.Errorf("read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	w, _ := pair(t)
	if err := w.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := w.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: %v is not a net.Error timeout", err)
	}
}

func TestWriteAfterPeerReset(t *testing.T) {
	w, peer := pair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // RST
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = w.Write(make([]byte, 64<<10))
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes to a reset connection kept succeeding")
	}
	var oe *net.OpError
	if runtime.GOOS == "linux" && !errors.As(err, &oe) {
		t.Errorf("error %v (%T) is not a *net.OpError", err, err)
	}
}
