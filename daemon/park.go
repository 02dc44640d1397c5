package daemon

import (
	"fmt"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/storage"
)

// Parking. A seed with no peer connection for Config.ParkAfter is parked:
// its engine stops (without telling the trackers: the daemon announces,
// see announce.go) and its metainfo and layout are dropped, so what is
// left is the torrent struct, with no goroutine and no buffer. It still
// counts as seeding: the listener wakes it when a peer's handshake names
// its info-hash, and so does an announce that finds leechers, or AddPeers.
// Waking reloads the metainfo from the state database and trusts the
// exact checkpoint written when it parked: nothing is hashed.

// DefaultParkAfter is how long a seed stays idle (no peer connected)
// before it is parked. Long enough that a peer which disconnects and
// comes back at once does not restart the engine; short enough that a
// daemon seeding thousands of torrents holds engines only for the few
// that have peers.
const DefaultParkAfter = 30 * time.Second

// wakeTimeout bounds how long a wake waits for the engine to take
// connections (a parked torrent starts without hashing, in milliseconds).
const wakeTimeout = 10 * time.Second

// summary is what status needs of a torrent's metainfo, kept while the
// metainfo itself is dropped.
type summary struct {
	total, pieceLen   int64
	wanted, completed int64 // of the wanted pieces, as of parking
	pieces            int32
	private           bool
}

// parkIdle parks the running seeds that have had no peer for ParkAfter.
func (d *Daemon) parkIdle(now time.Time) {
	if d.cfg.ParkAfter < 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runCtx == nil {
		return
	}
	for _, t := range d.torrents {
		r := t.run
		if r == nil || r.eng == nil || !t.complete || t.life != lifeRunning {
			continue
		}
		if r.eng.LastStats().Peers > 0 {
			r.idleSince = 0
			continue
		}
		if r.idleSince == 0 {
			r.idleSince = now.UnixNano()
			continue
		}
		if now.UnixNano()-r.idleSince >= int64(d.cfg.ParkAfter) {
			d.setLifeLocked(t, lifeParking)
			t.run.cancel()
		}
	}
}

// releaseMemory hands memory the daemon no longer uses back to the
// operating system at once, rather than keeping it until the garbage
// collector's next cycle and the scavenger's slow pace (by then a daemon
// that went idle has held it for minutes):
//   - after a wave of parking: when a thousand engines stop, that is most
//     of the process;
//   - when no torrent runs an engine or checks (so the heap is small and a
//     full collection takes a millisecond or two) and at least
//     releaseGarbage bytes were allocated since the last release: the
//     garbage of RPC replies, announces and adds, and the buffers pooled
//     for them;
//   - the state database's mapped pages that transactions brought in
//     (store.release).
//
// It runs at most every releaseEvery.
func (d *Daemon) releaseMemory(now time.Time) {
	sample := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(sample)
	var allocs uint64
	if sample[0].Value.Kind() == rtmetrics.KindUint64 {
		allocs = sample[0].Value.Uint64()
	}
	d.mu.Lock()
	if now.Sub(d.lastRelease) < releaseEvery {
		d.mu.Unlock()
		return
	}
	free := d.parkedSinceRelease > 0
	if !free && allocs-d.allocsAtRelease >= releaseGarbage {
		free = true
		for _, t := range d.torrents {
			if t.eng() != nil || t.checkingData() {
				free = false
				break
			}
		}
	}
	if !free && !d.db.used.Load() {
		d.mu.Unlock()
		return
	}
	d.lastRelease = now
	if free {
		d.parkedSinceRelease, d.allocsAtRelease = 0, allocs
	}
	d.mu.Unlock()
	if free {
		// Two collections: the first moves what sync.Pools hold (a pooled
		// gzip writer alone is over 600 KiB) to their victim caches, the
		// second frees it, before the pages go back.
		runtime.GC()
		debug.FreeOSMemory()
	}
	if err := d.db.release(); err != nil {
		d.log.Warn("release memory", "err", err)
	}
}

const (
	// releaseEvery paces releaseMemory.
	releaseEvery = 10 * time.Second
	// releaseGarbage is how much an idle daemon allocates before
	// releaseMemory collects and returns it: about a thousand-torrent
	// list reply or two.
	releaseGarbage = 1 << 20
)

