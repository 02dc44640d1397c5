package utp_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
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
func interopTorrent(t *testing.T) (dir, path, torrent string, infoHash [20]byte, data []byte) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "data.bin")
	testpeers.RandomFile(t, path, interopSize)
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

func limits() peerwire.Limits {
	return peerwire.Limits{NumPieces: interopSize / interopPieceLen, PieceLength: interopPieceLen, TotalLength: interopSize}
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

	if err := peerwire.WriteHandshake(conn, peerwire.Handshake{InfoHash: infoHash, PeerID: peerwire.NewPeerID()}); err != nil {
		t.Fatal(err)
	}
	hs, err := peerwire.ReadHandshake(conn)
	if err != nil {
		t.Fatalf("libtorrent's handshake: %v", err)
	}
	if hs.InfoHash != infoHash {
		t.Fatalf("libtorrent answered for %x, want %x", hs.InfoHash, infoHash)
	}
	dec := peerwire.NewDecoder(conn, limits())
	w := peerwire.NewWriter(conn)
	if err := w.WriteMessage(peerwire.Message{ID: peerwire.Interested}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, interopSize)
	next, pending, received := 0, 0, 0
	unchoked := false
	for received < interopSize/blockLen {
		for unchoked && pending < 64 && next < interopSize {
			m := peerwire.Message{ID: peerwire.Request, Index: uint32(next / interopPieceLen), Begin: uint32(next % interopPieceLen), Length: blockLen}
			if err := w.WriteMessage(m); err != nil {
				t.Fatal(err)
			}
			next += blockLen
			pending++
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		m, err := dec.Next()
		if err != nil {
			t.Fatalf("after %d blocks: %v", received, err)
		}
		switch m.ID {
		case peerwire.Unchoke:
			unchoked = !m.KeepAlive || unchoked
		case peerwire.Choke:
			if !m.KeepAlive {
				t.Fatal("libtorrent choked us")
			}
		case peerwire.Piece:
			copy(got[int(m.Index)*interopPieceLen+int(m.Begin):], m.Payload)
			pending--
			received++
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the data read from libtorrent over uTP differs from the file")
	}
	st := conn.Stats()
	t.Logf("downloaded %d bytes from libtorrent; packet size %d, rtt %v", len(got), st.PacketSize, st.RTT)
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
	bf := make([]byte, (interopSize/interopPieceLen+7)/8)
	for i := range interopSize / interopPieceLen {
		bf[i/8] |= 0x80 >> (i % 8)
	}
	if err := w.WriteMessage(peerwire.Message{ID: peerwire.Bitfield, Payload: bf}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	dec := peerwire.NewDecoder(c, limits())
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
