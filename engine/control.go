package engine

import (
	"errors"
	"fmt"

	"github.com/sowerbt/sower/bitfield"
)

// ErrNotRunning is returned by control calls on a torrent whose Run has
// returned or not started.
var ErrNotRunning = errors.New("engine: torrent is not running")

// do runs f on the owner goroutine and waits for it, so callers can read
// or change swarm state without locks.
func (t *Torrent) do(f func()) error {
	done := make(chan struct{})
	select {
	case t.calls <- func() { f(); close(done) }:
	case <-t.loopDone:
		return ErrNotRunning
	case <-t.notRunning():
		return ErrNotRunning
	}
	<-done
	return nil
}

// Have returns the verified pieces. For fast resume, a daemon stores this
// (pieces are on disk — handed to storage — before they are counted here).
// Before Run starts or after it ends it returns the last known set.
func (t *Torrent) Have() bitfield.Bitfield {
	var b bitfield.Bitfield
	if err := t.do(func() { b = t.pk.haveSet() }); err != nil {
		t.statsMu.Lock()
		b = t.lastHave.Clone()
		t.statsMu.Unlock()
	}
	return b
}

// SetFilePriorities changes which files are downloaded and in what order
// while the torrent runs (Skip, Normal, High per file).
func (t *Torrent) SetFilePriorities(prio []Priority) error {
	pp, err := piecePriorities(t.layout, nil, prio)
	if err != nil {
		return err
	}
	var ferr error
	err = t.do(func() {
		if len(pp) != t.info.NumPieces() {
			ferr = fmt.Errorf("engine: %d priorities for %d pieces", len(pp), t.info.NumPieces())
			return
		}
		t.pk.setPriorities(pp)
		wasComplete := t.complete
		t.complete = t.pk.remaining() == 0
		if t.complete && !wasComplete {
			t.markComplete()
		}
		for p := range t.peers {
			t.updateInterest(p)
			t.fillRequests(p)
		}
	})
	if err != nil {
		return err
	}
	return ferr
}
