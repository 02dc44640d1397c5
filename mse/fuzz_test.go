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
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The fuzz targets feed one side of a handshake a byte stream as if the
// peer had sent it. The side's keys come from a fixed seed, so a recorded
// handshake (the seed corpus) is valid input, and the fuzzer's mutations
// of it reach every step: pads of other lengths, truncated keys, garbage
// after req1, bad verification constants, odd methods and lengths.

const (
	fuzzSeedA = 0xA // the initiator's key and pads
	fuzzSeedB = 0xB // the acceptor's
)

func fuzzRand(seed byte) io.Reader { return rand.NewChaCha8([32]byte{seed}) }

// scriptConn is a connection whose peer sent script and then closed;
// writes go nowhere.
type scriptConn struct {
	r    *bytes.Reader
	read int
}

func (s *scriptConn) Read(b []byte) (int, error) {
	// Small reads at times, as TCP delivers: the handshake must not
	// depend on how the stream is cut.
	if len(b) > 7 && s.r.Len()%3 == 0 {
		b = b[:len(b)/2]
	}
	n, err := s.r.Read(b)
	s.read += n
	return n, err
}
func (s *scriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (s *scriptConn) Close() error                     { return nil }
func (s *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// drain reads what the stream holds after the handshake, in odd pieces.
func drain(c *Conn) {
	buf := make([]byte, 100)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// checkHandshake: before the synchronisation point a side reads at most the
// key, the longest pad and the pattern; any error is one of the
// handshake's (never a panic, checked by the fuzzer itself).
func checkHandshake(t *testing.T, c *Conn, err error, sc *scriptConn, syncLen int) {
	t.Helper()
	if err == nil {
		drain(c)
		return
	}
	if errors.Is(err, ErrNoSync) && sc.read > keyLen+maxPad+syncLen {
		t.Fatalf("read %d bytes before giving up on the synchronisation point", sc.read)
	}
}

func FuzzAccept(f *testing.F) {
	for _, s := range corpusStreams(f, true) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := &scriptConn{r: bytes.NewReader(data)}
		c, err := Accept(context.Background(), sc, lookupOf(testSKey), RC4|Plaintext, &Options{Rand: fuzzRand(fuzzSeedB)})
		checkHandshake(t, c, err, sc, 20)
	})
}

func FuzzInitiate(f *testing.F) {
	for _, s := range corpusStreams(f, false) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := &scriptConn{r: bytes.NewReader(data)}
		c, err := Initiate(context.Background(), sc, testSKey, RC4|Plaintext, []byte("initial payload"), &Options{Rand: fuzzRand(fuzzSeedA)})
		checkHandshake(t, c, err, sc, vcLen)
	})
}

func FuzzDetect(f *testing.F) {
	f.Add([]byte(btProtocol + "rest"))
	f.Add([]byte("\x13BitTorrent"))
	f.Add(randBytes(1, 120))
	f.Fuzz(func(t *testing.T, data []byte) {
		conn, plain, err := Detect(&scriptConn{r: bytes.NewReader(data)})
		if err != nil {
			if len(data) >= len(btProtocol) {
				t.Fatalf("Detect failed on %d bytes: %v", len(data), err)
			}
			return
		}
		if plain != bytes.HasPrefix(data, []byte(btProtocol)) {
			t.Fatalf("Detect says plaintext=%v for %q", plain, data)
		}
		got, _ := io.ReadAll(conn)
		if !bytes.Equal(got, data) {
			t.Fatalf("after Detect the stream reads %q, want %q", got, data)
		}
	})
}