// parkLocked drops a stopped seed's metainfo and marks it parked; d.mu is
// held. Its run, if any, has ended with an exact checkpoint.
func (d *Daemon) parkLocked(t *torrent) {
	if t.layout != nil {
		n := t.layout.NumPieces()
		have, err := bitfield.FromBytes(t.rec.Have, n)
		if err != nil {
			have = bitfield.New(n)
		}
		t.sum.wanted, t.sum.completed = t.sizes(have)
	}
	t.mi, t.layout = nil, nil
	d.setLifeLocked(t, lifeParked)
	d.parkedSinceRelease++
	t.seedStart = time.Now().UnixNano() // a parked torrent is seeding
}

// unparkLocked makes a parked torrent an ordinary stopped one again,
// with its metainfo reloaded; d.mu is held. The caller starts it or not.
func (d *Daemon) unparkLocked(t *torrent) error {
	if t.life != lifeParked {
		return nil
	}
	t.rec.SeedSecs = t.seedSecs(time.Now())
	t.seedStart = 0
	d.setLifeLocked(t, lifeIdle)
	mi, err := d.loadMeta(t)
	if err == nil {
		err = t.setMeta(mi)
	}
	if err != nil {
		t.rec.Error = fmt.Sprintf("stored metainfo unreadable: %v", err)
		t.retryAt = time.Now().Add(d.cfg.RetryAfter).UnixNano()
		return fmt.Errorf("torrent %s: %w", t.rec.Name, err)
	}
	return nil
}

// loadMeta reads a torrent's metainfo from the state database.
func (d *Daemon) loadMeta(t *torrent) (*metainfo.MetaInfo, error) {
	raw, err := d.db.getMeta(t.rec.InfoHash)
	if err != nil {
		return nil, err
	}
	mi, err := metainfo.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("stored metainfo: %w", err)
	}
	return mi, nil
}

// metaFor returns t's metainfo and layout, read from the state database
// (and not kept) if t is parked; nil for a magnet without metadata. d.mu
// is held.
func (d *Daemon) metaFor(t *torrent) (*metainfo.MetaInfo, *storage.Layout, error) {
	if t.life != lifeParked {
		return t.mi, t.layout, nil
	}
	return d.storedMeta(t)
}

// storedMeta reads t's metainfo from the state database and builds its
// layout, neither of which is kept.
func (d *Daemon) storedMeta(t *torrent) (*metainfo.MetaInfo, *storage.Layout, error) {
	mi, err := d.loadMeta(t)
	if err != nil {
		return nil, nil, err
	}
	layout, err := storage.NewLayout(engine.Files(&mi.Info), mi.Info.PieceLength)
	if err != nil {
		return nil, nil, fmt.Errorf("torrent layout: %w", err)
	}
	return mi, layout, nil
}

// wakeEngine starts a parked torrent and returns its engine once it takes
// connections; for a torrent already running it waits for its engine.
// It returns nil for a torrent that is not running or parked (stopped,
// queued, failed, unknown) or if the engine is not ready in time.
func (d *Daemon) wakeEngine(ih [20]byte) *engine.Torrent {
	deadline := time.Now().Add(wakeTimeout)
	d.mu.Lock()
	for {
		t := d.torrents[ih]
		if t == nil || t.life == lifeRemoving || d.runCtx == nil || d.runCtx.Err() != nil {
			d.mu.Unlock()
			return nil
		}
		var wait <-chan struct{}
		switch {
		case t.life == lifeParked:
			if err := d.unparkLocked(t); err != nil {
				d.log.Warn("wake parked torrent", "err", err)
				d.mu.Unlock()
				return nil
			}
			d.log.Debug("waking parked torrent", "torrent", t.rec.Name)
			d.startLocked(t, lifeWaking)
			wait = t.run.ready
		case t.run == nil:
			d.mu.Unlock()
			return nil
		case t.life == lifeParking:
			wait = t.run.exited // then it is parked, and woken above
		case t.eng() != nil:
			eng := t.eng()
			d.mu.Unlock()
			return eng
		default:
			wait = t.run.ready // starting
		}
		d.mu.Unlock()
		select {
		case <-wait:
		case <-time.After(time.Until(deadline)):
			return nil
		}
		d.mu.Lock()
		if time.Now().After(deadline) {
			d.mu.Unlock()
			return nil
		}
	}
}
