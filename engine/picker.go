package engine

import (
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/sowerbt/sower/bitfield"
)

// blockSize is the request size every client uses (BEP 3 recommends 16 KiB;
// larger requests are refused by some peers).
const blockSize = 16 << 10

// block is the download state of one block of an in-flight piece.
type block struct {
	reqs int            // outstanding requests for it (more than one only in end game)
	have bool           // received (data holds it)
	from netip.AddrPort // who sent it, to attribute hash failures
	// data is the received block, kept in the pooled buffer it arrived
	// in until the piece is hashed and written: copying every block into
	// a piece buffer cost the owner goroutine 3 % of a download's CPU.
	data []byte
}

// piece is an in-flight piece: requested, partly received, or being hashed.
type piece struct {
	index    int
	size     int
	blocks   []block
	received int
	next     int  // hint: no unrequested block before this index
	hashing  bool // all blocks in, hash check running
	// exclusive pieces (re-fetched after a mixed hash failure) come from
	// one peer, owner, so the outcome identifies the liar.
	exclusive bool
	owner     *peer
	web       *wsSource // fetched whole by a web seed; peers keep off it
}

func (pc *piece) blockLen(i int) int {
	if i == len(pc.blocks)-1 {
		return pc.size - i*blockSize
	}
	return blockSize
}

// picker holds which pieces we have, want and are fetching, and how many
// peers have each. It is owned by the torrent's owner goroutine.
type picker struct {
	numPieces  int
	have       bitfield.Bitfield
	prio       []Priority
	sequential bool
	avail      []int          // number of connected peers that have each piece
	active     map[int]*piece // in-flight pieces
	order      []*piece       // active pieces, oldest first, so partial pieces finish first
	left       int            // wanted pieces not yet verified
	rng        *rand.Rand
	// random first pieces until this many are complete, so a new peer soon
	// has something to trade instead of all leechers chasing the rarest piece.
	randomFirst int
}

func newPicker(n int, have bitfield.Bitfield, prio []Priority, sequential bool) *picker {
	pk := &picker{
		numPieces:   n,
		have:        have,
		prio:        prio,
		sequential:  sequential,
		avail:       make([]int, n),
		active:      make(map[int]*piece),
		rng:         rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		randomFirst: 4,
	}
	for i := 0; i < n; i++ {
		if prio[i] > Skip && !have.Has(i) {
			pk.left++
		}
	}
	return pk
}

// needs reports whether piece i is wanted and not yet verified.
func (pk *picker) needs(i int) bool { return pk.prio[i] > Skip && !pk.have.Has(i) }

// Priority is a file's or piece's download priority.
type Priority int8

// Priorities, lowest first.
const (
	Skip   Priority = iota // do not download
	Normal                 // rarest first
	High                   // before any normal piece
)

// EndGamePolicy decides when a peer may be sent requests for blocks that
// are already requested from another peer.
type EndGamePolicy int

const (
	// EndGameAllRequested enters end game when no block of any missing
	// piece is left unrequested: the classic rule, which wastes least.
	EndGameAllRequested EndGamePolicy = iota
	// EndGameAllStarted enters as soon as every missing piece is in
	// flight and the asking peer has nothing new to fetch: more eager, so
	// a slow peer holding the last blocks is bypassed sooner.
	EndGameAllStarted
)

// pickNew chooses a piece to start that the peer has: highest priority
// first; within it rarest first with a random choice among the equally
// rare, or a random one while we have almost nothing, or the lowest index
// in sequential mode. It returns -1 when there is none.
func (pk *picker) pickNew(has bitfield.Bitfield, seed bool) int {
	best, bestPrio, bestAvail, ties := -1, Skip, int(^uint(0)>>1), 0
	random := !pk.sequential && pk.have.Count() < pk.randomFirst
	start := 0
	if !pk.sequential {
		start = pk.rng.IntN(pk.numPieces)
	}
	for k := 0; k < pk.numPieces; k++ {
		i := start + k
		if i >= pk.numPieces {
			i -= pk.numPieces
		}
		if !pk.needs(i) || pk.active[i] != nil || (!seed && !has.Has(i)) {
			continue
		}
		p := pk.prio[i]
		if p < bestPrio {
			continue
		}
		if p > bestPrio {
			best, bestPrio, bestAvail, ties = i, p, pk.avail[i], 1
			continue
		}
		if random || pk.sequential {
			continue // keep the first found: random offset, or lowest index
		}
		a := pk.avail[i]
		switch {
		case a < bestAvail:
			best, bestAvail, ties = i, a, 1
		case a == bestAvail:
			// Reservoir sampling keeps the choice uniform among ties.
			ties++
			if pk.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// start makes piece i active.
func (pk *picker) start(i, size int) *piece {
	n := (size + blockSize - 1) / blockSize
	pc := &piece{index: i, size: size, blocks: make([]block, n)}
	pk.active[i] = pc
	pk.order = append(pk.order, pc)
	return pc
}

// finish removes piece i from the active set.
func (pk *picker) finish(i int) {
	delete(pk.active, i)
	for k, pc := range pk.order {
		if pc.index == i {
			pk.order = append(pk.order[:k], pk.order[k+1:]...)
			break
		}
	}
}

// verified records that piece i passed its hash check and is stored.
func (pk *picker) verified(i int) {
	if pk.needs(i) {
		pk.left--
	}
	pk.have.Set(i)
}

// unrequested returns the first block of pc nobody has requested, or -1.
func (pc *piece) unrequested() int {
	for b := pc.next; b < len(pc.blocks); b++ {
		if !pc.blocks[b].have && pc.blocks[b].reqs == 0 {
			pc.next = b
			return b
		}
	}
	pc.next = len(pc.blocks)
	return -1
}

// release forgets a request for block b of pc (choke, reject, timeout, disconnect).
func (pc *piece) release(b int) {
	if pc.blocks[b].reqs > 0 {
		pc.blocks[b].reqs--
	}
	if pc.blocks[b].reqs == 0 && !pc.blocks[b].have && b < pc.next {
		pc.next = b
	}
}

// Bounds of a peer's request queue depth, in blocks: 512 KiB to 32 MiB in
// flight. The peer's own limit (reqq) caps it further.
const (
	minDepth = 32
	maxDepth = 2048
)

// depthWindow is how often a peer that is sending blocks has its queue
// depth recomputed. The tick (once a second) alone left a new fast peer at
// minDepth for its first second: on two busy cores a wake-up can wait a
// few milliseconds, 32 blocks ran dry, and a 1 GiB transfer on loopback
// spent a fifth of its time with the CPUs idle.
const depthWindow = 50 * time.Millisecond

// updateDepth sets the peer's request queue depth from its measured rate:
// enough requests to cover about a second of transfer at the current
// speed (the last window's or the smoothed one, whichever is higher, so it
// ramps up fast), so a fast link is never idle waiting for the next
// request. The floor keeps a new or bursty peer busy.
func (p *peer) updateDepth(now time.Time) {
	inst := 0.0
	if dt := now.Sub(p.depthAt).Seconds(); dt > 0 && !p.depthAt.IsZero() {
		inst = float64(p.downloaded-p.lastDownloaded) / dt
	}
	p.lastDownloaded, p.depthAt = p.downloaded, now
	p.depth = int(min(max(inst/blockSize, p.rate.rate/blockSize, minDepth), maxDepth))
}

// requestTimeout is how long a peer may sit on our requests without
// sending any block before they are handed to other peers.
const requestTimeout = 30 * time.Second
