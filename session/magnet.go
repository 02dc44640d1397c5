package session

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metadata"
	"github.com/sowerbt/sower/metainfo"
)

// FetchMetadata gets the swarm's info dictionary from its peers (BEP 9):
// those given to the swarm, and those its trackers and the DHT find while
// it runs. It returns the raw dictionary, checked against the info-hash,
// or ctx's error. The peers found stay with the swarm for the engine
// attached next.
func (w *Swarm) FetchMetadata(ctx context.Context) ([]byte, error) {
	s := w.s
	peers := make(chan netip.AddrPort, 256)
	s.mu.Lock()
	if w.left {
		s.mu.Unlock()
		return nil, errors.New("session: torrent left the session")
	}
	initial := append([]netip.AddrPort(nil), w.pending...)
	w.sink = func(addrs []netip.AddrPort) {
		for _, a := range addrs {
			select {
			case peers <- a:
			default: // kept in pending; the fetcher has plenty queued
			}
		}
	}
	// Every peer counts: look the torrent up in the DHT now.
	if w.dht.slot > 0 {
		s.scheduleLocked(&w.dht, time.Now())
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		w.sink = nil
		s.mu.Unlock()
	}()
	for _, a := range initial {
		select {
		case peers <- a:
		default:
		}
	}
	connect := func(ctx context.Context, a netip.AddrPort, hs []byte) (net.Conn, error) {
		return s.connectTCP(ctx, a, hs, engine.PeerHint{}) // the encryption policy applies
	}
	info, err := metadata.Fetch(ctx, w.ih, peers, metadata.Config{PeerID: s.cfg.PeerID, Port: s.port, Connect: connect, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("fetching metadata: %w", err)
	}
	return info, nil
}

// MetaInfo builds the torrent of a magnet link from its fetched info
// dictionary: the link's trackers become the announce-list, its web seeds
// the url-list.
func MetaInfo(m *magnet.Magnet, infoBytes []byte) (*metainfo.MetaInfo, error) {
	info, err := metainfo.ParseInfo(infoBytes)
	if err != nil {
		return nil, fmt.Errorf("metadata from peers: %w", err)
	}
	mi := &metainfo.MetaInfo{Info: *info, InfoBytes: infoBytes, InfoHash: m.InfoHash, URLList: m.WebSeeds}
	for _, tr := range m.Trackers {
		mi.AnnounceList = append(mi.AnnounceList, []string{tr})
	}
	if len(m.Trackers) > 0 {
		mi.Announce = m.Trackers[0]
	}
	return mi, nil
}

// MagnetOptions are the swarm options of a magnet link: its trackers, one
// tier each (a magnet's tr= carry no tiers), and its x.pe peers.
func MagnetOptions(m *magnet.Magnet) SwarmOptions {
	var o SwarmOptions
	for _, tr := range m.Trackers {
		o.Trackers = append(o.Trackers, []string{tr})
	}
	for _, p := range m.Peers {
		if ap, err := netip.ParseAddrPort(p); err == nil {
			o.Peers = append(o.Peers, ap)
		}
	}
	return o
}

// Wanted is the file selection of a magnet's so= parameter for a torrent
// of n files; nil selects all.
func Wanted(m *magnet.Magnet, n int) []bool {
	if m == nil || len(m.SelectOnly) == 0 {
		return nil
	}
	w := make([]bool, n)
	for i := range w {
		w[i] = m.Selected(i)
	}
	return w
}

func hexHash(ih [20]byte) string { return hex.EncodeToString(ih[:]) }
