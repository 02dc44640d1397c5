package engine

import (
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// Super-seeding (BEP 16): an initial seed hides that it is a seed and
// offers each peer one piece at a time, a piece nobody else has been
// offered, revealing the next only once the last one shows up at another
// peer. The seed then uploads each piece about once and the leechers
// spread the copies.

// superOfferGrace: if a peer holds its offered piece this long and nobody
// else has picked it up (e.g. the peer uploads to no one), it gets its
// next piece anyway, so the swarm never stalls on it.
const superOfferGrace = 20 * time.Second

func (t *Torrent) superSeeding() bool { return t.cfg.SuperSeed && t.complete }

// superOffer offers p a new piece if it has none outstanding.
func (t *Torrent) superOffer(p *peer, now time.Time) {
	if !t.superSeeding() || p.seed {
		return
	}
	if i := p.offered; i >= 0 {
		switch {
		case !p.has.Has(i):
			return // still downloading it
		case now.Sub(p.offeredAt) < superOfferGrace && t.otherLeechers(p) && !t.superIdleSlot(p):
			return // wait until it appears at another peer
		}
		t.releaseOffer(p)
	}
	best := t.pk.superPick(p.has)
	if best < 0 {
		return
	}
	p.offered, p.offeredAt = best, now
	t.pk.offer(best)
	p.send(peerwire.Message{ID: peerwire.Have, Index: uint32(best)})
	if p.amChoking {
		t.unchokeIfSlot(p)
	}
}

func (t *Torrent) releaseOffer(p *peer) {
	if p.offered >= 0 {
		t.pk.withdraw(p.offered)
		p.offered = -1
	}
}

// superIdleSlot reports whether p holds an upload slot that nobody else
// could use: no choked peer is waiting to fetch its offered piece. Making
// p wait for its piece to spread would then idle the seed's upload, so p
// gets its next piece at once; pieces nobody holds are offered first, so
// this costs no duplicate.
func (t *Torrent) superIdleSlot(p *peer) bool {
	if p.amChoking {
		return false
	}
	for q := range t.peers {
		if q.amChoking && q.peerInterested && q.offered >= 0 && !q.has.Has(q.offered) {
			return false
		}
	}
	return true
}

// otherLeechers reports whether some peer other than p could pick up a
// piece from it.
func (t *Torrent) otherLeechers(p *peer) bool {
	for q := range t.peers {
		if q != p && !q.seed {
			return true
		}
	}
	return false
}

// superSawHave handles q announcing piece i: peers that were offered i
// see it spread and get their next offer.
func (t *Torrent) superSawHave(q *peer, i int, now time.Time) {
	if !t.superSeeding() {
		return
	}
	for p := range t.peers {
		if p != q && p.offered == i {
			t.releaseOffer(p)
			t.superOffer(p, now)
		}
	}
	if q.offered == i || q.offered < 0 {
		t.superOffer(q, now)
	}
	if q.offered == i {
		// q holds its piece now: its slot is better used by a peer that
		// still has one to fetch.
		t.rechoke(now, false)
	}
}
