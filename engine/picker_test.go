package engine

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sowerbt/sower/bitfield"
)

func testPicker(n int, prio []Priority, sequential bool) *picker {
	if prio == nil {
		prio = make([]Priority, n)
		for i := range prio {
			prio[i] = Normal
		}
	}
	pk := newPicker(pickerConfig{pieceLen: 100, totalLen: int64(n) * 100, have: bitfield.New(n), prio: prio, sequential: sequential, maxActive: n})
	pk.rng = rand.New(rand.NewPCG(7, 7))
	pk.randomFirst = 0
	return pk
}

func fullSet(n int) bitfield.Bitfield {
	b := bitfield.New(n)
	b.SetAll()
	return b
}

func TestPickRarest(t *testing.T) {
	pk := testPicker(6, nil, false)
	copy(pk.avail, []int{3, 1, 2, 1, 5, 4})
	counts := map[int]int{}
	for range 200 {
		counts[pk.pickNew(fullSet(6), false)]++
	}
	if len(counts) != 2 || counts[1] == 0 || counts[3] == 0 {
		t.Fatalf("want a random choice between the two rarest pieces 1 and 3, got %v", counts)
	}
	// A peer without the rarest pieces gets the rarest it has.
	has := bitfield.New(6)
	has.Set(0)
	has.Set(2)
	if got := pk.pickNew(has, false); got != 2 {
		t.Fatalf("picked %d, want 2", got)
	}
	// Pieces we have or that are in flight are never picked again.
	pk.have.Set(1)
	pk.start(3)
	if got := pk.pickNew(fullSet(6), false); got != 2 {
		t.Fatalf("picked %d, want 2", got)
	}
}

func TestPickPriorities(t *testing.T) {
	pk := testPicker(5, []Priority{Normal, High, Skip, High, Normal}, false)
	copy(pk.avail, []int{1, 9, 0, 8, 1})
	if got := pk.pickNew(fullSet(5), false); got != 3 {
		t.Fatalf("picked %d, want the rarest high-priority piece 3", got)
	}
	pk.have.Set(1)
	pk.have.Set(3)
	for range 50 {
		if got := pk.pickNew(fullSet(5), false); got == 2 {
			t.Fatal("picked a skipped piece")
		}
	}
	seq := testPicker(5, nil, true)
	copy(seq.avail, []int{9, 9, 1, 1, 1})
	if got := seq.pickNew(fullSet(5), false); got != 0 {
		t.Fatalf("sequential picked %d, want 0", got)
	}
}

