package engine

import (
	"math/rand/v2"
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
	pk := newPicker(n, bitfield.New(n), prio, sequential)
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
	pk.start(3, 100)
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
	tor.pk.rng = rand.New(rand.NewPCG(1, 1))
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
