package utp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// simPair connects a client on one new endpoint to a server on another.
func simPair(t *testing.T, n *simNet, la, lb simLink, cfg Config) (a, b *simEnd, client, server *Conn) {
	t.Helper()
	a = n.add(t, la, cfg)
	b = n.add(t, lb, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	client, err = a.sock.DialAddrPort(ctx, b.addr)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, n)
	}
	server, err = b.sock.AcceptUTP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return a, b, client, server
}

// exchange sends up from client to server and down the other way at the
// same time, checks both arrive intact, then closes both ends and checks
// the server sees a clean end of stream.
func exchange(t *testing.T, n *simNet, client, server *Conn, up, down []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	var gotDown []byte
	wg.Add(3)
	go func() {
		defer wg.Done()
		if _, err := client.Write(up); err != nil {
			errs <- err
		}
	}()
	go func() {
		defer wg.Done()
		if _, err := server.Write(down); err != nil {
			errs <- err
		}
	}()
	go func() {
		defer wg.Done()
		gotDown = make([]byte, len(down))
		if _, err := io.ReadFull(client, gotDown); err != nil {
			errs <- err
		}
	}()
	gotUp := make([]byte, len(up))
	if _, err := io.ReadFull(server, gotUp); err != nil {
		t.Fatalf("server read: %v (%v)", err, n)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("transfer: %v (%v)", err, n)
	}
	if !bytes.Equal(gotUp, up) || !bytes.Equal(gotDown, down) {
		t.Fatalf("data differs (%v)", n)
	}
	client.Close()
	if rest, err := io.ReadAll(server); err != nil || len(rest) != 0 {
		t.Fatalf("server after the client's FIN: %d bytes, %v; want a clean EOF", len(rest), err)
	}
	server.Close()
}

func TestSimTransfer(t *testing.T) {
	for _, loss := range []float64{0, 0.01, 0.03, 0.05} {
		t.Run("loss="+pct(loss), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newSimNet(uint64(loss * 1000))
				link := simLink{Loss: loss, Dup: 0.01, Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}
				_, _, client, server := simPair(t, n, link, link, Config{})
				exchange(t, n, client, server, randomBytes(2<<20, 3), randomBytes(256<<10, 4))
				t.Logf("%v; client %+v", n, client.Stats())
			})
		})
	}
}

func pct(f float64) string {
	return string(rune('0'+int(f*100))) + "%"
}

// dropFirst drops the first packet of type typ.
func dropFirst(typ uint8) func(packet) bool {
	var mu sync.Mutex
	done := false
	return func(p packet) bool {
		mu.Lock()
		defer mu.Unlock()
		if p.typ == typ && !done {
			done = true
			return true
		}
		return false
	}
}

// TestSimLostHandshakeAndFin loses the first SYN, the first answer to a
// SYN or the first FIN: each is resent, the data arrives and both ends
// finish.
func TestSimLostHandshakeAndFin(t *testing.T) {
	for _, tc := range []struct {
		name     string
		typ      uint8
		onClient bool // the client's packet is lost (else the server's)
	}{
		{"syn", stSyn, true},
		{"syn-answer", stState, false},
		{"fin", stFin, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newSimNet(1)
				link := simLink{Delay: 10 * time.Millisecond}
				lossy := link
				lossy.Drop = dropFirst(tc.typ)
				la, lb := link, lossy
				if tc.onClient {
					la, lb = lossy, link
				}
				a, b, client, server := simPair(t, n, la, lb, Config{})
				exchange(t, n, client, server, randomBytes(100<<10, 1), randomBytes(10<<10, 2))
				if lost := n.snapshot().lost; lost != 1 {
					t.Fatalf("lost %d packets, want 1", lost)
				}
				time.Sleep(time.Minute)
				if a.sock.NumConns() != 0 || b.sock.NumConns() != 0 {
					t.Fatalf("connections left after both closed: %d, %d", a.sock.NumConns(), b.sock.NumConns())
				}
			})
		})
	}
}

func TestSimSequenceWrap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(7)
		link := simLink{Loss: 0.02, Delay: 5 * time.Millisecond, Jitter: 5 * time.Millisecond}
		a := n.add(t, link, Config{})
		b := n.add(t, link, Config{})
		a.sock.isn = func() uint16 { return 65500 }
		b.sock.isn = func() uint16 { return 65000 }
		client, err := a.sock.DialAddrPort(context.Background(), b.addr)
		if err != nil {
			t.Fatal(err)
		}
		server, err := b.sock.AcceptUTP()
		if err != nil {
			t.Fatal(err)
		}
		// About 1700 and 850 packets: both directions wrap.
		exchange(t, n, client, server, randomBytes(2<<20, 5), randomBytes(1<<20, 6))
		if client.seqNr >= 65500 || server.seqNr >= 65000 { // numerically below the start: wrapped
			t.Fatalf("sequence numbers did not wrap: %d, %d", client.seqNr, server.seqNr)
		}
	})
}

func TestSimPeerVanishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		link := simLink{Delay: 10 * time.Millisecond}
		a, b, client, server := simPair(t, n, link, link, Config{})
		exchange0(t, client, server)
		b.vanish()
		start := time.Now()
		_, err := client.Write(randomBytes(8<<20, 1)) // more than the send buffer: blocks until failure
		var ne net.Error
		if err == nil || !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, ErrTimeout) {
			t.Fatalf("write to a vanished peer: %v, want a time-out", err)
		}
		t.Logf("gave up after %v", time.Since(start))
		if a.sock.NumConns() != 0 {
			t.Fatalf("%d connections left", a.sock.NumConns())
		}
	})
}

func TestSimIdlePeerVanishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		link := simLink{Delay: 10 * time.Millisecond}
		a, b, client, server := simPair(t, n, link, link, Config{})
		exchange0(t, client, server)
		b.vanish()
		_, err := client.Read(make([]byte, 10))
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("read from a vanished idle peer: %v, want a time-out", err)
		}
		if a.sock.NumConns() != 0 {
			t.Fatalf("%d connections left", a.sock.NumConns())
		}
	})
}

// exchange0 passes a few bytes each way.
func exchange0(t *testing.T, client, server *Conn) {
	t.Helper()
	buf := make([]byte, 5)
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	if _, err := server.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "world" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

func TestSimKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		link := simLink{Delay: 10 * time.Millisecond}
		_, _, client, server := simPair(t, n, link, link, Config{})
		exchange0(t, client, server)
		sent := n.snapshot().sent
		time.Sleep(10 * time.Minute) // twice the idle time-out: keep-alives hold it open
		if n.snapshot().sent-sent < 10 {
			t.Fatalf("%d packets in 10 idle minutes: no keep-alives", n.snapshot().sent-sent)
		}
		exchange0(t, client, server)
	})
}

func TestSimReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		link := simLink{Delay: 10 * time.Millisecond}
		_, b, client, server := simPair(t, n, link, link, Config{})
		exchange0(t, client, server)
		b.sock.Close() // resets its connections
		_, err := client.Read(make([]byte, 10))
		if !errors.Is(err, ErrReset) {
			t.Fatalf("read after the peer reset: %v, want ErrReset", err)
		}
	})
}

func TestSimDialRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		link := simLink{Delay: 10 * time.Millisecond}
		a := n.add(t, link, Config{})
		b := n.add(t, link, Config{MaxHalfOpen: 1})
		b.sock.mu.Lock()
		b.sock.halfOpen = 1 // full: the SYN is dropped
		b.sock.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := a.sock.DialAddrPort(ctx, b.addr); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("dial to a full listener: %v, want the context's deadline", err)
		}
		if b.sock.synDropped.Load() == 0 {
			t.Fatal("no SYN dropped")
		}
	})
}

func TestSimDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(1)
		link := simLink{Delay: 10 * time.Millisecond}
		_, _, client, _ := simPair(t, n, link, link, Config{})
		client.SetReadDeadline(time.Now().Add(time.Second))
		_, err := client.Read(make([]byte, 10))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read past its deadline: %v, want a time-out", err)
		}
	})
}

// TestSimSlowReader fills a small receive buffer: the advertised window
// shuts, the sender waits (with zero-window probes) instead of flooding,
// and everything arrives once the reader drains it slowly.
func TestSimSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(2)
		link := simLink{Delay: 10 * time.Millisecond}
		cfg := Config{RecvBuffer: 64 << 10}
		_, _, client, server := simPair(t, n, link, link, cfg)
		data := randomBytes(1<<20, 12)
		go func() {
			client.Write(data)
			client.Close()
		}()
		time.Sleep(5 * time.Second) // nobody reads: the window shuts
		server.mu.Lock()
		w, mss := server.window(), server.mss()
		server.mu.Unlock()
		if w > 2*mss {
			t.Fatalf("receive window %d after 5 s without reads", w)
		}
		if in := client.Stats().InFlight; in > 64<<10 {
			t.Fatalf("%d bytes in flight against a 64 KiB window", in)
		}
		var got []byte
		buf := make([]byte, 4<<10)
		for {
			k, err := server.Read(buf)
			got = append(got, buf[:k]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read after %d bytes: %v", len(got), err)
			}
			time.Sleep(time.Millisecond)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("got %d bytes, want %d, or they differ", len(got), len(data))
		}
	})
}
