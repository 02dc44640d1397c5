package engine

import (
	"cmp"
	"slices"
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// Choking intervals from BEP 3 and common practice. The optimistic slot
// and a seed's turns last three rechoke rounds (Config.RechokeInterval
// scales all of them).
const (
	rechokeEvery = 10 * time.Second
	// snubAfter: a peer that sent no block for this long while we were
	// interested loses its regular slot (anti-snubbing).
	snubAfter = 60 * time.Second
)

// rechoke runs the choking algorithm. Regular slots (MaxUnchoked-1) go to
// interested peers by tit-for-tat: while downloading, those that upload to
// us fastest, never snubbed ones; while seeding, round robin, so each
// leecher gets a turn and copies spread. One more slot is the optimistic
// unchoke, rotated every 30 s to a random choked, interested peer, with
// newly connected peers three times as likely (they have nothing to offer
// yet). rotate says whether the optimistic slot moves this round.
func (t *Torrent) rechoke(now time.Time, rotate bool) {
	var cands []*peer
	for p := range t.peers {
		if p.peerInterested && !p.seed {
			cands = append(cands, p)
		}
	}
	if t.complete {
		// Peers still inside their turn first, then those that waited
		// longest since their last turn.
		// A leecher keeps a seed's slot for one round, then the round
		// robin gives it to another, so every leecher is served.
		turn := t.cfg.RechokeInterval
		inTurn := func(p *peer) bool { return !p.amChoking && now.Sub(p.unchokedAt) < turn }
		// A super-seed serves first the peers still fetching the piece
		// it offered them: a peer that has its piece is only waiting for
		// it to spread, and a slot spent on it would sit idle.
		waiting := func(p *peer) bool { return t.superSeeding() && p.offered >= 0 && !p.has.Has(p.offered) }
		slices.SortFunc(cands, func(a, b *peer) int {
			if wa, wb := waiting(a), waiting(b); wa != wb {
				if wa {
					return -1
				}
				return 1
			}
			if ia, ib := inTurn(a), inTurn(b); ia != ib {
				if ia {
					return -1
				}
				return 1
			}
			return a.lastUnchoked.Compare(b.lastUnchoked)
		})
	} else {
		// Fastest uploaders to us first; among equals (at the start
		// everyone is at zero) peers that have pieces we want, since
		// only they can reciprocate; snubbed peers last.
		slices.SortFunc(cands, func(a, b *peer) int {
			if a.snubbed != b.snubbed {
				if b.snubbed {
					return -1
				}
				return 1
			}
			if c := cmp.Compare(b.rate.rate, a.rate.rate); c != 0 {
				return c
			}
			if a.amInterested != b.amInterested {
				if a.amInterested {
					return -1
				}
				return 1
			}
			return 0
		})
	}
	regular := max(t.cfg.MaxUnchoked-1, 1)
	unchoke := make(map[*peer]bool, t.cfg.MaxUnchoked)
	var rest []*peer // interested peers that did not earn a regular slot
	for _, p := range cands {
		if len(unchoke) == regular || (!t.complete && (p.snubbed || (p.rate.rate == 0 && !p.amInterested))) {
			// Snubbed peers, and peers that neither gave us anything
			// nor have anything we want, sort last: they compete for the
			// optimistic slot and for slots nobody better wants.
			rest = append(rest, p)
			continue
		}
		unchoke[p] = true
	}
	// The optimistic slot: keep the current holder unless it is time to
	// rotate or it got a regular slot anyway.
	var opt *peer
	for p := range t.peers {
		if p.optimistic && p.peerInterested && !rotate && !unchoke[p] {
			opt = p
		}
		p.optimistic = false
	}
	if opt == nil {
		var pool []*peer
		for _, p := range cands {
			if unchoke[p] {
				continue
			}
			w := 1
			if now.Sub(p.connected) < time.Minute {
				w = 3
			}
			for range w {
				pool = append(pool, p)
			}
		}
		if len(pool) > 0 {
			opt = pool[t.rng.IntN(len(pool))]
		}
	}
	if opt != nil {
		opt.optimistic = true
		unchoke[opt] = true
	}
	// Slots nobody earned are not left idle: upload capacity unused is
	// wasted for the whole swarm.
	for _, p := range rest {
		if len(unchoke) >= t.cfg.MaxUnchoked {
			break
		}
		unchoke[p] = true
	}
	for p := range t.peers {
		switch {
		case unchoke[p] && p.amChoking:
			t.unchoke(p, now)
		case !unchoke[p] && !p.amChoking:
			t.choke(p)
		}
		if !p.amChoking {
			p.lastUnchoked = now
		}
	}
}

// unchokeIfSlot gives a newly interested peer a free slot at once rather
// than at the next rechoke, so a fresh swarm starts moving immediately.
func (t *Torrent) unchokeIfSlot(p *peer) {
	if !p.amChoking || !p.peerInterested {
		return
	}
	n := 0
	for q := range t.peers {
		if !q.amChoking {
			n++
		}
	}
	if n < t.cfg.MaxUnchoked {
		t.unchoke(p, time.Now())
	}
}

func (t *Torrent) unchoke(p *peer, now time.Time) {
	p.amChoking = false
	p.unchokedAt = now
	p.send(peerwire.Message{ID: peerwire.Unchoke})
}

// choke takes the peer's slot; with the fast extension its queued
// requests are rejected so it can ask elsewhere (BEP 6).
func (t *Torrent) choke(p *peer) {
	p.amChoking = true
	p.send(peerwire.Message{ID: peerwire.Choke})
	for _, m := range p.dropAllUploads() {
		if p.fast() {
			p.send(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
		}
	}
}

// fillSlots hands free upload slots to choked, interested peers at once
// (after a peer lost interest, left, or became a seed) instead of leaving
// them idle until the next round. Peers that can reciprocate go first.
func (t *Torrent) fillSlots() {
	n := 0
	var choked []*peer
	for p := range t.peers {
		switch {
		case !p.amChoking:
			n++
		case p.peerInterested && !p.seed:
			choked = append(choked, p)
		}
	}
	if n >= t.cfg.MaxUnchoked || len(choked) == 0 {
		return
	}
	slices.SortFunc(choked, func(a, b *peer) int {
		if a.amInterested != b.amInterested {
			if a.amInterested {
				return -1
			}
			return 1
		}
		return cmp.Compare(b.rate.rate, a.rate.rate)
	})
	now := time.Now()
	for _, p := range choked {
		if n >= t.cfg.MaxUnchoked {
			return
		}
		t.unchoke(p, now)
		n++
	}
}
