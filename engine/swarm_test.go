package engine

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// swarm is an in-process swarm over loopback TCP, for the tests that
// need real sockets (web seeds over HTTP, metadata) and the free-rider
// test; other behaviour tests run on the simulated network of
// sim_test.go.
type swarm struct {
	t   *testing.T
	tt  *testTorrent
	ctx context.Context
	wg  *sync.WaitGroup
}

func newSwarm(t *testing.T, tt *testTorrent, timeout time.Duration) *swarm {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	wg := &sync.WaitGroup{}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &swarm{t: t, tt: tt, ctx: ctx, wg: wg}
}

func (s *swarm) node(seed bool, cfg Config) *node {
	s.t.Helper()
	ln, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	store := storage.NewMemory(s.tt.layout)
	if seed {
		store = s.tt.seedStore(s.t).(*storage.Memory)
		cfg.Have = s.tt.full()
	}
	cfg.Port = ln.Port()
	cfg.Logger = testLogger(s.t)
	tor, err := New(s.tt.info, s.tt.hash, s.tt.layout, store, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	ln.Add(s.ctx, tor)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); ln.Serve(s.ctx) }()
	go func() { defer s.wg.Done(); tor.Run(s.ctx) }()
	return &node{t: tor, ln: ln, store: store, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ln.Port())}
}

// connectAll tells every node about every other.
func connectAll(nodes ...*node) {
	for _, n := range nodes {
		for _, o := range nodes {
			if o != n {
				n.t.AddPeers(o.addr)
			}
		}
	}
}

func (s *swarm) checkData(n *node) {
	s.t.Helper()
	if got := readAll(s.t, n.store, int64(len(s.tt.data))); !bytes.Equal(got, s.tt.data) {
		s.t.Fatal("data differs from the seed's")
	}
}

// fakePeer is a scripted remote peer for fault injection.
type fakePeer struct {
	addr netip.AddrPort
	mu   sync.Mutex
	got  map[blockKey]int // distinct blocks received from leechers (free-rider), with sizes
	// total counts every block byte, from seeds too.
	total int64
}

func (fp *fakePeer) totalReceived() int64 {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.total
}

func (fp *fakePeer) received() int64 {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	var n int64
	for _, l := range fp.got {
		n += int64(l)
	}
	return n
}

type fakeMode int

const (
	blackHole fakeMode = iota // has everything, unchokes, never answers requests
	freeRider                 // downloads from whoever unchokes it, never uploads
)

// startFake runs a fake peer. A black hole listens; a free-rider dials
// the given targets.
func startFake(t *testing.T, s *swarm, mode fakeMode, targets ...netip.AddrPort) *fakePeer {
	fp := &fakePeer{got: make(map[blockKey]int)}
	serve := func(c net.Conn, dialed, fromSeed bool) {
		defer c.Close()
		context.AfterFunc(s.ctx, func() { c.Close() })
		h := peerwire.Handshake{InfoHash: s.tt.hash, PeerID: peerwire.NewPeerID()}
		if dialed {
			if peerwire.WriteHandshake(c, h) != nil {
				return
			}
			if _, err := peerwire.ReadHandshake(c); err != nil {
				return
			}
		} else {
			if _, err := peerwire.ReadHandshake(c); err != nil {
				return
			}
			if peerwire.WriteHandshake(c, h) != nil {
				return
			}
		}
		n := s.tt.info.NumPieces()
		if mode == blackHole {
			full := s.tt.full()
			c.Write(peerwire.Message{ID: peerwire.Bitfield, Payload: full.Bytes()}.AppendTo(nil))
			c.Write(peerwire.Message{ID: peerwire.Unchoke}.AppendTo(nil))
		} else {
			c.Write(peerwire.Message{ID: peerwire.Interested}.AppendTo(nil))
		}
		dec := peerwire.NewDecoder(c, peerwire.Limits{NumPieces: n, PieceLength: s.tt.info.PieceLength, TotalLength: s.tt.info.TotalLength()})
		theirs := bitfield.New(n)
		blocksPer := int(s.tt.info.PieceLength / blockSize)
		asked := map[blockKey]bool{}
		outstanding := 0
		requestMore := func() {
			// Keep up to 8 requests out for any block the other side has
			// that this connection has not asked for yet.
			for idx := 0; idx < n && outstanding < 8; idx++ {
				if !theirs.Has(idx) {
					continue
				}
				for b := 0; b < blocksPer && outstanding < 8; b++ {
					begin := b * blockSize
					if int64(begin) >= s.tt.info.PieceSize(idx) || asked[makeKey(uint32(idx), uint32(begin))] {
						continue
					}
					asked[makeKey(uint32(idx), uint32(begin))] = true
					length := min(blockSize, int(s.tt.info.PieceSize(idx))-begin)
					c.Write(peerwire.Message{ID: peerwire.Request, Index: uint32(idx), Begin: uint32(begin), Length: uint32(length)}.AppendTo(nil))
					outstanding++
				}
			}
		}
		unchoked := false
		for {
			m, err := dec.Next()
			if err != nil {
				return
			}
			if mode != freeRider {
				continue
			}
			switch m.ID {
			case peerwire.Bitfield:
				if b, err := bitfield.FromBytes(m.Payload, n); err == nil {
					theirs = b
				}
			case peerwire.HaveAll:
				theirs.SetAll()
			case peerwire.Have:
				theirs.Set(int(m.Index))
				if unchoked {
					requestMore()
				}
			case peerwire.Unchoke:
				unchoked = true
				requestMore()
			case peerwire.Choke:
				unchoked = false
				// Without the fast extension a choke drops our requests.
				for k := range asked {
					delete(asked, k)
				}
				outstanding = 0
			case peerwire.Piece:
				outstanding--
				fp.mu.Lock()
				fp.total += int64(len(m.Payload))
				if !fromSeed {
					fp.got[makeKey(m.Index, m.Begin)] = len(m.Payload)
				}
				fp.mu.Unlock()
				if unchoked {
					requestMore()
				}
			}
		}
	}
	if mode == freeRider {
		for _, a := range targets {
			c, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); serve(c, true, false) }()
		}
		return fp
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp.addr = netip.MustParseAddrPort(ln.Addr().String())
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		context.AfterFunc(s.ctx, func() { ln.Close() })
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { defer s.wg.Done(); serve(c, false, false) }()
		}
	}()
	return fp
}

