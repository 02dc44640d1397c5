package session

import (
	"testing"

	"github.com/sowerbt/sower/internal/wiretest"
	"github.com/sowerbt/sower/metainfo"
)

// TestPrivateTorrentOffDHTAndPEX: one session seeds a public and a private
// torrent. On the wire, the public one is looked up and announced in the
// DHT, tells peers it runs a DHT node (reserved bit, port message) and
// sends PEX; the private one (BEP 27) does none of it.
func TestPrivateTorrentOffDHTAndPEX(t *testing.T) {
	rec, boot := wiretest.StartDHT(t)
	s := newSession(t, Config{DHTBootstrap: []string{boot}, DHTRateLimit: -1})
	if !s.DHTEnabled() {
		t.Fatal("no DHT")
	}
	add := func(private bool) *metainfo.MetaInfo {
		dir := t.TempDir()
		mi, _ := writeTorrent(t, dir, 200_000, "", private)
		tor, err := s.AddTorrent(t.Context(), mi, TorrentOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tor.Close() })
		return mi
	}
	public, private := add(false), add(true)
	wiretest.CheckPrivate(t, s.Addr(), rec, public.InfoHash, private.InfoHash)
}
