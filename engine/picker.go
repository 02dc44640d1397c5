package engine

import (
	"math/rand/v2"
	"net/netip"

	"github.com/sowerbt/sower/bitfield"
)

// The picker decides what to download and keeps the state of everything
// in flight. It is owned by the torrent's owner goroutine, and its state
// (and that of its pieces and blocks) is changed only by its methods, in
// this file and pick.go: the rest of the engine tells it what happened
// (a peer has a piece or is gone; a block was requested, arrived or was
// cancelled; a piece was verified, failed, or could not be stored) and
// asks it what to fetch next (for a peer, for a web seed, what to offer
// while super-seeding). Other files may read a piece's fields, never
// write them.

// blockSize is the request size every client uses (BEP 3 recommends 16 KiB;
// larger requests are refused by some peers).
const blockSize = 16 << 10

// block is the download state of one block of an in-flight piece.
type block struct {
	reqs int            // outstanding requests for it (more than one only in end game)
	have bool           // received (data holds it)
	from netip.AddrPort // who sent it, to attribute hash failures
	// data is the received block, kept in the pooled buffer it arrived
	// in until the piece is hashed and written, so that the owner
	// goroutine, which every event goes through, copies no payload.
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
// peers have each.
type picker struct {
	numPieces  int
	pieceLen   int64
	totalLen   int64
	have       bitfield.Bitfield
	prio       []Priority
	sequential bool
	endGame    EndGamePolicy
	avail      []int          // number of connected peers that have each piece
	active     map[int]*piece // in-flight pieces
	order      []*piece       // active pieces, oldest first, so partial pieces finish first
	left       int            // wanted pieces not yet verified
	// maxActive bounds the pieces in flight: each holds its blocks'
	// buffers until it is hashed and written (Config.MaxBuffer).
	maxActive int
	// exclusive holds pieces that failed their hash check with blocks
	// from several peers: the next fetch is from one peer (see blame).
	exclusive map[int]bool
	offers    []int      // super-seeding: peers each piece is offered to
	pool      *blockPool // where block buffers come from and go back to
	rng       *rand.Rand
	// random first pieces until this many are complete, so a new peer soon
	// has something to trade instead of all leechers chasing the rarest piece.
	randomFirst int
}

// pickerConfig is what a picker is made of.
type pickerConfig struct {
	pieceLen, totalLen int64
	have               bitfield.Bitfield
	prio               []Priority
	sequential         bool
	endGame            EndGamePolicy
	maxActive          int
	pool               *blockPool
}

func newPicker(c pickerConfig) *picker {
	n := len(c.prio)
	pk := &picker{
		numPieces:   n,
		pieceLen:    c.pieceLen,
		totalLen:    c.totalLen,
		have:        c.have,
		prio:        c.prio,
		sequential:  c.sequential,
		endGame:     c.endGame,
		avail:       make([]int, n),
		active:      make(map[int]*piece),
		maxActive:   max(c.maxActive, 4),
		exclusive:   make(map[int]bool),
		offers:      make([]int, n),
		pool:        c.pool,
		rng:         rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		randomFirst: 4,
	}
	if pk.pool == nil {
		pk.pool = new(blockPool)
	}
	pk.countLeft()
	return pk
}

func (pk *picker) countLeft() {
	pk.left = 0
	for i := range pk.numPieces {
		if pk.needs(i) {
			pk.left++
		}
	}
}

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

// Questions.

// needs reports whether piece i is wanted and not yet verified.
func (pk *picker) needs(i int) bool { return pk.prio[i] > Skip && !pk.have.Has(i) }

// hasPiece reports whether piece i is verified and stored.
func (pk *picker) hasPiece(i int) bool { return pk.have.Has(i) }

// seeding reports whether every piece is verified (wanted or not).
func (pk *picker) seeding() bool { return pk.have.Full() }

// haveCount is the number of verified pieces.
func (pk *picker) haveCount() int { return pk.have.Count() }

// haveSet returns a copy of the verified pieces.
func (pk *picker) haveSet() bitfield.Bitfield { return pk.have.Clone() }

// remaining is the number of wanted pieces not yet verified.
func (pk *picker) remaining() int { return pk.left }

// priority is piece i's priority.
func (pk *picker) priority(i int) Priority { return pk.prio[i] }

// copies is the number of connected peers that have piece i.
func (pk *picker) copies(i int) int { return pk.avail[i] }

// inFlight returns the active piece i, or nil.
func (pk *picker) inFlight(i int) *piece { return pk.active[i] }

// pieceSize is the length of piece i.
func (pk *picker) pieceSize(i int) int {
	return int(min(pk.pieceLen, pk.totalLen-int64(i)*pk.pieceLen))
}

// Peers' pieces.

// peerHas records that a connected peer announced piece i.
func (pk *picker) peerHas(i int) { pk.avail[i]++ }

// peerBitfield records that a peer's pieces changed from old to now
// (a bitfield or have-all replacing what it announced before).
func (pk *picker) peerBitfield(old, now bitfield.Bitfield) {
	for i := range pk.numPieces {
		switch had, has := old.Has(i), now.Has(i); {
		case has && !had:
			pk.avail[i]++
		case had && !has:
			pk.avail[i]--
		}
	}
}

// peerGone records that a peer that had pieces has is gone (its
// requests are released one by one, see release and disown).
func (pk *picker) peerGone(has bitfield.Bitfield) {
	switch {
	case has.Count() == 0:
	case has.Full():
		for i := range pk.avail {
			pk.avail[i]--
		}
	default:
		for i := range pk.numPieces {
			if has.Has(i) {
				pk.avail[i]--
			}
		}
	}
}

// wantsFrom reports whether a peer that has has any piece we need.
func (pk *picker) wantsFrom(has bitfield.Bitfield) bool {
	for i := range pk.numPieces {
		if has.Has(i) && pk.needs(i) {
			return true
		}
	}
	return false
}

// disown lets other peers take the exclusive pieces p was fetching.
func (pk *picker) disown(p *peer) {
	for _, pc := range pk.active {
		if pc.owner == p {
			pc.owner = nil
		}
	}
}

// Blocks.

// release forgets one request for block k (cancelled, rejected, choked,
// timed out, or its peer is gone). A block of a piece no longer in flight
// is ignored.
func (pk *picker) release(k blockKey) {
	if pc := pk.active[int(k.index())]; pc != nil {
		if b := int(k.begin() / blockSize); b < len(pc.blocks) {
			pc.release(b)
		}
	}
}

// release forgets a request for block b of pc.
func (pc *piece) release(b int) {
	if pc.blocks[b].reqs > 0 {
		pc.blocks[b].reqs--
	}
	if pc.blocks[b].reqs == 0 && !pc.blocks[b].have && b < pc.next {
		pc.next = b
	}
}

// received is what became of a block that arrived.
type received int

const (
	blockWasted   received = iota // not wanted (any more): a duplicate or a piece already done
	blockBadSize                  // not the length requested
	blockStored                   // kept; the piece still misses blocks
	blockComplete                 // kept, and the piece is whole: hash it
)

// received stores the block k that arrived from a peer at from. When it
// is kept (blockStored, blockComplete) the picker holds data until the
// piece is done; otherwise the caller keeps it. A complete piece is
// marked as hashing: no more blocks of it are asked for.
func (pk *picker) received(k blockKey, data []byte, from netip.AddrPort) (*piece, received) {
	pc := pk.active[int(k.index())]
	b := int(k.begin() / blockSize)
	if pc == nil || pc.hashing || k.begin()%blockSize != 0 || b >= len(pc.blocks) || pc.blocks[b].have {
		if pc != nil && b < len(pc.blocks) {
			pc.release(b)
		}
		return pc, blockWasted
	}
	if len(data) != pc.blockLen(b) {
		return pc, blockBadSize
	}
	blk := &pc.blocks[b]
	blk.data, blk.have, blk.from = data, true, from
	pc.release(b)
	pc.received++
	if pc.received < len(pc.blocks) {
		return pc, blockStored
	}
	pc.hashing = true
	return pc, blockComplete
}

// Web seeds.

// webFailed hands the pieces of a failed web seed run to the peers,
// keeping any blocks they delivered meanwhile.
func (pk *picker) webFailed(run []*piece) {
	for _, pc := range run {
		if pk.active[pc.index] != pc || pc.hashing {
			continue // peers completed it meanwhile
		}
		pc.web = nil
		for b := range pc.blocks {
			if pc.blocks[b].reqs > 0 {
				pc.blocks[b].reqs--
			}
		}
		pc.next = 0
	}
}

// webFetched fills pc with the bytes a web seed delivered for it and
// marks it as hashing. It reports false when peers finished the piece
// first (the bytes are wasted).
func (pk *picker) webFetched(pc *piece, data []byte) bool {
	if pk.active[pc.index] != pc || pc.hashing {
		return false
	}
	for b := range pc.blocks {
		blk := &pc.blocks[b]
		if !blk.have {
			blk.data = pk.pool.get(pc.blockLen(b))
			copy(blk.data, data[b*blockSize:])
			blk.have = true
		}
		blk.reqs = 0
	}
	pc.received = len(pc.blocks)
	pc.hashing = true
	return true
}

// Pieces.

// start makes piece i active.
func (pk *picker) start(i int) *piece {
	size := pk.pieceSize(i)
	n := (size + blockSize - 1) / blockSize
	pc := &piece{index: i, size: size, blocks: make([]block, n)}
	pk.active[i] = pc
	pk.order = append(pk.order, pc)
	return pc
}

// finish removes pc from the active set. Its blocks stay readable (to
// blame senders) until recycle.
func (pk *picker) finish(pc *piece) {
	delete(pk.active, pc.index)
	for k, q := range pk.order {
		if q == pc {
			pk.order = append(pk.order[:k], pk.order[k+1:]...)
			break
		}
	}
}

// recycle returns the block buffers of a finished piece to the pool.
func (pk *picker) recycle(pc *piece) {
	for b := range pc.blocks {
		if d := pc.blocks[b].data; d != nil {
			pk.pool.put(d)
			pc.blocks[b].data = nil
		}
	}
}

// verified records that piece pc passed its hash check and is stored.
func (pk *picker) verified(pc *piece) {
	pk.finish(pc)
	delete(pk.exclusive, pc.index)
	if pk.needs(pc.index) {
		pk.left--
	}
	pk.have.Set(pc.index)
}

// failed records that pc failed its hash check. If several peers sent it,
// exclusive asks for the next copy to come from one peer.
func (pk *picker) failed(pc *piece, exclusive bool) {
	pk.finish(pc)
	if exclusive {
		pk.exclusive[pc.index] = true
	}
}

// setPriorities replaces the pieces' priorities.
func (pk *picker) setPriorities(prio []Priority) {
	pk.prio = prio
	pk.countLeft()
}

// Super-seeding.

// offer records that piece i is offered to one more peer.
func (pk *picker) offer(i int) { pk.offers[i]++ }

// withdraw records that an offer of piece i ended.
func (pk *picker) withdraw(i int) { pk.offers[i]-- }
