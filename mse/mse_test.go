package mse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/rawsock"
)

// tcpPair returns the two ends of a loopback TCP connection: the dialled
// end first.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
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
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

var testSKey = [20]byte{0: 0xaa, 7: 0x55, 19: 0x01}

// lookupOf returns a lookup serving the given SKEYs.
func lookupOf(skeys ...[20]byte) func([20]byte) ([20]byte, bool) {
	m := make(map[[20]byte][20]byte)
	for _, k := range skeys {
		m[Req2(k)] = k
	}
	return func(req2 [20]byte) ([20]byte, bool) {
		k, ok := m[req2]
		return k, ok
	}
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

type result struct {
	c   *Conn
	err error
}

// handshakePair runs Initiate on a and Accept on b at once.
func handshakePair(ctx context.Context, a, b net.Conn, provide, allow Method, ia []byte, detect bool) (ini, acc result) {
	ch := make(chan result, 1)
	go func() {
		var r result
		conn := b
		if detect {
			var plain bool
			conn, plain, r.err = Detect(b)
			if r.err == nil && plain {
				r.err = errors.New("Detect took an MSE handshake for plaintext")
			}
		}
		if r.err == nil {
			r.c, r.err = Accept(ctx, conn, lookupOf([20]byte{1}, testSKey, [20]byte{2}), allow, nil)
		}
		if r.err != nil {
			b.Close() // as a caller does: the initiator sees the end
		}
		ch <- r
	}()
	ini.c, ini.err = Initiate(ctx, a, testSKey, provide, ia, nil)
	return ini, <-ch
}

// TestHandshakeMethods runs both roles against each other over net.Pipe
// and loopback TCP for every combination of offered and allowed methods,
// then checks the initial payload and data both ways.
func TestHandshakeMethods(t *testing.T) {
	sets := []Method{Plaintext, RC4, Plaintext | RC4}
	for _, transport := range []string{"pipe", "tcp"} {
		for _, provide := range sets {
			for _, allow := range sets {
				name := fmt.Sprintf("%s/offer=%v/allow=%v", transport, provide, allow)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					var a, b net.Conn
					if transport == "tcp" {
						a, b = tcpPair(t)
					} else {
						a, b = pipePair(t)
					}
					want := RC4
					if provide&allow&RC4 == 0 {
						want = Plaintext
					}
					if provide&allow == 0 {
						want = 0
					}
					// net.Pipe has no buffer: the initiator's write of
					// an initial payload would wait for the acceptor's
					// reads while the acceptor waits to send its
					// selection (a TCP socket's buffer holds them).
					var ia []byte
					if transport == "tcp" {
						ia = randBytes(1, 68)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					ini, acc := handshakePair(ctx, a, b, provide, allow, ia, transport == "tcp")
					if want == 0 {
						if !errors.Is(acc.err, ErrNoCommonMethod) {
							t.Errorf("Accept: %v, want ErrNoCommonMethod", acc.err)
						}
						if ini.err == nil {
							t.Errorf("Initiate succeeded with no common method")
						}
						return
					}
					if ini.err != nil || acc.err != nil {
						t.Fatalf("Initiate: %v; Accept: %v", ini.err, acc.err)
					}
					if ini.c.Method() != want || acc.c.Method() != want {
						t.Fatalf("methods %v and %v, want %v", ini.c.Method(), acc.c.Method(), want)
					}
					if acc.c.IALen() != len(ia) {
						t.Errorf("IALen = %d, want %d", acc.c.IALen(), len(ia))
					}
					exchange(t, ini.c, acc.c, ia)
				})
			}
		}
	}
}

// exchange checks that b's stream starts with ia and that data flows
// both ways unchanged, written with Write and WriteInPlace in odd pieces.
func exchange(t *testing.T, a, b *Conn, ia []byte) {
	t.Helper()
	up, down := randBytes(2, 300<<10+17), randBytes(3, 200<<10+5)
	errc := make(chan error, 2)
	go func() { errc <- writePieces(a, up, true) }()
	go func() { errc <- writePieces(b, down, false) }()
	got := make([]byte, len(ia)+len(up))
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatalf("reading the initial payload and data: %v", err)
	}
	if !bytes.Equal(got[:len(ia)], ia) {
		t.Fatalf("initial payload %x, want %x", got[:len(ia)], ia)
	}
	if !bytes.Equal(got[len(ia):], up) {
		t.Fatal("data from the initiator changed on the way")
	}
	got = make([]byte, len(down))
	if _, err := io.ReadFull(a, got); err != nil {
		t.Fatalf("reading data from the acceptor: %v", err)
	}
	if !bytes.Equal(got, down) {
		t.Fatal("data from the acceptor changed on the way")
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// writePieces writes data in pieces of varied sizes, with WriteInPlace on
// a copy if inPlace, and checks Write leaves its argument alone.
func writePieces(c *Conn, data []byte, inPlace bool) error {
	sizes := []int{1, 7, 68, 16 << 10, 200 << 10, 3}
	for i := 0; len(data) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(data))
		piece := data[:n]
		if inPlace {
			if _, err := c.WriteInPlace(bytes.Clone(piece)); err != nil {
				return err
			}
		} else {
			before := bytes.Clone(piece)
			if _, err := c.Write(piece); err != nil {
				return err
			}
			if !bytes.Equal(before, piece) {
				return errors.New("Write changed its argument")
			}
		}
		data = data[n:]
	}
	return nil
}

