package daemon

import (
	"fmt"
	"runtime/debug"
	"testing"
)

// life is where a torrent is in the daemon's lifecycle: which of its
// goroutines exist and what may happen to it next. It is one value, not a
// set of flags, so that combinations no code expects (parked and running,
// being removed and being parked) cannot be represented, and every change
// goes through Daemon.setLifeLocked, which refuses what lifeNext does not
// allow.
//
// Orthogonal facts stay outside it:
//   - torrent.complete is a fact about the data (every wanted piece
//     verified, per the last known piece set and the file priorities), not
//     a phase: a torrent is complete or not while idle, checking, running
//     or held alike, and it changes with priorities and rechecks, which
//     are not lifecycle events. Only lifeParked implies it.
//   - the record's Paused and Error are the user's wish and the last
//     failure, both persisted; together with life they give the State that
//     clients see (torrent.state): an idle torrent is stopped, queued or
//     failed according to them.
//   - a magnet's metadata fetch (magnet.go) is not a phase of its own: it
//     runs while the torrent is idle, and t.run is then the fetch (its
//     ready channel is nil).
//   - whether a run's engine exists yet: lifeChecking and lifeWaking last
//     until it does, but a run that is held, removed or parking keeps its
//     run.eng, which is what status and memory release look at.
type life uint8

const (
	// lifeIdle: no run goroutine for the engine (a metadata fetch may
	// exist). The scheduler may start it.
	lifeIdle life = iota
	// lifeChecking: a run started by the scheduler checks what the
	// checkpoint cannot vouch for; the engine does not exist yet.
	lifeChecking
	// lifeWaking: like lifeChecking, but the run was started for a peer
	// that wants a parked seed, so it must not park again before its
	// engine has served.
	lifeWaking
	// lifeRunning: the engine takes connections.
	lifeRunning
	// lifeParking: the run is ending so that the torrent parks (an idle
	// seed, or a complete one found by its check with nobody to call).
	lifeParking
	// lifeParked: an idle seed without engine, goroutine or metainfo. It
	// counts as seeding and is woken by a peer, an announce or AddPeers.
	lifeParked
	// lifeHeld: being changed while stopped (a recheck, a move): its run,
	// if any, is ending, and nothing starts it until the change is done.
	lifeHeld
	// lifeRemoving: being removed. Invisible to every client; its run, if
	// any, is ending; it never leaves this state.
	lifeRemoving
)

var lifeNames = [...]string{"idle", "checking", "waking", "running", "parking", "parked", "held", "removing"}

func (l life) String() string {
	if int(l) < len(lifeNames) {
		return lifeNames[l]
	}
	return fmt.Sprintf("life(%d)", int(l))
}

// lifeNext lists the legal transitions: lifeNext[from] has bit 1<<to set
// if from may become to.
var lifeNext = [...]uint16{
	// loadTorrents parks a verified seed; the scheduler starts a run;
	// wakeEngine unparks (to idle) and starts a waking run.
	lifeIdle: 1<<lifeParked | 1<<lifeChecking | 1<<lifeWaking | 1<<lifeHeld | 1<<lifeRemoving,
	// The check ends: the engine starts, or a complete torrent with
	// nobody to call parks at once, or the run fails or is cancelled.
	lifeChecking: 1<<lifeRunning | 1<<lifeParking | 1<<lifeIdle | 1<<lifeHeld | 1<<lifeRemoving,
	lifeWaking:   1<<lifeRunning | 1<<lifeIdle | 1<<lifeHeld | 1<<lifeRemoving,
	lifeRunning:  1<<lifeParking | 1<<lifeIdle | 1<<lifeHeld | 1<<lifeRemoving,
	// A run that was to park ends as an ordinary stop if meanwhile it
	// failed, was paused or lost pieces (finishRun).
	lifeParking: 1<<lifeParked | 1<<lifeIdle | 1<<lifeHeld | 1<<lifeRemoving,
	// Unparking (a wake, a pause, new priorities, a queue limit, a
	// change) always goes through idle, with the metainfo reloaded.
	lifeParked:   1<<lifeIdle | 1<<lifeRemoving,
	lifeHeld:     1<<lifeIdle | 1<<lifeRemoving,
	lifeRemoving: 0,
}

// legal reports whether a torrent may go from one state to the other.
func (l life) legal(to life) bool {
	return int(l) < len(lifeNext) && to < 16 && lifeNext[l]&(1<<to) != 0
}

// setLifeLocked moves t to state to; d.mu is held. An illegal transition
// is a bug in the daemon: a test binary panics on it (so the test that
// reached it fails with the stack), a production daemon logs it at error
// level with the stack and applies it anyway, since its caller goes on as
// if it had happened and a torrent in the state its code expects is the
// lesser harm.
func (d *Daemon) setLifeLocked(t *torrent, to life) {
	if !t.life.legal(to) {
		msg := fmt.Sprintf("daemon bug: illegal torrent lifecycle transition %s -> %s", t.life, to)
		if testing.Testing() {
			panic(msg)
		}
		d.log.Error(msg, "torrent", t.rec.Name, "infohash", t.rec.InfoHash, "stack", string(debug.Stack()))
	}
	t.life = to
}

// parked reports whether t is an idle seed without an engine.
func (t *torrent) parked() bool { return t.life == lifeParked }

// removing reports whether t is being removed (and so invisible).
func (t *torrent) removing() bool { return t.life == lifeRemoving }
