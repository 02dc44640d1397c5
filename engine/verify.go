package engine

import "time"

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
