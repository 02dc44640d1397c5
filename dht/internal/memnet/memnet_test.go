package memnet

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestDeliverDropAndClose(t *testing.T) {
	n := New()
	a, b := n.Listen(), n.Listen()
	if a.AddrPort().Addr() == b.AddrPort().Addr() {
		t.Fatal("conns share an IP")
	}
	msg := []byte("hello")
	if _, err := a.WriteTo(msg, b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	msg[0] = 'j' // the datagram was copied
	buf := make([]byte, 3)
	nb, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:nb]) != "hel" || from.String() != a.LocalAddr().String() {
		t.Fatalf("got %q from %v, %v; want truncated \"hel\" from %v", buf[:nb], from, err, a.LocalAddr())
	}
	// A full queue drops instead of blocking.
	for range QueueLen + 10 {
		a.WriteTo([]byte("x"), b.LocalAddr())
	}
	if n.Dropped.Load() != 10 {
		t.Fatalf("dropped %d, want 10", n.Dropped.Load())
	}
	b.SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, err := b.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	b.Close()
	if _, _, err := b.ReadFrom(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	// Datagrams to a closed conn vanish, like UDP to a dead host.
	if _, err := a.WriteTo([]byte("x"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ListenAddr(b.AddrPort()); err != nil {
		t.Fatalf("address of a closed conn not reusable: %v", err)
	}
}
