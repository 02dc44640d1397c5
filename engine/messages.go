package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/peerwire"
)

func (t *Torrent) handleEvent(ctx context.Context, wg *sync.WaitGroup, ev event) {
	p := ev.p
	if ev.gone {
		t.dropPeer(p, ev.err)
		return
	}
	b := ev.batch
	defer t.putBatch(b)
	if _, ok := t.peers[p]; !ok {
		t.dropBlocks(b.msgs) // late messages from a peer being closed
		return
	}
	for i, in := range b.msgs {
		if err := t.handleMessage(p, in.msg, in.block); err != nil {
			t.closePeer(p, err.Error())
			t.dropBlocks(b.msgs[i+1:])
			return
		}
	}
	t.fillRequests(p)
}

// dropBlocks returns the blocks of messages that will not be handled to
// the pool.
func (t *Torrent) dropBlocks(msgs []inMsg) {
	for _, in := range msgs {
		if in.block != nil {
			t.blocks.put(in.block)
		}
	}
}

func (t *Torrent) handleMessage(p *peer, m peerwire.Message, data []byte) error {
	switch m.ID {
	case peerwire.Choke:
		p.peerChoking = true
		if !p.fast() {
			// Without the fast extension a choke discards our requests.
			t.releaseAll(p)
		}
	case peerwire.Unchoke:
		p.peerChoking = false
	case peerwire.Interested:
		p.peerInterested = true
		t.unchokeIfSlot(p)
	case peerwire.NotInterested:
		p.peerInterested = false
		if !p.amChoking {
			t.choke(p)
			t.fillSlots()
		}
	case peerwire.Have:
		i := int(m.Index)
		if !p.has.Has(i) {
			p.has.Set(i)
			t.pk.peerHas(i)
			if p.has.Full() {
				p.seed = true
			}
			if t.pk.needs(i) && !p.amInterested {
				p.amInterested = true
				p.interestedAt = time.Now()
				p.send(peerwire.Message{ID: peerwire.Interested})
			}
			t.superSawHave(p, i, time.Now())
		}
	case peerwire.Bitfield:
		// BEP 3 sends the bitfield first, but some clients (aria2) send
		// have messages before it: the bitfield then simply replaces
		// what we knew.
		bf, err := bitfield.FromBytes(m.Payload, t.info.NumPieces())
		if err != nil {
			return err
		}
		t.setHas(p, bf)
	case peerwire.HaveAll:
		if !p.fast() {
			return errors.New("have-all without fast extension")
		}
		bf := bitfield.New(t.info.NumPieces())
		bf.SetAll()
		t.setHas(p, bf)
	case peerwire.HaveNone:
		if !p.fast() {
			return errors.New("have-none without fast extension")
		}
		t.updateInterest(p)
		t.superOffer(p, time.Now())
	case peerwire.Request:
		return t.onRequest(p, m)
	case peerwire.Cancel:
		if p.dropUpload(m.Index, m.Begin, m.Length) {
			if p.fast() {
				p.send(peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length})
			}
		}
	case peerwire.Piece:
		return t.onBlock(p, m, data)
	case peerwire.Reject:
		if !p.fast() {
			return errors.New("reject without fast extension")
		}
		k := makeKey(m.Index, m.Begin)
		if _, ok := p.pending[k]; ok {
			delete(p.pending, k)
			if !p.peerChoking {
				// A reject while unchoked is a refusal of this piece, not
				// of everything: ask others for it (see dedup.go).
				p.noteRefused(int(m.Index), time.Now())
			}
			t.pk.release(k)
		} else {
			delete(p.cancelled, k)
		}
	case peerwire.AllowedFast:
		// We do not request while choked, so the allowed-fast set is not
		// used; accepting the message is always legal (BEP 6).
	case peerwire.Extended:
		return t.onExtended(p, m)

	case peerwire.Port:
		if t.cfg.OnDHTNode != nil && !t.info.Private && m.Port != 0 {
			t.cfg.OnDHTNode(netip.AddrPortFrom(p.addr.Addr(), m.Port))
		}
	case peerwire.Suggest:
		// DHT and suggestions are handled by later layers; ignoring
		// them is always legal.
	}
	return nil
}

func (t *Torrent) setHas(p *peer, bf bitfield.Bitfield) {
	t.pk.peerBitfield(p.has, bf)
	p.has = bf
	p.seed = bf.Full()
	if p.seed && t.pk.seeding() {
		// Two seeds have nothing to say to each other.
		t.closeSeed(p)
		return
	}
	t.updateInterest(p)
	t.superOffer(p, time.Now())
}

// updateInterest tells the peer whether it has anything we want.
func (t *Torrent) updateInterest(p *peer) {
	want := !t.complete && t.pk.wantsFrom(p.has)
	if want != p.amInterested {
		p.amInterested = want
		if want {
			p.interestedAt = time.Now()
		}
		if want {
			p.send(peerwire.Message{ID: peerwire.Interested})
		} else {
			p.send(peerwire.Message{ID: peerwire.NotInterested})
		}
	}
}

func (t *Torrent) onRequest(p *peer, m peerwire.Message) error {
	// A reject waiting to be written counts like a block: a peer that
	// requests while choked and never reads would otherwise queue
	// rejects without end.
	if p.uploads.Load() >= maxPeerRequests {
		return fmt.Errorf("request flood: more than %d outstanding requests", maxPeerRequests)
	}
	if p.amChoking || !t.pk.hasPiece(int(m.Index)) || t.refuseDuplicate(p, int(m.Index), time.Now()) {
		if p.fast() {
			p.uploads.Add(1)
			p.enqueue(outItem{msg: peerwire.Message{ID: peerwire.Reject, Index: m.Index, Begin: m.Begin, Length: m.Length}, answer: true})
		}
		return nil
	}
	p.uploads.Add(1)
	p.enqueue(outItem{msg: m, upload: true})
	return nil
}

// maxPeerRequests is how many unanswered requests (blocks or rejects not
// yet written) a peer may queue at us; we advertise it as reqq in the
// extension handshake, with slack because messages cross.
const maxPeerRequests = 2048