func TestPickRandomFirst(t *testing.T) {
	pk := testPicker(100, nil, false)
	pk.randomFirst = 4
	pk.avail[42] = 0
	for i := range pk.avail {
		if i != 42 {
			pk.avail[i] = 5
		}
	}
	seen := map[int]bool{}
	for range 20 {
		seen[pk.pickNew(fullSet(100), false)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("random first pieces are not random: %v", seen)
	}
}

// chokerTorrent builds a torrent with peers in given states, without
// running it: rechoke is a pure decision on the owner's state.
func chokerTorrent(t *testing.T, complete bool, rates []float64) (*Torrent, []*peer) {
	tt := newTestTorrent(t, []int64{1 << 20}, 64<<10)
	cfg := Config{MaxUnchoked: 3}
	if complete {
		cfg.Have = tt.full()
	}
	tor, err := New(tt.info, tt.hash, tt.layout, tt.seedStore(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tor.complete = complete
	tor.rng = rand.New(rand.NewPCG(1, 1))
	var ps []*peer
	now := time.Now()
	for i, r := range rates {
		p := &peer{notify: make(chan struct{}, 1), has: bitfield.New(tt.info.NumPieces()), amChoking: true,
			peerInterested: true, connected: now.Add(-time.Hour), offered: -1}
		p.rate.rate = r
		p.addr = testAddr(i)
		tor.peers[p] = struct{}{}
		ps = append(ps, p)
	}
	return tor, ps
}

func TestChokerTitForTat(t *testing.T) {
	tor, ps := chokerTorrent(t, false, []float64{100, 500, 300, 0, 50})
	ps[1].snubbed = true // fastest, but snubbed: no regular slot
	tor.rechoke(time.Now(), true)
	// Two regular slots (MaxUnchoked-1): the fastest non-snubbed uploaders 2 and 0.
	if ps[2].amChoking || ps[0].amChoking {
		t.Fatal("fastest uploaders not unchoked")
	}
	opt := 0
	for i, p := range ps {
		if p.optimistic {
			opt++
			if i == 2 || i == 0 {
				t.Fatal("optimistic slot given to a regular peer")
			}
			if p.amChoking {
				t.Fatal("optimistic peer still choked")
			}
		}
	}
	if opt != 1 {
		t.Fatalf("%d optimistic peers", opt)
	}
	unchoked := 0
	for _, p := range ps {
		if !p.amChoking {
			unchoked++
		}
	}
	if unchoked != 3 {
		t.Fatalf("%d unchoked, want 3 slots", unchoked)
	}
	// Not interested peers never hold a slot.
	ps[2].peerInterested = false
	tor.rechoke(time.Now(), false)
	if !ps[2].amChoking {
		t.Fatal("uninterested peer kept its slot")
	}
}

func TestChokerSeedRoundRobin(t *testing.T) {
	tor, ps := chokerTorrent(t, true, []float64{0, 0, 0, 0, 0, 0})
	served := map[*peer]bool{}
	now := time.Now()
	for round := 0; round < 12; round++ {
		tor.rechoke(now, round%3 == 0)
		for _, p := range ps {
			if !p.amChoking {
				served[p] = true
			}
		}
		now = now.Add(rechokeEvery)
	}
	if len(served) != len(ps) {
		t.Fatalf("round robin served %d of %d leechers", len(served), len(ps))
	}
}

// TestDepthFollowsRate checks that the request queue depth follows a
// peer's rate within one depthWindow, not one tick: a fast peer gets a
// deep pipeline at once and a slow one keeps the floor.
func TestDepthFollowsRate(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		name  string
		bytes int64 // received in one depthWindow
		want  int
	}{
		{"fast", 64 << 20, maxDepth}, // 1.3 GB/s
		{"medium", 1 << 20, int(float64(1<<20) / depthWindow.Seconds() / blockSize)}, // 21 MB/s: 1,280 blocks
		{"slow", 16 << 10, minDepth},
	} {
		p := &peer{depth: minDepth}
		p.updateDepth(start) // starts the first window
		if p.depth != minDepth {
			t.Fatalf("%s: depth %d before any block, want %d", tc.name, p.depth, minDepth)
		}
		p.downloaded += tc.bytes
		p.updateDepth(start.Add(depthWindow))
		if p.depth != tc.want {
			t.Errorf("%s: depth %d after %d bytes in %v, want %d", tc.name, p.depth, tc.bytes, depthWindow, tc.want)
		}
	}
}

// seedPeer is a peer with every piece, as the picker sees it.
func seedPeer(n int) *peer {
	return &peer{has: fullSet(n), seed: true, pending: map[blockKey]time.Time{}}
}

// TestPickerBlockLifecycle drives one piece through the verbs: requested
// block by block, a block released and asked again, received, hashing,
// failed with several senders (the next copy comes from one peer), and
// verified.
func TestPickerBlockLifecycle(t *testing.T) {
	const n = 4
	pk := newPicker(pickerConfig{pieceLen: 3 * blockSize, totalLen: n * 3 * blockSize, have: bitfield.New(n),
		prio: []Priority{Normal, Normal, Normal, Normal}})
	pk.randomFirst, pk.maxActive = 0, 1 // one piece at a time
	a, b := seedPeer(n), seedPeer(n)
	now := time.Now()
	ask := func(p *peer) (*piece, int) {
		t.Helper()
		pc, blk := pk.request(p, now)
		if pc != nil {
			p.pending[makeKey(uint32(pc.index), uint32(blk*blockSize))] = now
		}
		return pc, blk
	}
	pc, b0 := ask(a)
	if pc == nil || b0 != 0 || pk.inFlight(pc.index) != pc {
		t.Fatalf("first request: %v %d", pc, b0)
	}
	i := pc.index
	if q, b1 := ask(b); q != pc || b1 != 1 {
		t.Fatalf("second peer got piece %v block %d, want the started piece's block 1", q, b1)
	}
	if q, b2 := ask(a); q != pc || b2 != 2 {
		t.Fatalf("got block %d, want 2", b2)
	}
	// Every block is requested and no memory is left for another piece,
	// yet pieces are missing: not the end game, so nothing to ask.
	if q, blk := ask(b); q != nil {
		t.Fatalf("past the budget, outside the end game: piece %d block %d", q.index, blk)
	}
	k1 := makeKey(uint32(i), blockSize)
	pk.release(k1)
	delete(b.pending, k1)
	if q, blk := pk.request(a, now); q != pc || blk != 1 {
		t.Fatalf("released block not asked again: block %d", blk)
	}
	for blk, from := range []*peer{a, b, a} {
		got, res := pk.received(makeKey(uint32(i), uint32(blk*blockSize)), make([]byte, blockSize), netip.AddrPortFrom(netip.IPv6Loopback(), uint16(blk+1)))
		want := blockStored
		if blk == 2 {
			want = blockComplete
		}
		if got != pc || res != want {
			t.Fatalf("block %d from %v: %v, want %v", blk, from, res, want)
		}
	}
	if _, res := pk.received(makeKey(uint32(i), 0), make([]byte, blockSize), netip.AddrPort{}); res != blockWasted {
		t.Fatalf("a block of a piece being hashed: %v, want wasted", res)
	}
	if q, _ := pk.request(b, now); q == pc {
		t.Fatal("a block of a piece being hashed was requested")
	}
	// Several senders: the next copy is exclusive to the first peer that
	// asks for it.
	pk.failed(pc, true)
	pk.recycle(pc)
	if pk.inFlight(i) != nil || pk.hasPiece(i) {
		t.Fatal("failed piece still in flight or counted")
	}
	for j := range n {
		if j != i {
			pk.have.Set(j) // only piece i is left to pick
		}
	}
	pk.countLeft()
	again, _ := pk.request(a, now)
	if again == nil || again.index != i || !again.exclusive || again.owner != a {
		t.Fatalf("re-fetch of a mixed failure: %+v, want exclusive to a", again)
	}
	if q, _ := pk.request(b, now); q != nil {
		t.Fatalf("another peer got a block of an exclusive piece: %v", q)
	}
	pk.disown(a) // a is gone: b may take the piece
	if q, _ := pk.request(b, now); q != again {
		t.Fatal("exclusive piece not handed on after its owner left")
	}
	pk.verified(again)
	if !pk.hasPiece(i) || pk.remaining() != 0 || pk.exclusive[i] {
		t.Fatalf("verified: have %v, left %d, exclusive %v", pk.hasPiece(i), pk.remaining(), pk.exclusive[i])
	}
}

// TestPickerAvailability: peers' announcements keep the copies count equal
// to a recount over the peers.
func TestPickerAvailability(t *testing.T) {
	const n = 20
	pk := testPicker(n, nil, false)
	r := rand.New(rand.NewPCG(3, 4))
	peers := make([]bitfield.Bitfield, 5)
	for k := range peers {
		peers[k] = bitfield.New(n)
	}
	for step := range 500 {
		k := r.IntN(len(peers))
		switch r.IntN(4) {
		case 0:
			if i := r.IntN(n); !peers[k].Has(i) {
				peers[k].Set(i)
				pk.peerHas(i)
			}
		case 1:
			bf := bitfield.New(n)
			for i := range n {
				if r.IntN(2) == 0 {
					bf.Set(i)
				}
			}
			if r.IntN(4) == 0 {
				bf.SetAll()
			}
			pk.peerBitfield(peers[k], bf)
			peers[k] = bf
		default:
			pk.peerGone(peers[k])
			peers[k] = bitfield.New(n)
		}
		for i := range n {
			want := 0
			for _, p := range peers {
				if p.Has(i) {
					want++
				}
			}
			if pk.copies(i) != want {
				t.Fatalf("step %d: piece %d has %d copies, peers hold %d", step, i, pk.copies(i), want)
			}
		}
	}
}

// TestPickerWebRun: a web seed run starts at the rarest needed piece,
// goes on while the pieces are alike, stops at the size limit, at the
// memory budget and at pieces the source avoids, and peers keep off it.
func TestPickerWebRun(t *testing.T) {
	pk := testPicker(10, nil, false)
	pk.pieceLen, pk.totalLen, pk.maxActive = 100, 1000, 5
	copy(pk.avail, []int{2, 2, 0, 0, 0, 0, 0, 1, 0, 0})
	now := time.Now()
	s := &wsSource{avoid: map[int]time.Time{5: now.Add(time.Minute)}}
	run := pk.webRun(s, 1000, now)
	if got := indexes(run); !slices.Equal(got, []int{2, 3, 4}) {
		t.Fatalf("run %v, want [2 3 4]: from the rarest, up to the avoided piece 5", got)
	}
	if got := indexes(pk.webRun(s, 150, now)); !slices.Equal(got, []int{6}) {
		t.Fatalf("second run %v, want [6]: one piece past the limit is not taken", got)
	}
	// Peers keep off web seed pieces.
	peer := seedPeer(10)
	if pc, _ := pk.request(peer, now); pc == nil || pc.web != nil {
		t.Fatalf("a peer was given %+v, want a piece of its own", pc)
	}
	// The budget: 5 pieces in flight now (4 runs' and the peer's).
	if got := pk.webRun(s, 1000, now); got != nil {
		t.Fatalf("run %v past the memory budget", indexes(got))
	}
	// A failed run goes to the peers.
	pk.webFailed(run)
	if pc, b := pk.request(peer, now); pc == nil || pc.index != 2 || b != 0 {
		t.Fatalf("the oldest piece of a failed run is not handed to peers: %+v", pc)
	}
	if !pk.webFetched(run[1], make([]byte, 100)) || !run[1].hashing {
		t.Fatal("fetched bytes of a live piece not taken")
	}
	pk.verified(run[1])
	if pk.webFetched(run[1], make([]byte, 100)) {
		t.Fatal("fetched bytes of a finished piece taken")
	}
}

func indexes(run []*piece) []int {
	var is []int
	for _, pc := range run {
		is = append(is, pc.index)
	}
	return is
}

// TestPickerSuperPick: super-seeding offers the piece offered to the
// fewest peers, the rarest among those, never one the peer has.
func TestPickerSuperPick(t *testing.T) {
	pk := testPicker(4, nil, false)
	copy(pk.avail, []int{0, 3, 1, 2})
	has := bitfield.New(4)
	has.Set(0)
	if got := pk.superPick(has); got != 2 {
		t.Fatalf("offered %d, want the rarest piece the peer lacks, 2", got)
	}
	pk.offer(2)
	if got := pk.superPick(has); got != 3 {
		t.Fatalf("offered %d, want 3: 2 is offered already", got)
	}
	pk.withdraw(2)
	if got := pk.superPick(has); got != 2 {
		t.Fatalf("offered %d after the offer of 2 ended, want 2", got)
	}
	if got := pk.superPick(fullSet(4)); got != -1 {
		t.Fatalf("offered %d to a peer with every piece", got)
	}
}
