package utp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/utp"
)

const (
	interopSize     = 3 << 20
	interopPieceLen = 256 << 10
	blockLen        = 16 << 10
)

// interopTorrent writes a random file and its torrent.
func interopTorrent(t testing.TB) (dir, path, torrent string, infoHash [20]byte, data []byte) {
	return sizedTorrent(t, interopSize)
}

// sizedTorrent writes a random file of size bytes (a multiple of
// interopPieceLen) and its torrent.
func sizedTorrent(t testing.TB, size int64) (dir, path, torrent string, infoHash [20]byte, data []byte) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "data.bin")
	testpeers.RandomFile(t, path, size)
	torrent = testpeers.Mktorrent(t, path, "", interopPieceLen)
	h, err := hex.DecodeString(testpeers.InfoHash(t, torrent))
	if err != nil {
		t.Fatal(err)
	}
	copy(infoHash[:], h)
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return dir, path, torrent, infoHash, data
}

func limits(size int) peerwire.Limits {
	return peerwire.Limits{NumPieces: size / interopPieceLen, PieceLength: interopPieceLen, TotalLength: int64(size)}
}

// TestInteropDialLibtorrent dials a libtorrent seed that speaks uTP only,
// shakes hands and downloads the whole file block by block over our uTP.
func TestInteropDialLibtorrent(t *testing.T) {
	dir, _, torrent, infoHash, data := interopTorrent(t)
	seed := testpeers.LibtorrentUTP(t, "seed", torrent, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := seed.Wait(ctx); err != nil {
		t.Fatalf("libtorrent seed: %v", err)
	}
	sock, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	conn, err := sock.Dial(ctx, seed.Addr())
	if err != nil {
		t.Fatalf("dial libtorrent over uTP: %v", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	got, err := download(conn, infoHash, len(data))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the data read from libtorrent over uTP differs from the file")
	}
	st := conn.Stats()
	t.Logf("downloaded %d bytes from libtorrent; packet size %d, rtt %v", len(got), st.PacketSize, st.RTT)
}

// download shakes hands on conn and fetches the torrent's size bytes
// block by block, 64 requests in flight.
func download(conn net.Conn, infoHash [20]byte, size int) ([]byte, error) {
	if err := peerwire.WriteHandshake(conn, peerwire.Handshake{InfoHash: infoHash, PeerID: peerwire.NewPeerID()}); err != nil {
		return nil, err
	}
	hs, err := peerwire.ReadHandshake(conn)
	if err != nil {
		return nil, fmt.Errorf("libtorrent's handshake: %w", err)
	}
	if hs.InfoHash != infoHash {
		return nil, fmt.Errorf("libtorrent answered for %x, want %x", hs.InfoHash, infoHash)
	}
	dec := peerwire.NewDecoder(conn, limits(size))
	w := peerwire.NewWriter(conn)
	if err := w.WriteMessage(peerwire.Message{ID: peerwire.Interested}); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	got := make([]byte, size)
	next, pending, received := 0, 0, 0
	unchoked := false
	for received < size/blockLen {
		for unchoked && pending < 64 && next < size {
			m := peerwire.Message{ID: peerwire.Request, Index: uint32(next / interopPieceLen), Begin: uint32(next % interopPieceLen), Length: blockLen}
			if err := w.WriteMessage(m); err != nil {
				return nil, err
			}
			next += blockLen
			pending++
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		m, err := dec.Next()
		if err != nil {
			return nil, fmt.Errorf("after %d blocks: %w", received, err)
		}
		if m.KeepAlive {
			continue
		}
		switch m.ID {
		case peerwire.Unchoke:
			unchoked = true
		case peerwire.Choke:
			return nil, errors.New("libtorrent choked us")
		case peerwire.Piece:
			copy(got[int(m.Index)*interopPieceLen+int(m.Begin):], m.Payload)
			pending--
			received++
		}
	}
	return got, nil
}

// TestInteropLibtorrentDials lets a libtorrent leecher that speaks uTP
// only dial our listener, and seeds it the file.
func TestInteropLibtorrentDials(t *testing.T) {
	dir, path, torrent, infoHash, data := interopTorrent(t)
	sock, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	served := make(chan error, 1)
	go func() {
		for {
			c, err := sock.Accept()
			if err != nil {
				return
			}
			go func() {
				err := serveSeed(ctx, c, infoHash, data)
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					select {
					case served <- err:
					default:
					}
				}
			}()
		}
	}()

	out := t.TempDir()
	leech := testpeers.LibtorrentUTP(t, "get", torrent, out, sock.Addr().String())
	waitErr := leech.Wait(ctx)
	select {
	case err := <-served:
		t.Fatalf("serving libtorrent: %v", err)
	default:
	}
	if waitErr != nil {
		t.Fatalf("libtorrent leecher: %v", waitErr)
	}
	if testpeers.SHA256File(t, filepath.Join(out, "data.bin")) != testpeers.SHA256File(t, path) {
		t.Fatal("libtorrent's copy differs")
	}
	_ = dir
}

// serveSeed answers one peer as a seed of data until it goes away.
func serveSeed(ctx context.Context, c net.Conn, infoHash [20]byte, data []byte) error {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	hs, err := peerwire.ReadHandshake(c)
	if err != nil {
		var pe *peerwire.ProtocolError
		if errors.As(err, &pe) {
			return nil // libtorrent tries an encrypted handshake (MSE) first, then plaintext
		}
		return err
	}
	if hs.InfoHash != infoHash {
		return errors.New("handshake for another torrent")
	}
	if err := peerwire.WriteHandshake(c, peerwire.Handshake{InfoHash: infoHash, PeerID: peerwire.NewPeerID()}); err != nil {
		return err
	}
	w := peerwire.NewWriter(c)
	bf := make([]byte, (len(data)/interopPieceLen+7)/8)
	for i := range len(data) / interopPieceLen {
		bf[i/8] |= 0x80 >> (i % 8)
	}
	if err := w.WriteMessage(peerwire.Message{ID: peerwire.Bitfield, Payload: bf}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	dec := peerwire.NewDecoder(c, limits(len(data)))
	for {
		m, err := dec.Next()
		if err != nil {
			return err
		}
		if m.KeepAlive {
			continue
		}
		switch m.ID {
		case peerwire.Interested:
			err = w.WriteMessage(peerwire.Message{ID: peerwire.Unchoke})
		case peerwire.Request:
			off := int(m.Index)*interopPieceLen + int(m.Begin)
			err = w.WriteMessage(peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Payload: data[off : off+int(m.Length)]})
		}
		if err == nil && !dec.Ready() {
			err = w.Flush()
		}
		if err != nil {
			return err
		}
	}
}

const benchSize = 64 << 20

// BenchmarkLibtorrentToUTP downloads 64 MiB from a libtorrent seed that
// speaks uTP only, over this package, and reports MB/s and this process's
// CPU seconds per GiB (the receiving side only).
func BenchmarkLibtorrentToUTP(b *testing.B) {
	dir, _, torrent, infoHash, data := sizedTorrent(b, benchSize)
	seed := testpeers.LibtorrentUTP(b, "seed", torrent, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := seed.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	start, cpu0 := time.Now(), utp.CPUTime().Seconds()
	for range b.N {
		// A fresh port each time: libtorrent refuses a second connection
		// from an endpoint it was connected to.
		sock, err := utp.Listen("udp4", "127.0.0.1:0", utp.Config{})
		if err != nil {
			b.Fatal(err)
		}
		conn, err := sock.Dial(ctx, seed.Addr())
		if err != nil {
			b.Fatal(err)
		}
		got, err := download(conn, infoHash, len(data))
		conn.Close()
		sock.Close()
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			b.Fatal("data differs")
		}
	}
	total := float64(b.N) * benchSize
	b.ReportMetric(total/time.Since(start).Seconds()/1e6, "MB/s")
	b.ReportMetric((utp.CPUTime().Seconds()-cpu0)/(total/(1<<30)), "recv-cpu-s/GiB")
}

// BenchmarkLibtorrentUTPPair times libtorrent seeding 64 MiB to another
// libtorrent, both uTP only: the reference this package is measured against.
func BenchmarkLibtorrentUTPPair(b *testing.B) {
	dir, path, torrent, _, _ := sizedTorrent(b, benchSize)
	seed := testpeers.LibtorrentUTP(b, "seed", torrent, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := seed.Wait(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		out := b.TempDir()
		leech := testpeers.LibtorrentUTP(b, "get", torrent, out, seed.Addr())
		if err := leech.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		leech.Stop()
		if testpeers.SHA256File(b, filepath.Join(out, "data.bin")) != testpeers.SHA256File(b, path) {
			b.Fatal("libtorrent's copy differs")
		}
	}
	b.ReportMetric(float64(b.N)*benchSize/time.Since(start).Seconds()/1e6, "MB/s")
}
