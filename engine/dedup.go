package engine

import "time"

// A seed's upload is what a young swarm waits for: every piece it sends
// twice is one piece less of new data. Leechers cannot see each other's
// requests, so several of them often ask the seed for the same piece at
// the same moment, or ask for a piece a neighbour finished a moment ago.
// A seed therefore refuses (BEP 6 reject) a request for a piece that is
// already in the swarm or on its way to another peer, and a leecher that
// is refused a piece asks that peer for other pieces for a while and
// takes the refused one from whoever has it. Refusals are bounded: a peer
// is refused a given piece only during dupWindow after the first refusal,
// then served, so a piece whose only other holder is slow, gone, or never
// unchokes the requester still arrives.

// dupWindow bounds how long one peer is refused one piece. A few seconds
// is many pieces' time on a fast swarm and a short wait on a slow one.
const dupWindow = 3 * time.Second

// refusedSkip is how long a refused leecher keeps off that piece at that
// peer. Shorter than dupWindow: the seed stops refusing as soon as it
// has nothing fresher to send, and asking again costs one round trip.
const refusedSkip = time.Second

// refuseDuplicate reports whether we, a seed, should reject p's request
// for piece i because another connected leecher has it or is being sent
// it. It records the piece as being sent to p when it does not refuse.
// A piece already being sent to p is never refused (its blocks belong
// together), and once p's refusal window for a piece has passed, p gets
// that piece whenever it asks.
func (t *Torrent) refuseDuplicate(p *peer, i int, now time.Time) bool {
	if !t.pk.seeding() || t.superSeeding() || !p.fast() {
		return false
	}
	if t.serving == nil {
		t.serving = make(map[int]*peer)
	}
	owner := t.serving[i]
	if owner == p {
		return false
	}
	if !t.freshPieces(now) {
		// Every piece is out already: refusing would only idle our
		// upload while the requester waits for a neighbour.
		t.serving[i] = p
		return false
	}
	if first, ok := p.dupRefused[i]; ok && now.Sub(first) >= dupWindow {
		t.serving[i] = p
		return false
	}
	elsewhere := false
	if owner != nil {
		// The owner counts while it is still fetching the piece; once it
		// has it, it is one of the holders counted below.
		_, live := t.peers[owner]
		elsewhere = live && !owner.has.Has(i)
	}
	if !elsewhere && t.pk.copies(i) > 0 {
		// Only a leecher holding the piece spares our upload; another
		// seed's copy costs the swarm the same as ours.
		seeds := 0
		for q := range t.peers {
			if q.seed {
				seeds++
			}
		}
		elsewhere = t.pk.copies(i) > seeds
	}
	if !elsewhere {
		t.serving[i] = p
		return false
	}
	if _, ok := p.dupRefused[i]; !ok {
		if p.dupRefused == nil {
			p.dupRefused = make(map[int]time.Time)
		}
		p.dupRefused[i] = now
	}
	t.dupRefusals++
	return true
}

// freshPieces reports whether some piece has neither been sent by us nor
// is held by a connected leecher: while there is one, our upload is best
// spent on it. The answer is recomputed at most every freshEvery, since
// it scans every piece.
func (t *Torrent) freshPieces(now time.Time) bool {
	if now.Sub(t.freshAt) < freshEvery {
		return t.fresh
	}
	t.freshAt = now
	seeds := 0
	for q := range t.peers {
		if q.seed {
			seeds++
		}
	}
	t.fresh = false
	for i := range t.info.NumPieces() {
		if t.pk.copies(i) <= seeds && t.serving[i] == nil {
			t.fresh = true
			break
		}
	}
	return t.fresh
}

// freshEvery bounds how stale freshPieces' answer may be.
const freshEvery = 250 * time.Millisecond

// forgetServing drops a departed peer from the pieces it was being sent.
func (t *Torrent) forgetServing(p *peer) {
	for i, q := range t.serving {
		if q == p {
			delete(t.serving, i)
		}
	}
}

// noteRefused records that p rejected our request for a block of piece i.
func (p *peer) noteRefused(i int, now time.Time) {
	if p.refused == nil {
		p.refused = make(map[int]time.Time)
	}
	p.refused[i] = now
}

// refusedRecently reports whether p rejected piece i within refusedSkip, so
// its blocks should be asked of other peers first.
func (p *peer) refusedRecently(i int, now time.Time) bool {
	at, ok := p.refused[i]
	if !ok {
		return false
	}
	if now.Sub(at) >= refusedSkip {
		delete(p.refused, i)
		return false
	}
	return true
}
