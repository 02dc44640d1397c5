package mse_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/mse"
	"github.com/sowerbt/sower/peerwire"
)

// These tests put a real client on the other side of the package: the
// test speaks just enough BitTorrent through the encrypted connection (the
// handshake, interested, requests) to fetch blocks from a real seed and
// compares them with the file.

const (
	ipFileSize = 1 << 20
	ipPieceLen = 256 << 10
	ipBlock    = 16 << 10
	ipBlocks   = 20 // fetched per connection: 320 KiB, across two pieces
	// ipWait bounds one connection's whole exchange; Transmission
	// unchokes a new peer only at its next rechoke, up to 10 s later.
	ipWait = 60 * time.Second
)

// seedFixture is a torrent of a random file and the file's bytes.
type seedFixture struct {
	torrent, dir string
	infoHash     [20]byte
	data         []byte
}

func newSeedFixture(t *testing.T, name string) seedFixture {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, name)
	testpeers.RandomFile(t, file, ipFileSize)
	torrent := testpeers.Mktorrent(t, file, "", ipPieceLen)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var ih [20]byte
	if _, err := hex.Decode(ih[:], []byte(testpeers.InfoHash(t, torrent))); err != nil {
		t.Fatal(err)
	}
	return seedFixture{torrent: torrent, dir: dir, infoHash: ih, data: data}
}

func (f seedFixture) handshake() []byte {
	var b bytes.Buffer
	peerwire.WriteHandshake(&b, peerwire.Handshake{InfoHash: f.infoHash, PeerID: peerwire.NewPeerID()})
	return b.Bytes()
}

// dialSeed dials the seed, runs the MSE handshake offering provide with our
// BitTorrent handshake as the initial payload, and leeches through it.
func dialSeed(t *testing.T, f seedFixture, seed *testpeers.Peer, provide, want mse.Method) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ipWait)
	defer cancel()
	if err := seed.Wait(ctx); err != nil {
		t.Fatalf("%s did not get ready: %v", seed.Name, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", seed.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	c, err := mse.Initiate(ctx, conn, f.infoHash, provide, f.handshake(), nil)
	if err != nil {
		t.Fatalf("MSE handshake with %s: %v", seed.Name, err)
	}
	t.Logf("MSE handshake with %s: %v, method %v", seed.Name, time.Since(start), c.Method())
	if c.Method() != want {
		t.Fatalf("%s selected %v, want %v", seed.Name, c.Method(), want)
	}
	if err := leech(ctx, c, f, false); err != nil {
		t.Fatalf("leeching from %s through MSE: %v", seed.Name, err)
	}
}

// acceptSeed waits on ln for the seed's connection, which must be MSE,
// accepts it allowing allow, and leeches through it.
func acceptSeed(t *testing.T, f seedFixture, ln net.Listener, name string, allow, want mse.Method) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ipWait)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("waiting for %s to dial: %v", name, err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	peeked, plain, err := mse.Detect(conn)
	if err != nil {
		t.Fatalf("detecting %s's handshake: %v", name, err)
	}
	if plain {
		t.Fatalf("%s, forced to encrypt, sent a plaintext handshake", name)
	}
	lookup := func(req2 [20]byte) ([20]byte, bool) {
		return f.infoHash, req2 == mse.Req2(f.infoHash)
	}
	c, err := mse.Accept(ctx, peeked, lookup, allow, nil)
	if err != nil {
		t.Fatalf("MSE handshake from %s: %v", name, err)
	}
	t.Logf("MSE handshake from %s: method %v, initial payload %d bytes", name, c.Method(), c.IALen())
	if c.Method() != want {
		t.Fatalf("selected %v, want %v", c.Method(), want)
	}
	if err := leech(ctx, c, f, true); err != nil {
		t.Fatalf("leeching from %s through MSE: %v", name, err)
	}
}

