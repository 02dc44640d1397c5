package engine

import (
	"testing"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/peerwire"
)

// queued returns the messages waiting in p's outgoing queue and empties it.
func queued(p *peer) []outItem {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	return q
}

func TestSeedRefusesDuplicates(t *testing.T) {
	tor, ps := chokerTorrent(t, true, []float64{0, 0, 0, 0})
	for _, p := range ps {
		p.reserved.SetFast()
		p.amChoking = false
	}
	a, b, c, d := ps[0], ps[1], ps[2], ps[3]
	req := func(p *peer, index uint32) peerwire.MessageID {
		t.Helper()
		if err := tor.onRequest(p, peerwire.Message{ID: peerwire.Request, Index: index, Begin: 0, Length: blockSize}); err != nil {
			t.Fatal(err)
		}
		q := queued(p)
		if len(q) != 1 {
			t.Fatalf("%d queued items after a request, want 1", len(q))
		}
		if q[0].upload {
			p.uploads.Add(-1)
			return peerwire.Piece
		}
		return q[0].msg.ID
	}
	if got := req(a, 3); got != peerwire.Piece {
		t.Fatalf("first request for piece 3 answered with %v", got)
	}
	// Piece 3 is on its way to a: b is refused, a itself is not.
	if got := req(b, 3); got != peerwire.Reject {
		t.Fatalf("duplicate request answered with %v, want reject", got)
	}
	if got := req(a, 3); got != peerwire.Piece {
		t.Fatalf("a's next block of piece 3 answered with %v", got)
	}
	// A piece a leecher holds is refused too; one only seeds hold is not.
	c.has.Set(5)
	tor.pk.peerHas(5)
	if got := req(b, 5); got != peerwire.Reject {
		t.Fatalf("request for a piece a leecher has answered with %v, want reject", got)
	}
	had := c.has.Clone()
	c.has.SetAll()
	c.seed = true
	tor.pk.peerBitfield(had, c.has)
	if got := req(b, 6); got != peerwire.Piece {
		t.Fatalf("request for a piece only a seed has answered with %v, want the block", got)
	}
	// Refusals end after dupWindow, so a slow or absent holder cannot
	// starve the requester, and then every block of the piece is served.
	b.dupRefused[3] = time.Now().Add(-dupWindow - time.Second)
	for range 3 {
		if got := req(b, 3); got != peerwire.Piece {
			t.Fatalf("request after the refusal window answered with %v, want the block", got)
		}
	}
	// A receiver that completed the piece and became a seed no longer
	// holds it for others.
	had = a.has.Clone()
	a.has.SetAll()
	a.seed = true
	tor.pk.peerBitfield(had, a.has)
	if got := req(d, 7); got != peerwire.Piece {
		t.Fatalf("request for a piece only seeds have answered with %v, want the block", got)
	}
	tor.pk.peerBitfield(a.has, bitfield.New(tor.info.NumPieces()))
	a.has = bitfield.New(tor.info.NumPieces())
	a.seed = false
	if tor.dupRefusals != 2 {
		t.Fatalf("%d duplicate refusals counted, want 2", tor.dupRefusals)
	}
	// Once every piece is out, nothing is refused: our upload has
	// nothing better to do.
	for j := range tor.info.NumPieces() {
		if tor.serving[j] == nil {
			tor.serving[j] = c
		}
	}
	tor.freshAt = time.Time{}
	if got := req(d, 3); got != peerwire.Piece {
		t.Fatalf("request with every piece out answered with %v, want the block", got)
	}
	for j, q := range tor.serving {
		if q == c {
			delete(tor.serving, j)
		}
	}
	tor.freshAt = time.Time{}
	// A piece whose receiver left is served to the next who asks.
	if got := req(a, 4); got != peerwire.Piece {
		t.Fatalf("first request for piece 4 answered with %v", got)
	}
	delete(tor.peers, a)
	tor.forgetServing(a)
	if got := req(d, 4); got != peerwire.Piece {
		t.Fatalf("request for a piece whose receiver left answered with %v, want the block", got)
	}
}
func TestRefusedPieceAskedElsewhere(t *testing.T) {
	p := &peer{}
	now := time.Now()
	if p.refusedRecently(7, now) {
		t.Fatal("piece refused before any reject")
	}
	p.noteRefused(7, now)
	if !p.refusedRecently(7, now.Add(refusedSkip/2)) {
		t.Fatal("refusal forgotten within the window")
	}
	if p.refusedRecently(7, now.Add(refusedSkip)) {
		t.Fatal("refusal kept past the window")
	}
}
