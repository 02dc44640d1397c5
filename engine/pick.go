package engine

import (
	"time"

	"github.com/sowerbt/sower/bitfield"
)

// The picker's choices: every loop that chooses a piece or a block is
// here (see picker.go for its state).

// request chooses the next block to ask p for and records the request:
// first unrequested blocks of pieces already in flight (finish what is
// started), then a new piece by rarity, and at the very end a block
// already requested from another peer (end game). It returns nil when
// there is nothing p can be asked for now.
func (pk *picker) request(p *peer, now time.Time) (*piece, int) {
	pc, b := pk.nextBlock(p, now)
	if pc != nil {
		pc.blocks[b].reqs++
	}
	return pc, b
}

func (pk *picker) nextBlock(p *peer, now time.Time) (*piece, int) {
	for _, pc := range pk.order {
		if !pc.mayFetch(p) || pc.web != nil {
			continue
		}
		if b := pc.unrequested(); b >= 0 && !p.refusedRecently(pc.index, now) {
			if pc.exclusive {
				pc.owner = p
			}
			return pc, b
		}
	}
	if len(pk.active) < pk.maxActive {
		if i := pk.pickNew(p.has, p.seed); i >= 0 {
			pc := pk.start(i)
			if pk.exclusive[i] {
				pc.exclusive, pc.owner = true, p
			}
			return pc, 0
		}
	}
	// End game: nothing unrequested is left that this peer could fetch, so
	// duplicate requests still outstanding elsewhere; the first copy wins
	// and the others are cancelled. Asked first: outside the end game
	// this point is reached on every request while the piece buffers are
	// all in use, and the scan below would look up every pending block.
	if !pk.inEndGame() {
		return nil, 0
	}
	for _, pc := range pk.order {
		i := pc.index
		if !pc.mayFetch(p) || p.refusedRecently(i, now) {
			continue
		}
		for b := range pc.blocks {
			blk := &pc.blocks[b]
			if blk.have || blk.reqs >= 2 {
				continue
			}
			if _, mine := p.pending[makeKey(uint32(i), uint32(b*blockSize))]; mine {
				continue
			}
			return pc, b
		}
	}
	return nil, 0
}

// mayFetch reports whether p may be asked for blocks of pc: it must have
// the piece, and a piece being re-fetched after a mixed hash failure is
// fetched from one peer only, so the result convicts or clears it.
func (pc *piece) mayFetch(p *peer) bool {
	if pc.hashing || !(p.seed || p.has.Has(pc.index)) {
		return false
	}
	return !pc.exclusive || pc.owner == nil || pc.owner == p
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

// inEndGame applies the EndGamePolicy. Both rules need every missing
// piece in flight (no piece left to start); AllRequested also needs every
// block of them requested from someone.
func (pk *picker) inEndGame() bool {
	if len(pk.active) < pk.left {
		return false
	}
	if pk.endGame == EndGameAllStarted {
		return true
	}
	for _, pc := range pk.active {
		if !pc.hashing && pc.unrequested() >= 0 {
			return false
		}
	}
	return true
}

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

// webRun chooses a run of pieces for a worker of web seed s, of about
// limit bytes (at least one piece), starts them as s's and returns them;
// nil if there is nothing to fetch or no memory for another piece. The
// run starts at a needed piece not in flight, least available among
// peers (a web seed has everything, so it should fetch what peers cannot
// give), the lowest index among those so that runs are long, and not one
// this source failed lately; it goes on while the pieces are alike.
func (pk *picker) webRun(s *wsSource, limit int64, now time.Time) []*piece {
	start := -1
	for i := 0; i < pk.numPieces; i++ {
		if !pk.needs(i) || pk.active[i] != nil || s.avoids(i, now) {
			continue
		}
		if start < 0 || pk.prio[i] > pk.prio[start] || (pk.prio[i] == pk.prio[start] && pk.avail[i] < pk.avail[start]) {
			start = i
		}
	}
	if start < 0 {
		return nil
	}
	var run []*piece
	size := int64(0)
	for i := start; i < pk.numPieces && pk.needs(i) && pk.active[i] == nil && pk.avail[i] == pk.avail[start] && !s.avoids(i, now); i++ {
		n := int64(pk.pieceSize(i))
		if size > 0 && size+n > limit {
			break
		}
		if len(pk.active) >= pk.maxActive {
			break
		}
		pc := pk.start(i)
		pc.web = s
		for b := range pc.blocks {
			pc.blocks[b].reqs = 1
		}
		pc.next = len(pc.blocks)
		run = append(run, pc)
		size += n
	}
	return run
}

// superPick chooses the piece to offer next to a peer that has has while
// super-seeding: one offered to the fewest peers, the rarest among those.
// -1 if the peer has every piece.
func (pk *picker) superPick(has bitfield.Bitfield) int {
	best, bestOffers, bestAvail := -1, 0, 0
	for i := 0; i < pk.numPieces; i++ {
		if has.Has(i) {
			continue
		}
		o, a := pk.offers[i], pk.avail[i]
		if best < 0 || o < bestOffers || (o == bestOffers && a < bestAvail) {
			best, bestOffers, bestAvail = i, o, a
		}
	}
	return best
}