// TestEmptyIAAndEarlyData: an initiator with no initial payload sends its
// BitTorrent handshake after the handshake, and the acceptor's first
// payload arrives in the same segment as its crypto selection; both must
// come out whole.
func TestEmptyIAAndEarlyData(t *testing.T) {
	for _, m := range []Method{RC4, Plaintext} {
		t.Run(m.String(), func(t *testing.T) {
			a, b := tcpPair(t)
			ctx := context.Background()
			ch := make(chan result, 1)
			msg := randBytes(4, 100)
			go func() {
				c, err := Accept(ctx, b, lookupOf(testSKey), m, nil)
				if err == nil {
					_, err = c.Write(msg) // right behind the selection
				}
				ch <- result{c, err}
			}()
			// Hold the initiator's reads until the acceptor has written
			// both, so its handshake reads them together.
			ini, err := Initiate(ctx, &slowConn{Conn: a, delay: 50 * time.Millisecond}, testSKey, m, nil, nil)
			acc := <-ch
			if err != nil || acc.err != nil {
				t.Fatalf("Initiate: %v; Accept: %v", err, acc.err)
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(ini, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("early data %x, %v; want %x", got, err, msg)
			}
			if _, err := ini.Write(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(acc.c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("data after an empty IA %x, %v; want %x", got, err, msg)
			}
		})
	}
}

// slowConn delays its first Read after each Write.
type slowConn struct {
	net.Conn
	delay time.Duration
	wrote bool
}

func (s *slowConn) Write(b []byte) (int, error) { s.wrote = true; return s.Conn.Write(b) }
func (s *slowConn) Read(b []byte) (int, error) {
	if s.wrote {
		time.Sleep(s.delay)
		s.wrote = false
	}
	return s.Conn.Read(b)
}

func TestDetect(t *testing.T) {
	a, b := tcpPair(t)
	hs := append([]byte(btProtocol), randBytes(5, 48)...)
	go a.Write(hs)
	conn, plain, err := Detect(b)
	if err != nil || !plain {
		t.Fatalf("Detect on a plaintext handshake: %v, %v", plain, err)
	}
	got := make([]byte, len(hs))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, hs) {
		t.Fatalf("after Detect the handshake reads %x, %v; want %x", got, err, hs)
	}

	// A stream that starts like the protocol name and then differs is MSE;
	// Detect stops at the first differing byte without waiting for more.
	a, b = tcpPair(t)
	start := []byte("\x13BitTorrent pX")
	a.Write(start)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn, plain, err = Detect(b)
	if err != nil || plain {
		t.Fatalf("Detect on %q: %v, %v", start, plain, err)
	}
	got = make([]byte, len(start))
	if _, err := io.ReadFull(conn, got); err != nil || !bytes.Equal(got, start) {
		t.Fatalf("after Detect the stream reads %q, %v; want %q", got, err, start)
	}

	a, b = tcpPair(t)
	a.Write([]byte("\x13Bit"))
	a.Close()
	if _, _, err := Detect(b); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Detect on a truncated handshake: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestUnknownTorrent(t *testing.T) {
	a, b := pipePair(t)
	ctx := context.Background()
	ch := make(chan error, 1)
	go func() {
		_, err := Accept(ctx, b, lookupOf([20]byte{9}), RC4, nil)
		b.Close()
		ch <- err
	}()
	if _, err := Initiate(ctx, a, testSKey, RC4, nil, nil); err == nil {
		t.Error("Initiate succeeded against a peer without the torrent")
	}
	if err := <-ch; !errors.Is(err, ErrUnknownTorrent) {
		t.Errorf("Accept: %v, want ErrUnknownTorrent", err)
	}
}

// TestBadPublicKey: keys 0, 1 and P-1 would make the secret predictable.
func TestBadPublicKey(t *testing.T) {
	d, err := newDH(rand.NewChaCha8([32]byte{}))
	if err != nil {
		t.Fatal(err)
	}
	pm1 := make([]byte, keyLen)
	d.p.FillBytes(pm1)
	pm1[keyLen-1]--
	for _, y := range [][]byte{make([]byte, keyLen), append(make([]byte, keyLen-1), 1), pm1} {
		if _, err := d.secret(y); !errors.Is(err, ErrProtocol) {
			t.Errorf("secret(%x...): %v, want ErrProtocol", y[keyLen-4:], err)
		}
	}
	// Accept refuses it without answering.
	a, b := tcpPair(t)
	a.Write(make([]byte, keyLen))
	if _, err := Accept(context.Background(), b, lookupOf(testSKey), RC4, nil); !errors.Is(err, ErrProtocol) {
		t.Errorf("Accept of a zero key: %v, want ErrProtocol", err)
	}
}

// TestStalledPeer: a peer that sends its 96-byte key and then nothing is
// dropped at the handshake deadline (shortened here by Options.Timeout).
func TestStalledPeer(t *testing.T) {
	a, b := tcpPair(t)
	a.Write(randBytes(6, keyLen))
	start := time.Now()
	_, err := Accept(context.Background(), b, lookupOf(testSKey), RC4, &Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Accept from a stalled peer: %v, want os.ErrDeadlineExceeded", err)
	}
	t.Logf("dropped after %v", time.Since(start).Round(time.Millisecond))

	// The initiator's side too: a peer that answers the key and stops.
	a, b = tcpPair(t)
	go func() {
		io.ReadFull(b, make([]byte, keyLen))
		b.Write(randBytes(7, keyLen))
	}()
	_, err = Initiate(context.Background(), a, testSKey, RC4, nil, &Options{Timeout: 200 * time.Millisecond})
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Initiate to a stalled peer: %v, want os.ErrDeadlineExceeded", err)
	}
}

// countConn counts the bytes read through it.
type countConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	return n, err
}

