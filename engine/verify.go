package engine

import (
	"crypto/sha1"
	"fmt"
	"net/netip"
	"time"

	"github.com/sowerbt/sower/peerwire"
	"github.com/sowerbt/sower/storage"
)

// Verification, blame and bans: a complete piece is hashed and written
// off the owner goroutine (verify); the owner then counts it (onHashed),
// or blames its senders (onHashFail, convict) and bans the guilty, or
// stops the torrent when the storage cannot take it (failWrite).

type hashResult struct {
	pc  *piece
	ok  bool
	err error // storage write failed
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

func (t *Torrent) onHashed(r hashResult) {
	pc := r.pc
	i := pc.index
	// onHashFail and convict read the blocks; they go back afterwards.
	defer t.pk.recycle(pc)
	switch {
	case r.err != nil:
		t.pk.finish(pc)
		t.failWrite(i, r.err)
		return
	case !r.ok:
		t.hashFails++
		t.wasted += int64(pc.size)
		if pc.web != nil {
			t.pk.failed(pc, false)
			t.onWebSeedHashFail(pc, time.Now())
			return
		}
		t.pk.failed(pc, t.onHashFail(pc))
		return
	}
	t.pk.verified(pc)
	t.convict(pc)
	for p := range t.peers {
		// Every peer hears of the piece, even one that has it: a seed
		// counts what its leechers hold (availability, and refusing
		// duplicates), which suppressed haves would hide from it.
		p.sendLazy(peerwire.Message{ID: peerwire.Have, Index: uint32(i)})
		if p.amInterested && p.has.Has(i) {
			t.updateInterest(p)
		}
	}
	if t.pk.remaining() == 0 {
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
// strikes ban it. It reports whether the piece had several senders, so
// that its next copy is fetched from one peer.
func (t *Torrent) onHashFail(pc *piece) bool {
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
	return len(senders) > 1
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

// WriteError is what Run returns when the storage failed to write a
// piece that passed its hash check: a full disk, a read-only folder, an
// I/O error. The torrent stops, since downloading the piece again would
// only fail again. Pieces verified before stay verified; this one does not
// count.
type WriteError struct {
	Piece int   // the piece that was not written
	Err   error // the storage's error, which names the file and the cause
}

func (e *WriteError) Error() string { return e.Err.Error() }

func (e *WriteError) Unwrap() error { return e.Err }

// failWrite records the first write failure; Run returns it.
func (t *Torrent) failWrite(piece int, err error) {
	if t.failure != nil {
		return
	}
	t.failure = &WriteError{Piece: piece, Err: err}
	t.log.Error("writing piece failed; stopping the torrent", "piece", piece, "err", err)
}

// drainVerifications waits for the verifications in flight once the owner
// loop has stopped, and counts the pieces they verified and wrote, so a
// stop loses no verified piece. Nothing else happens to them: the peers
// are gone.
func (t *Torrent) drainVerifications() {
	go func() {
		t.workers.Wait()
		close(t.hashed)
	}()
	counted := false
	for r := range t.hashed {
		if r.ok && r.err == nil {
			t.pk.verified(r.pc)
			counted = true
		} else {
			t.pk.finish(r.pc)
		}
		t.pk.recycle(r.pc)
	}
	if counted {
		t.publishStats(time.Now())
	}
}