// corpusStreams records real handshakes between the two roles with the
// fuzz seeds' keys: what the initiator sent (acceptor true) or what the
// acceptor sent, for several methods, initial payloads and data after the
// handshake, plus a few broken variants.
func corpusStreams(tb testing.TB, acceptor bool) [][]byte {
	var out [][]byte
	for i, tc := range []struct {
		provide, allow Method
		ia             []byte
	}{
		{RC4 | Plaintext, RC4, []byte("\x13BitTorrent protocol and the rest of a handshake")},
		{Plaintext, Plaintext | RC4, nil},
		{RC4, RC4, randBytes(11, 300)},
	} {
		sent := recordHandshake(tb, tc.provide, tc.allow, tc.ia, []byte(fmt.Sprintf("payload %d", i)))
		if acceptor {
			out = append(out, sent.byA)
		} else {
			out = append(out, sent.byB)
		}
	}
	s := out[0]
	out = append(out,
		s[:keyLen/2],  // a truncated key
		s[:keyLen+10], // truncated in the pad
		append(bytes.Clone(s[:min(len(s), keyLen+100)]), randBytes(12, 600)...), // garbage where the sync should be
	)
	return out
}

type recorded struct{ byA, byB []byte }

// recordConn keeps a copy of everything written through it.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recordConn) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.buf.Write(b)
	r.mu.Unlock()
	return r.Conn.Write(b)
}

// recordHandshake runs a handshake with the fuzz seeds over loopback and
// returns the bytes each side sent, including payload written after it.
func recordHandshake(tb testing.TB, provide, allow Method, ia, payload []byte) recorded {
	a, b := tcpPair(tb)
	ra, rb := &recordConn{Conn: a}, &recordConn{Conn: b}
	ctx := context.Background()
	ch := make(chan error, 1)
	go func() {
		c, err := Accept(ctx, rb, lookupOf(testSKey), allow, &Options{Rand: fuzzRand(fuzzSeedB)})
		if err == nil {
			_, err = c.Write(payload)
		}
		ch <- err
	}()
	c, err := Initiate(ctx, ra, testSKey, provide, ia, &Options{Rand: fuzzRand(fuzzSeedA)})
	if err == nil {
		_, err = c.Write(payload)
	}
	if err := errors.Join(err, <-ch); err != nil {
		tb.Fatalf("recording a handshake: %v", err)
	}
	// Let the payloads arrive, then stop writing.
	buf := make([]byte, len(payload))
	io.ReadFull(c, buf)
	ra.mu.Lock()
	defer ra.mu.Unlock()
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return recorded{byA: bytes.Clone(ra.buf.Bytes()), byB: bytes.Clone(rb.buf.Bytes())}
}

// TestWriteFuzzCorpus writes the seed corpus to testdata/fuzz when
// MSE_WRITE_CORPUS=1; otherwise it checks that the committed corpus is
// still what the handshake produces, so a change to the wire format cannot
// leave the fuzzers with stale seeds.
func TestWriteFuzzCorpus(t *testing.T) {
	write := os.Getenv("MSE_WRITE_CORPUS") == "1"
	for _, target := range []struct {
		name     string
		acceptor bool
	}{{"FuzzAccept", true}, {"FuzzInitiate", false}} {
		dir := filepath.Join("testdata", "fuzz", target.name)
		for i, s := range corpusStreams(t, target.acceptor) {
			path := filepath.Join(dir, fmt.Sprintf("recorded-%d", i))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if write {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if i < 3 {
				// A recorded handshake replays to success: the fuzzers
				// start from inputs that reach the end.
				sc := &scriptConn{r: bytes.NewReader(s)}
				var err error
				if target.acceptor {
					_, err = Accept(context.Background(), sc, lookupOf(testSKey), RC4|Plaintext, &Options{Rand: fuzzRand(fuzzSeedB)})
				} else {
					_, err = Initiate(context.Background(), sc, testSKey, RC4|Plaintext, []byte("initial payload"), &Options{Rand: fuzzRand(fuzzSeedA)})
				}
				if err != nil {
					t.Errorf("%s: replaying recorded handshake %d: %v", target.name, i, err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (%v): run MSE_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus ./mse", path, err)
			}
		}
	}
}
