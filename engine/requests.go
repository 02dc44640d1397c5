package engine

import (
	"crypto/sha1"
	"fmt"
	"net/netip"
	"time"

	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

type hashResult struct {
	pc  *piece
	ok  bool
	err error // storage write failed
}

// releaseAll returns all of p's outstanding requests to the picker.
func (t *Torrent) releaseAll(p *peer) {
	for k := range p.pending {
		if pc := t.pk.active[int(k.index())]; pc != nil {
			pc.release(int(k.begin() / blockSize))
		}
	}
	clear(p.pending)
	for _, pc := range t.pk.active {
		if pc.owner == p {
			pc.owner = nil // another peer may take the exclusive piece
		}
	}
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

// onBlock stores a received block in its piece and starts the hash check
// when the piece is whole.
func (t *Torrent) onBlock(p *peer, m peerwire.Message, data []byte) error {
	kept := false
	defer func() {
		if !kept {
			t.blocks.put(data)
		}
	}()
	k := makeKey(m.Index, m.Begin)
	n := int64(len(data))
	if _, ok := p.pending[k]; ok {
		delete(p.pending, k)
	} else if _, ok := p.cancelled[k]; ok {
		delete(p.cancelled, k)
	} else {
		return fmt.Errorf("unrequested block %d+%d", m.Index, m.Begin)
	}
	p.downloaded += n
	p.lastPiece = time.Now()
	if p.lastPiece.Sub(p.depthAt) >= depthWindow {
		p.updateDepth(p.lastPiece)
	}
	p.snubbed = false
	t.downloaded += n
	pc := t.pk.active[int(m.Index)]
	b := int(m.Begin / blockSize)
	if pc == nil || pc.hashing || m.Begin%blockSize != 0 || b >= len(pc.blocks) || pc.blocks[b].have {
		t.wasted += n // end-game duplicate or a piece already done
		if pc != nil && b < len(pc.blocks) {
			pc.release(b)
		}
		return nil
	}
	if int(n) != pc.blockLen(b) {
		return fmt.Errorf("block %d+%d has %d bytes, requested %d", m.Index, m.Begin, n, pc.blockLen(b))
	}
	pc.blocks[b].data, kept = data, true
	pc.release(b)
	pc.blocks[b].have = true
	pc.blocks[b].from = p.addr
	pc.received++
	// Cancel copies of this block requested from other peers (end game).
	for q := range t.peers {
		if q == p {
			continue
		}
		if _, ok := q.pending[k]; ok {
			delete(q.pending, k)
			q.cancelled[k] = struct{}{}
			pc.release(b)
			q.send(peerwire.Message{ID: peerwire.Cancel, Index: m.Index, Begin: m.Begin, Length: uint32(n)})
		}
	}
	if pc.received == len(pc.blocks) {
		pc.hashing = true
		t.verify(pc)
	}
	return nil
}

// verify hashes a complete piece and writes it, off the owner goroutine.
// The blocks are hashed and written where they are, with one vectored
// write; the owner does not touch them until the result is back.
func (t *Torrent) verify(pc *piece) {
	want := t.info.Pieces[pc.index]
	bufs := make([][]byte, len(pc.blocks))
	for b := range pc.blocks {
		bufs[b] = pc.blocks[b].data
	}
	t.workers.Add(1)
	go func() {
		defer t.workers.Done()
		t.hashSem <- struct{}{}
		h := sha1.New()
		for _, b := range bufs {
			h.Write(b)
		}
		var sum [sha1.Size]byte
		ok := [sha1.Size]byte(h.Sum(sum[:0])) == want
		var err error
		if ok {
			off := int64(pc.index) * t.info.PieceLength
			_, err = storage.WriteVec(t.store, bufs, off)
		}
		<-t.hashSem
		t.hashed <- hashResult{pc: pc, ok: ok, err: err}
	}()
}

// dropPieceData returns the blocks of a piece that left the active set to
// the pool, and its share of the memory budget.
func (t *Torrent) dropPieceData(pc *piece) {
	for b := range pc.blocks {
		if d := pc.blocks[b].data; d != nil {
			t.blocks.put(d)
			pc.blocks[b].data = nil
		}
	}
	t.inFlight--
}

func (t *Torrent) onHashed(r hashResult) {
	pc := r.pc
	i := pc.index
	t.pk.finish(i)
	// onHashFail and convict read the blocks; they go back afterwards.
	defer t.dropPieceData(pc)
	switch {
	case r.err != nil:
		t.failWrite(i, r.err)
		return
	case !r.ok:
		t.hashFails++
		t.wasted += int64(pc.size)
		if pc.web != nil {
			t.onWebSeedHashFail(pc, time.Now())
			return
		}
		t.onHashFail(pc)
		return
	}
	t.convict(pc)
	t.pk.verified(i)
	for p := range t.peers {
		// Every peer hears of the piece, even one that has it: a seed
		// counts what its leechers hold (availability, and refusing
		// duplicates), which suppressed haves would hide from it.
		p.sendLazy(peerwire.Message{ID: peerwire.Have, Index: uint32(i)})
		if p.amInterested && p.has.Has(i) {
			t.updateInterest(p)
		}
	}
	if t.pk.left == 0 {
		t.markComplete()
	}
}

// failedPiece remembers who sent each block of a piece that failed its
// hash check when several peers contributed, so the culprits can be named
// once a good copy arrives.
type failedPiece struct {
	blocks []blockVerdict
}

type blockVerdict struct {
	sum  [20]byte
	from netip.AddrPort
}

// onHashFail blames the peers that sent the bad piece. A peer that sent the
// whole piece alone certainly sent bad data and is banned. For a piece with
// several senders each block's hash is kept: when the piece later passes,
// the senders of the blocks that differ from the good copy are the
// culprits (see convict). Until then each sender gets a strike, and three
// strikes ban it.
func (t *Torrent) onHashFail(pc *piece) {
	senders := map[netip.AddrPort]bool{}
	for _, b := range pc.blocks {
		senders[b.from] = true
	}
	t.log.Warn("piece failed hash check; downloading it again", "piece", pc.index, "peers", len(senders))
	if len(senders) > 1 {
		fp := &failedPiece{blocks: make([]blockVerdict, len(pc.blocks))}
		for b := range pc.blocks {
			fp.blocks[b] = blockVerdict{sum: sha1.Sum(pc.blocks[b].data), from: pc.blocks[b].from}
		}
		t.failed[pc.index] = fp
	}
	for a := range senders {
		p := t.byAddr[a]
		if p == nil {
			continue
		}
		p.hashFails++
		if len(senders) == 1 || p.hashFails >= maxStrikes {
			t.ban(p, fmt.Sprintf("sent data that failed the hash check (%d pieces)", p.hashFails))
		}
	}
}

// convict compares a verified piece with the blocks of its failed copy and
// bans whoever sent a block that differs.
func (t *Torrent) convict(pc *piece) {
	fp := t.failed[pc.index]
	if fp == nil {
		return
	}
	delete(t.failed, pc.index)
	for b, v := range fp.blocks {
		if sha1.Sum(pc.blocks[b].data) == v.sum {
			continue
		}
		t.banned[banKey(v.from)] = true
		if p := t.byAddr[v.from]; p != nil {
			t.ban(p, fmt.Sprintf("sent a bad block of piece %d", pc.index))
		} else {
			t.log.Warn("banning peer that sent a bad block", "peer", v.from, "piece", pc.index)
		}
	}
}

// maxStrikes is how many failed mixed pieces a peer may have contributed
// to before it is banned without proof. Exclusive re-fetching convicts
// liars long before, so honest peers stuck in a mixed piece with a liar
// do not reach it.
const maxStrikes = 8

// ban disconnects a peer and refuses its address from now on.
func (t *Torrent) ban(p *peer, reason string) {
	t.banned[banKey(p.addr)] = true
	t.closePeer(p, reason)
}

func (t *Torrent) markComplete() {
	t.complete = true
	t.doneOnce.Do(func() { close(t.done) })
	for p := range t.peers {
		t.updateInterest(p)
		if p.seed && t.pk.have.Full() {
			t.closeSeed(p)
		}
	}
	t.publishStats(time.Now())
	t.log.Info("download complete")
}

// fillRequests keeps the peer's request pipeline at its target depth.
func (t *Torrent) fillRequests(p *peer) {
	if p.peerChoking || !p.amInterested || t.complete {
		return
	}
	limit := min(p.depth, p.maxRequests)
	// Top the pipeline up in batches: one write of many requests costs
	// both sides one system call and one wake-up, where a request per
	// arriving block cost one each (8,000 writes per GiB). A pipeline
	// short of a batch still has three quarters of its depth in flight.
	if free := limit - len(p.pending); len(p.pending) > 0 && free < min(requestBatch, limit/4) {
		return
	}
	reqs := t.reqScratch[:0]
	now := time.Now()
	for len(p.pending) < limit {
		pc, b := t.nextBlock(p)
		if pc == nil {
			break
		}
		pc.blocks[b].reqs++
		k := makeKey(uint32(pc.index), uint32(b*blockSize))
		delete(p.cancelled, k)
		p.pending[k] = now
		reqs = append(reqs, outItem{msg: peerwire.Message{ID: peerwire.Request, Index: uint32(pc.index), Begin: uint32(b * blockSize), Length: uint32(pc.blockLen(b))}})
	}
	p.enqueue(reqs...)
	clear(reqs)
	t.reqScratch = reqs[:0]
}

// requestBatch is how many free slots in a peer's request pipeline make
// fillRequests top it up (fewer when the pipeline is short).
const requestBatch = 16

// nextBlock chooses the next block to request from p: first unrequested
// blocks of pieces already in flight (finish what is started), then a new
// piece by rarity, and at the very end a block already requested from
// another peer (end game).
func (t *Torrent) nextBlock(p *peer) (*piece, int) {
	now := time.Now()
	for _, pc := range t.pk.order {
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
	if t.reservePiece() {
		if i := t.pk.pickNew(p.has, p.seed); i >= 0 {
			pc := t.pk.start(i, int(t.info.PieceSize(i)))
			if t.failed[i] != nil {
				pc.exclusive, pc.owner = true, p
			}
			return pc, 0
		}
		t.inFlight--
	}
	// End game: nothing unrequested is left that this peer could fetch, so
	// duplicate requests still outstanding elsewhere; the first copy wins
	// and the others are cancelled. Asked first: outside the end game
	// this point is reached on every request while the piece buffers are
	// all in use, and the scan below would look up every pending block.
	if !t.inEndGame() {
		return nil, 0
	}
	for _, pc := range t.pk.order {
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

// cancelPieceRequests withdraws every peer request for blocks of pc, once
// another source delivered the whole piece.
func (t *Torrent) cancelPieceRequests(pc *piece) {
	for q := range t.peers {
		for b := range pc.blocks {
			k := makeKey(uint32(pc.index), uint32(b*blockSize))
			if _, ok := q.pending[k]; ok {
				delete(q.pending, k)
				q.cancelled[k] = struct{}{}
				q.send(peerwire.Message{ID: peerwire.Cancel, Index: uint32(pc.index), Begin: uint32(b * blockSize), Length: uint32(pc.blockLen(b))})
			}
		}
	}
}

// inEndGame applies the configured EndGamePolicy. Both rules need every
// missing piece in flight (no piece left to start); AllRequested also
// needs every block of them requested from someone.
func (t *Torrent) inEndGame() bool {
	if len(t.pk.active) < t.pk.left {
		return false
	}
	if t.cfg.EndGame == EndGameAllStarted {
		return true
	}
	for _, pc := range t.pk.active {
		if !pc.hashing && pc.unrequested() >= 0 {
			return false
		}
	}
	return true
}

// reservePiece takes a share of the memory budget for one more piece in
// flight, or reports false when the budget is used up (hashing is behind
// or too many pieces are in flight). dropPieceData gives it back.
func (t *Torrent) reservePiece() bool {
	if t.inFlight >= max(4, int(t.cfg.MaxBuffer/t.info.PieceLength)) {
		return false
	}
	t.inFlight++
	return true
}

func (t *Torrent) blockLenAt(k blockKey) int64 {
	ps := t.info.PieceSize(int(k.index()))
	return min(blockSize, ps-int64(k.begin()))
}
