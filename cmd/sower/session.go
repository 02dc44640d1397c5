package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/sowerbt/sower/dht"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metadata"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/tracker"
)

// session is what get and seed share around one torrent: the peer
// listener, the DHT nodes and the peers given on the command line.
type session struct {
	flags  swarmFlags
	peerID [20]byte
	ln     *engine.Listener
	peers  []netip.AddrPort
	dht    *dht.Node // IPv4, paired with the IPv6 node if any; nil with --no-dht or for private torrents

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// openSession listens for peers and, when useDHT, joins the DHT on the
// same port number over UDP.
//
// nodes are DHT nodes named by the torrent (its BEP 5 "nodes" key): they
// join the bootstrap list, so a trackerless torrent works without flags.
func openSession(ctx context.Context, sf swarmFlags, useDHT bool, nodes []string) (*session, error) {
	sess := &session{flags: sf, peerID: peerwire.NewPeerID()}
	for _, s := range sf.peers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--peer %q: want IP:PORT: %w", s, err)}
		}
		sess.peers = append(sess.peers, ap)
	}
	if sf.port < 0 || sf.port > 65535 {
		return nil, &usageError{fmt.Errorf("--port %d: out of range", sf.port)}
	}
	ln, err := engine.Listen(fmt.Sprintf(":%d", sf.port), slog.Default())
	if err != nil {
		return nil, fmt.Errorf("listen for peers: %w", err)
	}
	sess.ln = ln
	if !useDHT || sf.noDHT {
		return sess, nil
	}
	bootstrap := append(append([]string(nil), sf.dhtBootstrap...), nodes...)
	if len(bootstrap) == 0 {
		bootstrap = publicRouters
	}
	// An IPv4 node: a dual-stack socket would make the node IPv6 (BEP 32
	// keeps the families apart), and most of the DHT is IPv4.
	node, err := dht.New(dht.Config{Addr: fmt.Sprintf("0.0.0.0:%d", ln.Port()), Bootstrap: bootstrap, Logger: slog.Default()})
	if err != nil {
		// A busy UDP port costs trackerless discovery, not the download.
		slog.Warn("DHT disabled", "err", err)
		return sess, nil
	}
	sess.dht = node
	running := []*dht.Node{node}
	// And an IPv6 node on the same port (BEP 32), where the host has
	// IPv6: the IPv4 node's lookups and announces cover it too.
	if node6, err := dht.New(dht.Config{Addr: fmt.Sprintf("[::]:%d", ln.Port()), Bootstrap: bootstrap, Logger: slog.Default()}); err != nil {
		slog.Debug("no IPv6 DHT node", "err", err)
	} else if err := node.Pair(node6); err != nil {
		sess.ln.Close()
		return nil, fmt.Errorf("IPv6 DHT node: %w", err)
	} else {
		running = append(running, node6)
	}
	dctx, cancel := context.WithCancel(ctx)
	sess.cancel = cancel
	for _, n := range running {
		sess.wg.Go(func() {
			if err := n.Run(dctx); err != nil {
				slog.Warn("DHT node stopped", "addr", n.Addr(), "err", err)
			}
		})
	}
	return sess, nil
}

// close stops the listener and the DHT node.
func (sess *session) close() {
	sess.ln.Close()
	if sess.cancel != nil {
		sess.cancel()
	}
	sess.wg.Wait()
}

// fetchMetadata gets a magnet link's info dictionary from peers found
// through its trackers, its x.pe peers, --peer and the DHT, and builds the
// torrent from it.
func (sess *session) fetchMetadata(ctx context.Context, m *magnet.Magnet) (*metainfo.MetaInfo, error) {
	if !sess.flags.quiet {
		fmt.Fprintf(os.Stderr, "fetching metadata for %x from peers...\n", m.InfoHash)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peers := make(chan netip.AddrPort, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var (
		mu   sync.Mutex
		seen []netip.AddrPort // handed to the engine afterwards: they have the torrent
	)
	send := func(a netip.AddrPort) bool {
		mu.Lock()
		if len(seen) < 1000 {
			seen = append(seen, a)
		}
		mu.Unlock()
		select {
		case peers <- a:
			return true
		case <-ctx.Done():
			return false
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, a := range sess.peers {
			send(a)
		}
		for _, s := range m.Peers {
			if ap, err := netip.ParseAddrPort(s); err == nil {
				send(ap)
			}
		}
	}()
	if len(m.Trackers) > 0 {
		tiers := make([][]string, len(m.Trackers))
		for i, tr := range m.Trackers {
			tiers[i] = []string{tr}
		}
		found := make(chan []tracker.Peer, 4)
		a := tracker.NewAnnouncer(&tracker.Client{}, tiers, m.InfoHash, sess.peerID, sess.ln.Port(), slog.Default())
		wg.Add(2)
		go func() {
			defer wg.Done()
			// Left is unknown before the metadata: say 1 byte, so trackers
			// count us as a leecher.
			a.Run(ctx, func() tracker.Stats { return tracker.Stats{Left: 1} }, found)
		}()
		go func() {
			defer wg.Done()
			for {
				select {
				case ps := <-found:
					for _, p := range ps {
						if !send(p.Addr) {
							return
						}
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if sess.dht != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A lookup that found nothing may have run before the node
			// met the swarm's part of the DHT: retry soon, backing off.
			retry := time.Second
			for ctx.Err() == nil {
				found := false
				ch, err := sess.dht.GetPeers(ctx, m.InfoHash)
				if err == nil {
					for a := range ch {
						found = true
						send(a)
					}
				}
				wait := 15 * time.Second
				if !found {
					wait, retry = retry, min(2*retry, wait)
				}
				select {
				case <-ctx.Done():
				case <-time.After(wait):
				}
			}
		}()
	}
	infoBytes, err := metadata.Fetch(ctx, m.InfoHash, peers, metadata.Config{PeerID: sess.peerID, Port: sess.ln.Port(), Logger: slog.Default()})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, errors.New("interrupted while fetching metadata")
		}
		return nil, fmt.Errorf("fetching metadata: %w", err)
	}
	cancel()
	wg.Wait()
	sess.peers = append(sess.peers, seen...)
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
