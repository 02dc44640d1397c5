package metadata

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/testpeers"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
)

// TestLibtorrentServesMetadata fetches the info dictionary from a real
// libtorrent seed and compares it with the bytes in the .torrent file.
func TestLibtorrentServesMetadata(t *testing.T) {
	if testing.Short() {
		t.Skip("starts libtorrent")
	}
	t.Parallel()
	// Many files with long names make an info dictionary of several
	// metadata pieces while the data stays small.
	root := filepath.Join(t.TempDir(), "many")
	for i := range 300 {
		name := fmt.Sprintf("file-%03d-%s.bin", i, strings.Repeat("long-name-", 10))
		testpeers.RandomFile(t, filepath.Join(root, name), int64(100+i))
	}
	torrent := testpeers.Mktorrent(t, root, "", 0)
	mi, err := metainfo.Load(torrent)
	if err != nil {
		t.Fatal(err)
	}
	if PieceCount(len(mi.InfoBytes)) < 3 {
		t.Fatalf("info dictionary of %d bytes is too small for the test", len(mi.InfoBytes))
	}

	seed := testpeers.LibtorrentSeed(t, torrent, filepath.Dir(root))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := seed.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	peers := make(chan netip.AddrPort, 1)
	peers <- netip.MustParseAddrPort(seed.Addr())
	close(peers)
	got, err := Fetch(ctx, mi.InfoHash, peers, Config{PeerID: peerwire.NewPeerID(), Port: 6881})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(mi.InfoBytes) {
		t.Fatalf("fetched %d bytes that differ from the %d in the .torrent", len(got), len(mi.InfoBytes))
	}
	t.Logf("fetched %d bytes (%d pieces) from libtorrent", len(got), PieceCount(len(got)))
	if _, err := metainfo.ParseInfo(got); err != nil {
		t.Fatal(err)
	}
}
