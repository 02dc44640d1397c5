package dht

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/dht/internal/memnet"
)

// sim is an in-memory network of real Nodes.
type sim struct {
	net     *memnet.Network
	nodes   []*Node
	cancels []context.CancelFunc
	dones   []chan struct{}
	wg      sync.WaitGroup
	rnd     *rand.Rand
}

type simOptions struct {
	queryTimeout time.Duration
	joinParallel int
	// settle makes every node look up its own id once more after all
	// have joined, as the periodic refresh of its own bucket in a network
	// that has run for a while would: nodes that joined later near it
	// enter its table.
	settle bool
}

// newSim starts n nodes and joins them one after another (a few at a
// time), each bootstrapping from a random node already in the network.
// Everything stops when the test ends.
func newSim(tb testing.TB, n int, opt simOptions) *sim {
	tb.Helper()
	if opt.queryTimeout == 0 {
		opt.queryTimeout = time.Second
	}
	if opt.joinParallel == 0 {
		opt.joinParallel = 8
	}
	s := &sim{net: memnet.New(), rnd: rand.New(rand.NewPCG(1, uint64(n)))}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range n {
		var id [20]byte
		for i := range id {
			id[i] = byte(s.rnd.UintN(256))
		}
		node, err := New(Config{Conn: s.net.Listen(), ID: id, Logger: logger, QueryTimeout: opt.queryTimeout})
		if err != nil {
			tb.Fatal(err)
		}
		s.start(node)
	}
	tb.Cleanup(s.stop)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sem := make(chan struct{}, opt.joinParallel)
	var jwg sync.WaitGroup
	for i := 1; i < n; i++ {
		seed := s.nodes[s.rnd.IntN(max(1, i-opt.joinParallel))]
		node := s.nodes[i]
		sem <- struct{}{}
		jwg.Add(1)
		go func() {
			defer jwg.Done()
			defer func() { <-sem }()
			node.AddNode(seed.Addr())
			if err := node.Bootstrap(ctx); err != nil {
				tb.Errorf("node %d: %v", i, err)
			}
		}()
	}
	jwg.Wait()
	if opt.settle {
		for i, node := range s.nodes {
			sem <- struct{}{}
			jwg.Add(1)
			go func() {
				defer jwg.Done()
				defer func() { <-sem }()
				lctx, done, err := node.begin(ctx)
				if err != nil {
					tb.Errorf("node %d: %v", i, err)
					return
				}
				defer done()
				if res := node.lookup(lctx, node.id, false, nil, nil); res.Responses == 0 {
					tb.Errorf("node %d: refresh: no node answered", i)
				}
			}()
		}
		jwg.Wait()
	}
	return s
}

func (s *sim) start(node *Node) {
	ctx, cancel := context.WithCancel(context.Background())
	s.nodes = append(s.nodes, node)
	s.cancels = append(s.cancels, cancel)
	done := make(chan struct{})
	s.dones = append(s.dones, done)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		node.Run(ctx)
	}()
	<-node.running
}

// kill stops node i and waits until its address is gone from the network.
func (s *sim) kill(i int) {
	s.cancels[i]()
	<-s.dones[i]
}

func (s *sim) stop() {
	for _, c := range s.cancels {
		c()
	}
	s.wg.Wait()
}

// trueClosest returns the ids of the K live nodes closest to target.
func (s *sim) trueClosest(target [20]byte, dead map[int]bool) [][20]byte {
	var ids [][20]byte
	for i, n := range s.nodes {
		if !dead[i] {
			ids = append(ids, n.ID())
		}
	}
	slices.SortFunc(ids, func(a, b [20]byte) int { return distanceCmp(target, a, b) })
	return ids[:min(K, len(ids))]
}

func randomID(r *rand.Rand) [20]byte {
	var id [20]byte
	for i := range id {
		id[i] = byte(r.UintN(256))
	}
	return id
}

func TestSimAnnounceThenGetPeers(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 100
	}
	s := newSim(t, n, simOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for round := range 3 {
		ih := randomID(s.rnd)
		announcer := s.nodes[s.rnd.IntN(n)]
		port := uint16(40000 + round)
		if err := announcer.Announce(ctx, ih, port, false); err != nil {
			t.Fatalf("announce: %v", err)
		}
		want := netip.AddrPortFrom(announcer.Addr().Addr(), port)
		for range 10 {
			asker := s.nodes[s.rnd.IntN(n)]
			ch, err := asker.GetPeers(ctx, ih)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for p := range ch {
				if p == want {
					found = true
				}
			}
			if !found {
				t.Errorf("info-hash %x: node %s did not find announcer %s", ih, asker.Addr(), want)
			}
		}
	}
}

func TestSimImpliedPort(t *testing.T) {
	s := newSim(t, 60, simOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ih := randomID(s.rnd)
	a := s.nodes[5]
	if err := a.Announce(ctx, ih, 1234, true); err != nil {
		t.Fatal(err)
	}
	peers, _, err := s.nodes[40].LookupPeers(ctx, ih)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(peers, a.Addr()) {
		t.Fatalf("implied_port announce: got peers %v, want %v (the DHT socket's address)", peers, a.Addr())
	}
}

func TestSimLookupsConverge(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 100
	}
	s := newSim(t, n, simOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const lookups = 50
	exact, total := 0, 0
	for range lookups {
		target := randomID(s.rnd)
		from := s.nodes[s.rnd.IntN(n)]
		lctx, done, err := from.begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res := from.lookup(lctx, target, false, nil, nil)
		done()
		want := s.trueClosest(target, nil)
		var got [][20]byte
		for _, c := range res.closest {
			got = append(got, c.c.id)
		}
		if !slices.Contains(got, from.ID()) && slices.Contains(want, from.ID()) {
			// The asker never reports itself; it counts as found.
			got = append(got, from.ID())
		}
		if got[0] != want[0] && !(from.ID() == want[0]) {
			t.Errorf("lookup of %x from %x: closest found %x, true closest %x", target, from.ID(), got[0], want[0])
		}
		for _, id := range want {
			total++
			if slices.Contains(got, id) {
				exact++
			}
		}
	}
	// Kademlia finds the closest node always, and nearly all of the K
	// closest; allow a little slack for the far end of the set.
	if float64(exact) < 0.9*float64(total) {
		t.Errorf("lookups found %d of the %d true K-closest nodes", exact, total)
	}
	t.Logf("lookups found %d of %d true K-closest nodes", exact, total)
}

func TestSimDeadNodeEvicted(t *testing.T) {
	s := newSim(t, 60, simOptions{queryTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	victim := 7
	vid := s.nodes[victim].ID()
	var holders []*Node
	for i, n := range s.nodes {
		if i == victim {
			continue
		}
		n.mu.Lock()
		if n.table.get(vid) != nil {
			holders = append(holders, n)
		}
		n.mu.Unlock()
	}
	if len(holders) == 0 {
		t.Fatal("no node has the victim in its routing table")
	}
	s.kill(victim)
	for _, h := range holders[:min(4, len(holders))] {
		for range maxFails {
			lctx, done, err := h.begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h.lookup(lctx, vid, false, nil, nil)
			done()
		}
		h.mu.Lock()
		still := h.table.get(vid) != nil
		h.mu.Unlock()
		if still {
			t.Errorf("node %s still holds the dead node after %d failed queries", h.Addr(), maxFails)
		}
	}
}
