package engine

import (
	"fmt"
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// releaseAll returns all of p's outstanding requests to the picker.
func (t *Torrent) releaseAll(p *peer) {
	for k := range p.pending {
		t.pk.release(k)
	}
	clear(p.pending)
	t.pk.disown(p) // another peer may take the exclusive piece
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
	pc, res := t.pk.received(k, data, p.addr)
	switch res {
	case blockWasted:
		t.wasted += n // end-game duplicate or a piece already done
		return nil
	case blockBadSize:
		return fmt.Errorf("block %d+%d has %d bytes, requested %d", m.Index, m.Begin, n, pc.blockLen(int(m.Begin/blockSize)))
	}
	kept = true
	// Cancel copies of this block requested from other peers (end game).
	for q := range t.peers {
		if q == p {
			continue
		}
		if _, ok := q.pending[k]; ok {
			delete(q.pending, k)
			q.cancelled[k] = struct{}{}
			t.pk.release(k)
			q.send(peerwire.Message{ID: peerwire.Cancel, Index: m.Index, Begin: m.Begin, Length: uint32(n)})
		}
	}
	if res == blockComplete {
		t.verify(pc)
	}
	return nil
}

func (t *Torrent) markComplete() {
	t.complete = true
	t.doneOnce.Do(func() { close(t.done) })
	for p := range t.peers {
		t.updateInterest(p)
		if p.seed && t.pk.seeding() {
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
	// arriving block cost one each. A pipeline
	// short of a batch still has three quarters of its depth in flight.
	if free := limit - len(p.pending); len(p.pending) > 0 && free < min(requestBatch, limit/4) {
		return
	}
	reqs := t.reqScratch[:0]
	now := time.Now()
	for len(p.pending) < limit {
		pc, b := t.pk.request(p, now)
		if pc == nil {
			break
		}
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

func (t *Torrent) blockLenAt(k blockKey) int64 {
	ps := t.info.PieceSize(int(k.index()))
	return min(blockSize, ps-int64(k.begin()))
}

// Bounds of a peer's request queue depth, in blocks: 512 KiB to 32 MiB in
// flight. The peer's own limit (reqq) caps it further.
const (
	minDepth = 32
	maxDepth = 2048
)

// depthWindow is how often a peer that is sending blocks has its queue
// depth recomputed. The tick (once a second) alone left a new fast peer at
// minDepth for its first second: on busy cores a wake-up can wait a few
// milliseconds, long enough for 32 blocks to run dry and the CPUs to idle.
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
