package engine

import (
	"bytes"
	"context"
	"crypto/sha1"
	"net/netip"
	"testing"
	"time"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/metadata"
)

// TestServeMetadata: a magnet client (package metadata) fetches the info
// dictionary from a running seed.
func TestServeMetadata(t *testing.T) {
	tt := newTestTorrent(t, []int64{1 << 20, 300_000}, 32<<10)
	infoBytes, err := bencode.Marshal(map[string]any{"name": "swarm", "piece length": 32 << 10, "padding": bytes.Repeat([]byte("x"), 40_000)})
	if err != nil {
		t.Fatal(err)
	}
	// The fetcher checks the bytes against the info-hash it asks for, so
	// the torrent is known by the hash of the bytes the seed serves.
	tt.hash = sha1Sum(infoBytes)
	s := newSwarm(t, tt, 30*time.Second)
	seed := s.node(true, Config{InfoBytes: infoBytes})
	peers := make(chan netip.AddrPort, 1)
	peers <- seed.addr
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	got, err := metadata.Fetch(ctx, sha1Sum(infoBytes), peers, metadata.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, infoBytes) {
		t.Fatal("fetched metadata differs")
	}
}

func sha1Sum(b []byte) [20]byte { return sha1.Sum(b) }

// TestPEX: two leechers that only know a seed learn of each other through
// the seed's peer exchange messages and connect.
func TestPEX(t *testing.T) {
	tt := newTestTorrent(t, []int64{1 << 20}, 32<<10)
	s := newSwarm(t, tt, 30*time.Second)
	hub := s.node(true, Config{UploadLimit: NewLimiter(100_000)})
	a := s.node(false, Config{})
	b := s.node(false, Config{})
	a.t.AddPeers(hub.addr)
	b.t.AddPeers(hub.addr)
	for {
		if st := a.t.Stats(); st.Peers >= 2 {
			break
		}
		select {
		case <-s.ctx.Done():
			t.Fatalf("leecher never connected to the other through PEX: %+v", a.t.Stats())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