// leech exchanges handshakes over c (the peer's first when it dialled),
// declares interest, waits to be unchoked, requests ipBlocks blocks and
// checks each against the file.
func leech(ctx context.Context, c *mse.Conn, f seedFixture, answer bool) error {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	h, err := peerwire.ReadHandshake(c)
	if err != nil {
		return fmt.Errorf("reading the seed's handshake: %w", err)
	}
	if h.InfoHash != f.infoHash {
		return fmt.Errorf("seed's handshake names torrent %x, want %x", h.InfoHash, f.infoHash)
	}
	var out []byte
	if answer {
		out = append(out, f.handshake()...)
	}
	out = peerwire.Message{ID: peerwire.Interested}.AppendTo(out)
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("sending interested: %w", err)
	}
	dec := peerwire.NewDecoder(c, peerwire.Limits{NumPieces: ipFileSize / ipPieceLen, PieceLength: ipPieceLen, TotalLength: ipFileSize})
	got := 0
	for got < ipBlocks {
		m, err := dec.Next()
		if err != nil {
			return fmt.Errorf("after %d blocks: %w", got, err)
		}
		switch m.ID {
		case peerwire.Unchoke:
			var req []byte
			for i := got; i < ipBlocks; i++ {
				off := i * ipBlock
				req = peerwire.Message{ID: peerwire.Request, Index: uint32(off / ipPieceLen), Begin: uint32(off % ipPieceLen), Length: ipBlock}.AppendTo(req)
			}
			// Half with WriteInPlace, the way an engine's writer sends.
			half := len(req) / 2
			if _, err := c.Write(req[:half]); err != nil {
				return fmt.Errorf("sending requests: %w", err)
			}
			if _, err := c.WriteInPlace(req[half:]); err != nil {
				return fmt.Errorf("sending requests: %w", err)
			}
		case peerwire.Piece:
			off := int(m.Index)*ipPieceLen + int(m.Begin)
			if off != got*ipBlock || len(m.Payload) != ipBlock {
				return fmt.Errorf("got block at %d (%d bytes), want %d", off, len(m.Payload), got*ipBlock)
			}
			if !bytes.Equal(m.Payload, f.data[off:off+ipBlock]) {
				return fmt.Errorf("block at %d differs from the file", off)
			}
			got++
		}
	}
	return nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestInteropLibtorrent(t *testing.T) {
	for _, tc := range []struct {
		enc  testpeers.Encryption
		want mse.Method
	}{
		{testpeers.RequireRC4, mse.RC4},
		{testpeers.RequireObfuscation, mse.Plaintext},
	} {
		t.Run(tc.enc.String()+"/we-dial", func(t *testing.T) {
			t.Parallel()
			f := newSeedFixture(t, "lt-dial-"+tc.enc.String())
			seed := testpeers.LibtorrentSeedEncrypted(t, f.torrent, f.dir, tc.enc)
			dialSeed(t, f, seed, mse.RC4|mse.Plaintext, tc.want)
		})
		t.Run(tc.enc.String()+"/it-dials", func(t *testing.T) {
			t.Parallel()
			f := newSeedFixture(t, "lt-accept-"+tc.enc.String())
			ln := listen(t)
			testpeers.LibtorrentSeedEncrypted(t, f.torrent, f.dir, tc.enc, ln.Addr().String())
			acceptSeed(t, f, ln, "libtorrent-seed", tc.want, tc.want)
		})
	}
	// A libtorrent that demands RC4 refuses a plaintext-only offer.
	t.Run("rc4/we-offer-plaintext", func(t *testing.T) {
		t.Parallel()
		f := newSeedFixture(t, "lt-refuse")
		seed := testpeers.LibtorrentSeedEncrypted(t, f.torrent, f.dir, testpeers.RequireRC4)
		ctx, cancel := context.WithTimeout(context.Background(), ipWait)
		defer cancel()
		if err := seed.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", seed.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = mse.Initiate(ctx, conn, f.infoHash, mse.Plaintext, f.handshake(), nil)
		if err == nil {
			t.Fatal("libtorrent forced to RC4 accepted a plaintext-only offer")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("libtorrent neither answered nor closed: %v", err)
		}
		t.Logf("refused as expected: %v", err)
	})
}

func TestInteropAria2(t *testing.T) {
	t.Run("we-dial", func(t *testing.T) {
		t.Parallel()
		f := newSeedFixture(t, "aria2-dial")
		seed := testpeers.Aria2SeedEncrypted(t, f.torrent, f.dir, testpeers.RequireRC4)
		dialSeed(t, f, seed, mse.RC4|mse.Plaintext, mse.RC4)
	})
	// aria2c cannot be told to dial a peer: it learns of us from the
	// test's tracker.
	t.Run("it-dials", func(t *testing.T) {
		t.Parallel()
		f := newSeedFixture(t, "aria2-accept")
		ln := listen(t)
		testpeers.Aria2SeedEncrypted(t, f.torrent, f.dir, testpeers.RequireRC4, ln.Addr().String())
		acceptSeed(t, f, ln, "aria2c-seed", mse.RC4, mse.RC4)
	})
}

func TestInteropTransmission(t *testing.T) {
	t.Parallel()
	f := newSeedFixture(t, "transmission-dial")
	seed := testpeers.TransmissionSeedEncrypted(t, f.torrent, f.dir, testpeers.RequireRC4)
	dialSeed(t, f, seed, mse.RC4|mse.Plaintext, mse.RC4)
}
