package testpeers

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DHTOptions say how a trackerless libtorrent peer finds others.
type DHTOptions struct {
	// Bootstrap are the DHT nodes (host:port, on loopback) it joins
	// through; they are the only nodes it contacts first, never the public
	// routers. At least one is required unless NoDHT.
	Bootstrap []string
	// NoDHT turns the DHT off: peers come only from Peers, Connect and the
	// magnet link's x.pe.
	NoDHT bool
	// Peers are dialled (host:port) until connected once.
	Peers []string
	// KeepSeedConnections keeps connections to other seeds open, which
	// libtorrent otherwise closes as useless: a seed then still lists
	// another seed in its PEX messages.
	KeepSeedConnections bool
	// NoPEX leaves out libtorrent's ut_pex plugin: the peer neither tells
	// nor learns of other peers by peer exchange.
	NoPEX bool
}

// DHTPeer is a libtorrent peer with the DHT on (or explicitly off), ut_pex
// and ut_metadata enabled as libtorrent has them by default. Its DHT node
// listens on UDP at the same port as Peer.Port. Besides what Peer offers,
// it reports when things happened (Event) and every peer connection it
// saw (PeersSeen), for trackerless tests and benchmarks.
type DHTPeer struct {
	*Peer
	state *ltDHTState
}

// SeenPeer is one peer connection a DHTPeer had.
type SeenPeer struct {
	// Addr is the remote address as libtorrent saw it (for an incoming
	// connection, the remote's ephemeral port, not its listening port).
	Addr string
	// PeerID is the remote's 20-byte peer id.
	PeerID []byte
}

// LibtorrentDHTSeed starts libtorrent checking the torrent's data in
// dataDir and seeding it, announced on the DHT joined through
// opts.Bootstrap. Wait returns once it is seeding.
func LibtorrentDHTSeed(t testing.TB, torrent, dataDir string, opts DHTOptions) *DHTPeer {
	t.Helper()
	return startLibtorrentDHT(t, "seed", torrent, dataDir, opts)
}

// LibtorrentDHTGet starts libtorrent downloading source into outDir:
// source is a magnet link (libtorrent then fetches the metadata with
// ut_metadata from peers found through the DHT, x.pe and opts.Peers) or a
// .torrent file. Wait returns once the download is complete and verified;
// it keeps seeding afterwards until Stop.
func LibtorrentDHTGet(t testing.TB, source, outDir string, opts DHTOptions) *DHTPeer {
	t.Helper()
	return startLibtorrentDHT(t, "get", source, outDir, opts)
}

// Event returns, for a named event, how long after the torrent was added
// to libtorrent it first happened: "first-peer" (it began connecting to a
// peer other than itself), "metadata" (a magnet link's info dictionary is
// in), "dht-reply" (a DHT lookup for the torrent ended, and with it the
// announce: other nodes can now find this peer), "dht-peers" (a DHT lookup
// returned peers). ok is false until then.
func (p *DHTPeer) Event(name string) (d time.Duration, ok bool) {
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	d, ok = p.state.events[name]
	return d, ok
}

// WaitEvent waits until the named event (see Event) has happened and
// returns its time, or fails when ctx ends or the program stops first.
func (p *DHTPeer) WaitEvent(ctx context.Context, name string) (time.Duration, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if d, ok := p.Event(name); ok {
			return d, nil
		}
		if _, err := p.Stats(ctx); err != nil {
			return 0, fmt.Errorf("wait for %s event %q: %w", p.Name, name, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for %s event %q: %w", p.Name, name, ctx.Err())
		case <-tick.C:
		}
	}
}

// PeersSeen returns every peer connection the program has had so far.
func (p *DHTPeer) PeersSeen() []SeenPeer {
	p.state.mu.Lock()
	defer p.state.mu.Unlock()
	return append([]SeenPeer(nil), p.state.seen...)
}

// ltDHTState is what the DHT script has reported so far: the plain
// libtorrent script's lines plus events and peers.
type ltDHTState struct {
	lt     *ltState
	mu     sync.Mutex
	events map[string]time.Duration
	seen   []SeenPeer
}

// line takes one line of the script's stdout.
func (s *ltDHTState) line(l string) {
	word, rest, _ := strings.Cut(l, " ")
	switch word {
	case "event":
		name, secs, _ := strings.Cut(rest, " ")
		f, err := strconv.ParseFloat(secs, 64)
		if err != nil {
			return
		}
		s.mu.Lock()
		if _, dup := s.events[name]; !dup {
			s.events[name] = time.Duration(f * float64(time.Second))
		}
		s.mu.Unlock()
	case "peer":
		addr, id, _ := strings.Cut(rest, " ")
		var sp SeenPeer
		sp.Addr = addr
		if b, err := hex.DecodeString(id); err == nil {
			sp.PeerID = b
		}
		s.mu.Lock()
		s.seen = append(s.seen, sp)
		s.mu.Unlock()
	default:
		s.lt.line(l)
	}
}

func startLibtorrentDHT(t testing.TB, mode, source, dir string, opts DHTOptions) *DHTPeer {
	t.Helper()
	if !opts.NoDHT && len(opts.Bootstrap) == 0 {
		// Never let libtorrent look for the public DHT routers.
		t.Fatal("libtorrent DHT peer: DHTOptions.Bootstrap is empty (set NoDHT to run without the DHT)")
	}
	state := &ltDHTState{lt: newLtState(), events: make(map[string]time.Duration)}
	flags := []string{"--trackerless"}
	if !opts.NoDHT {
		// The script turns the DHT on exactly when it has bootstrap nodes.
		for _, b := range opts.Bootstrap {
			flags = append(flags, "--dht-bootstrap", b)
		}
	}
	if opts.NoPEX {
		flags = append(flags, "--no-pex")
	}
	if opts.KeepSeedConnections {
		flags = append(flags, "--keep-seed-connections")
	}
	flags = append(flags, peerFlags(opts.Peers)...)
	p := startLibtorrent(t, "libtorrent-dht-"+mode, flags, mode, source, dir, state.lt, state.line)
	return &DHTPeer{Peer: p, state: state}
}