// TestFreeRiderGetsLess: with few upload slots, a peer that never uploads
// receives less from the leechers than the fair leechers get from each
// other, because they reciprocate (tit-for-tat). The free-rider connects
// to the leechers only: the seed has nothing to gain from anyone and
// serves all in turn, so it is not part of the comparison.
func TestFreeRiderGetsLess(t *testing.T) {
	tt := newTestTorrent(t, []int64{6 << 20}, 64<<10)
	s := newSwarm(t, tt, 90*time.Second)
	// Short choking rounds so that tit-for-tat converges within the test.
	fast := 300 * time.Millisecond
	seed := s.node(true, Config{UploadLimit: NewLimiter(1_000_000), MaxUnchoked: 3, RechokeInterval: fast})
	var nodes []*node
	for range 5 {
		nodes = append(nodes, s.node(false, Config{MaxUnchoked: 3, UploadLimit: NewLimiter(400_000), RechokeInterval: fast}))
	}
	connectAll(append([]*node{seed}, nodes...)...)
	var targets []netip.AddrPort
	for _, n := range nodes {
		targets = append(targets, n.addr)
	}
	rider := startFake(t, s, freeRider, targets...)
	// Compare when the first fair leecher completes: after that, finished
	// leechers seed to everyone in turn, free-rider included.
	var first *node
	for first == nil {
		for _, n := range nodes {
			select {
			case <-n.t.Done():
				first = n
			default:
			}
		}
		select {
		case <-s.ctx.Done():
			t.Fatal("no leecher completed")
		case <-time.After(10 * time.Millisecond):
		}
	}
	got := rider.received()
	var all int64
	for _, n := range nodes {
		all += n.t.Stats().Downloaded
	}
	fromLeechers := (all - seed.t.Stats().Uploaded) / int64(len(nodes))
	t.Logf("from leechers, by the first completion: fair leechers %d bytes on average, the free-rider %d", fromLeechers, got)
	if got >= fromLeechers {
		t.Fatalf("free-rider got %d bytes from leechers, a fair leecher %d on average", got, fromLeechers)
	}
	for _, n := range nodes {
		waitDone(t, s.ctx, n.t)
	}
	// Once done, the leechers seed in turn to everyone: proof that the
	// fake works and was only out-traded before.
	for rider.totalReceived() == 0 {
		select {
		case <-s.ctx.Done():
			t.Fatal("free-rider never got any data, even from idle seeds")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func testAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 6881)
}

// TestChangePriorities: a torrent started with one file skipped gets it
// after SetFilePriorities, and Have reports every piece at the end.
func TestChangePriorities(t *testing.T) {
	tt := newTestTorrent(t, []int64{300_000, 500_000}, 64<<10)
	s := newSwarm(t, tt, 30*time.Second)
	seed := s.node(true, Config{})
	leech := s.node(false, Config{FilePriorities: []Priority{High, Skip}})
	leech.t.AddPeers(seed.addr)
	waitDone(t, s.ctx, leech.t)
	if got := leech.t.Have().Count(); got == tt.info.NumPieces() {
		t.Fatal("skipped file downloaded")
	}
	if err := leech.t.SetFilePriorities([]Priority{Normal, Normal}); err != nil {
		t.Fatal(err)
	}
	for leech.t.Have().Count() != tt.info.NumPieces() {
		select {
		case <-s.ctx.Done():
			t.Fatalf("second file not downloaded: %+v", leech.t.Stats())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.checkData(leech)
}