// TestGarbage: 10,000 bytes of garbage instead of a handshake are dropped
// at the synchronisation limit, having read no more than the 608 bytes
// before it and the 20 of the pattern, on either side.
func TestGarbage(t *testing.T) {
	garbage := randBytes(8, 10000)
	a, b := tcpPair(t)
	go a.Write(garbage)
	cc := &countConn{Conn: b}
	_, err := Accept(context.Background(), cc, lookupOf(testSKey), RC4, nil)
	if !errors.Is(err, ErrNoSync) {
		t.Fatalf("Accept of garbage: %v, want ErrNoSync", err)
	}
	if cc.n > keyLen+maxPad+20 {
		t.Errorf("Accept read %d bytes of garbage, more than %d", cc.n, keyLen+maxPad+20)
	}
	t.Logf("acceptor dropped garbage after reading %d bytes", cc.n)

	a, b = tcpPair(t)
	go func() {
		io.ReadFull(b, make([]byte, keyLen))
		b.Write(garbage)
	}()
	cc = &countConn{Conn: a}
	_, err = Initiate(context.Background(), cc, testSKey, RC4, nil, nil)
	if !errors.Is(err, ErrNoSync) {
		t.Fatalf("Initiate against garbage: %v, want ErrNoSync", err)
	}
	t.Logf("initiator dropped garbage after reading %d bytes", cc.n)
}

func TestContextCancel(t *testing.T) {
	a, b := tcpPair(t)
	a.Write(randBytes(9, keyLen))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := Accept(ctx, b, lookupOf(testSKey), RC4, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Accept after cancel: %v, want context.Canceled", err)
	}
}

func TestBadArguments(t *testing.T) {
	a, _ := pipePair(t)
	ctx := context.Background()
	if _, err := Initiate(ctx, a, testSKey, 0, nil, nil); err == nil {
		t.Error("Initiate offering nothing succeeded")
	}
	if _, err := Initiate(ctx, a, testSKey, 4|RC4, nil, nil); err == nil {
		t.Error("Initiate offering an unknown method succeeded")
	}
	if _, err := Initiate(ctx, a, testSKey, RC4, make([]byte, maxIA+1), nil); err == nil {
		t.Error("Initiate with a 64 KiB initial payload succeeded")
	}
	if _, err := Accept(ctx, a, lookupOf(testSKey), 0, nil); err == nil {
		t.Error("Accept allowing nothing succeeded")
	}
	if _, err := Accept(ctx, a, nil, RC4, nil); err == nil {
		t.Error("Accept without a lookup succeeded")
	}
}

// TestOverRawsock: the layering the package recommends, MSE over a
// connection with raw system calls, works both ways.
func TestOverRawsock(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := rawsock.Wrap(a), rawsock.Wrap(b)
	ia := randBytes(40, 68)
	ini, acc := handshakePair(context.Background(), ra, rb, RC4, RC4, ia, true)
	if ini.err != nil || acc.err != nil {
		t.Fatalf("Initiate: %v; Accept: %v", ini.err, acc.err)
	}
	exchange(t, ini.c, acc.c, ia)
}
