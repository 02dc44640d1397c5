package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/storage"
)

// State is where a torrent is in its life.
type State int

// States. A torrent without metadata waits in StateMetadata; one that
// failed (unwritable folder, full disk) sits in StateError and is retried.
const (
	StateStopped State = iota
	StateQueued
	StateChecking
	StateDownloading
	StateSeeding
	StateError
	StateMetadata
)

var stateNames = [...]string{"stopped", "queued", "checking", "downloading", "seeding", "error", "metadata"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// torrent is the daemon's view of one torrent. Every field is guarded by
// Daemon.mu. A torrent that is not running holds no goroutine and no
// buffers: only its record, metainfo and layout; a parked one not even
// its metainfo (see park.go). What only a running torrent needs is in
// run, so the thousands that are idle do not carry it (the struct is 440
// bytes, in the 448-byte size class; with those fields inline it was 568,
// in the 576 class).
type torrent struct {
	ih     [20]byte
	rec    record
	mi     *metainfo.MetaInfo // nil while waiting for metadata, and while parked
	layout *storage.Layout    // nil with mi
	sum    summary            // sizes of mi, kept while parked
	tiers  [][]string         // announce tiers (interned URLs), kept while parked
	swarm  *session.Swarm     // membership of the session while running, parked or fetching metadata
	run    *runState          // nil unless a run (or metadata fetch) goroutine exists
	// seedStart is when (Unix ns) this run started seeding, or when the
	// torrent parked (a parked torrent is seeding); 0 if not seeding.
	seedStart int64
	retryAt   int64 // Unix ns: when a torrent in the error state is tried again

	life     life // where it is in its lifecycle (lifecycle.go)
	complete bool // every wanted piece is verified (per the last known have): a fact about the data, not a phase
}

// runState is what a torrent holds while its run goroutine (or, for a
// magnet, its metadata fetch) exists; guarded by Daemon.mu.
type runState struct {
	cancel   context.CancelFunc
	exited   chan struct{}   // closed when the goroutine returns
	ready    chan struct{}   // closed once the engine takes connections, or the run ended; nil for a fetch
	eng      *engine.Torrent // nil while checking
	dir      *storage.Dir
	checked  int32 // pieces checked so far, while checking
	toCheck  int32
	lastHave []byte // bytes of the last committed checkpoint
	lastUp   int64  // this run's counters at the last checkpoint
	lastDown int64
	// idleSince is when (Unix ns) a running seed was first seen without
	// peers; 0 if it has some.
	idleSince int64
}

// eng returns t's engine, nil unless it runs one.
func (t *torrent) eng() *engine.Torrent {
	if t.run == nil {
		return nil
	}
	return t.run.eng
}

// runCounters returns the running engine's transfer counters as of the
// last checkpoint (0 when not running).
func (t *torrent) runCounters() (up, down int64) {
	if t.run == nil {
		return 0, 0
	}
	return t.run.lastUp, t.run.lastDown
}

func (t *torrent) setMeta(mi *metainfo.MetaInfo) error {
	layout, err := storage.NewLayout(engine.Files(&mi.Info), mi.Info.PieceLength)
	if err != nil {
		return fmt.Errorf("torrent layout: %w", err)
	}
	if p := t.rec.Priorities; p != nil && len(p) != layout.NumFiles() {
		t.rec.Priorities = nil
	}
	t.mi, t.layout = mi, layout
	t.sum.total, t.sum.pieceLen = mi.Info.TotalLength(), mi.Info.PieceLength
	t.sum.pieces, t.sum.private = int32(layout.NumPieces()), mi.Info.Private
	if t.tiers == nil {
		t.tiers = internTiers(mi.Tiers())
	}
	if t.rec.Name == "" || t.rec.Magnet != "" {
		t.rec.Name = mi.Info.Name
	}
	t.rec.Magnet = ""
	return nil
}

// initState computes complete from the stored checkpoint.
func (t *torrent) initState() {
	if t.mi == nil || !t.rec.HaveValid {
		return
	}
	have, err := bitfield.FromBytes(t.rec.Have, t.layout.NumPieces())
	if err != nil {
		t.rec.HaveValid, t.rec.Have = false, nil
		return
	}
	t.complete = t.leftPieces(have) == 0
}

// priorities returns the per-file priorities for the engine.
func (t *torrent) priorities() []engine.Priority {
	return priorities(t.rec.Priorities, t.layout.NumFiles())
}

// priorities expands stored priorities (nil: all Normal) for n files.
func priorities(stored []int8, n int) []engine.Priority {
	p := make([]engine.Priority, n)
	for i := range p {
		p[i] = engine.Normal
		if len(stored) == n {
			p[i] = engine.Priority(stored[i])
		}
	}
	return p
}

// wantedPieces marks the pieces touching a file that is not skipped.
func (t *torrent) wantedPieces() bitfield.Bitfield {
	w := bitfield.New(t.layout.NumPieces())
	prio := t.priorities()
	for i := range t.layout.NumFiles() {
		f := t.layout.File(i)
		if f.Padding || f.Length == 0 || prio[i] == engine.Skip {
			continue
		}
		first, end := t.layout.FilePieces(i)
		for p := first; p < end; p++ {
			w.Set(p)
		}
	}
	return w
}

// sizes returns the bytes of the wanted pieces, and of those in have.
func (t *torrent) sizes(have bitfield.Bitfield) (wanted, completed int64) {
	w := t.wantedPieces()
	for i := range w.Len() {
		if !w.Has(i) {
			continue
		}
		size := t.layout.PieceSize(i)
		wanted += size
		if have.Has(i) {
			completed += size
		}
	}
	return wanted, completed
}

func (t *torrent) leftPieces(have bitfield.Bitfield) int {
	w := t.wantedPieces()
	n := 0
	for i := range w.Len() {
		if w.Has(i) && !have.Has(i) {
			n++
		}
	}
	return n
}

// state derives the torrent's State; d.mu is held.
func (t *torrent) state() State {
	switch {
	case t.life == lifeParked:
		return StateSeeding
	case t.rec.Error != "" && t.run == nil:
		return StateError
	case t.mi == nil:
		return StateMetadata
	case t.checkingData():
		return StateChecking
	case t.run != nil && t.run.eng != nil && t.complete:
		return StateSeeding
	case t.run != nil:
		return StateDownloading
	case t.rec.Paused:
		return StateStopped
	default:
		return StateQueued
	}
}

// checkingData reports whether t has a run (not a metadata fetch) whose
// engine does not exist yet: it is checking its data, or has just found
// it complete and is about to park. This holds through a hold or a
// removal that began meanwhile, which a lifecycle state cannot say.
func (t *torrent) checkingData() bool {
	return t.run != nil && t.run.ready != nil && t.run.eng == nil
}

func (t *torrent) seedLimitReached(s *Settings, now time.Time) bool {
	ratioLimit := t.rec.RatioLimit
	if ratioLimit == 0 {
		ratioLimit = s.SeedRatioLimit
	}
	if ratioLimit > 0 {
		runUp, runDown := t.runCounters()
		up, down := t.rec.Uploaded+runUp, t.rec.Downloaded+runDown
		base := down
		if base == 0 {
			base = t.sum.total
		}
		if base > 0 && float64(up)/float64(base) >= ratioLimit {
			return true
		}
	}
	minutes := t.rec.SeedMinutes
	if minutes == 0 {
		minutes = s.SeedTimeMinutes
	}
	return minutes > 0 && t.seedSecs(now) >= int64(minutes)*60
}

func (t *torrent) seedSecs(now time.Time) int64 {
	s := t.rec.SeedSecs
	if t.seedStart != 0 {
		s += max(0, (now.UnixNano()-t.seedStart)/int64(time.Second))
	}
	return s
}

// startLocked launches t's run goroutine, which starts in phase
// (lifeChecking, or lifeWaking for a run started for a peer); d.mu is
// held.
func (d *Daemon) startLocked(t *torrent, phase life) {
	ctx, cancel := context.WithCancel(d.runCtx)
	r := &runState{cancel: cancel, exited: make(chan struct{}), ready: make(chan struct{})}
	exited := r.exited
	isReady := sync.OnceFunc(func() { close(r.ready) })
	t.run = r
	d.setLifeLocked(t, phase)
	d.announceStartLocked(t)
	rec := t.rec
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(exited)
		defer isReady()
		err := d.runTorrent(ctx, t, r, rec, isReady)
		d.finishRun(t, err)
		cancel() // detach ctx from the daemon's: a run that ends alone would leak it
	}()
}

// finishRun records how a run ended.
func (d *Daemon) finishRun(t *torrent, err error) {
	d.mu.Lock()
	t.run = nil // the run goroutine closes its own channels
	if err != nil && !errors.Is(err, context.Canceled) {
		t.rec.Error = err.Error()
		t.retryAt = time.Now().Add(d.cfg.RetryAfter).UnixNano()
		d.log.Warn("torrent stopped with an error", "torrent", t.rec.Name, "err", err)
	}
	switch {
	case t.life == lifeParking && t.rec.Error == "" && t.complete && !t.rec.Paused && d.runCtx != nil:
		d.parkLocked(t)
	case t.life == lifeHeld || t.life == lifeRemoving:
		// Whoever holds or removes it decides what comes next.
		d.announceStopLocked(t)
	default:
		d.setLifeLocked(t, lifeIdle)
		d.announceStopLocked(t)
	}
	if t.life != lifeRemoving {
		d.saveLocked(t)
	}
	d.mu.Unlock()
	d.kickScheduler()
}

// checkWritable fails early, with the folder's name, when new files cannot
// be created in dir.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("download folder %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".sower-probe-*")
	if err != nil {
		return fmt.Errorf("download folder %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// runTorrent checks (only what the checkpoint cannot vouch for), then runs
// the engine until ctx ends or storage fails, and writes a final exact
// checkpoint.
func (d *Daemon) runTorrent(ctx context.Context, t *torrent, r *runState, rec record, isReady func()) (err error) {
	d.mu.Lock()
	mi, swarm := t.mi, t.swarm
	prio := t.priorities()
	peers := d.settings.PeersPerTorrent
	upLim, downLim := d.torrentLimiters(t)
	extra := append([]netip.AddrPort(nil), d.extra[t.ih]...)
	d.mu.Unlock()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var (
		st  *session.Torrent
		eng *engine.Torrent
	)

	if err := checkWritable(rec.DownloadDir); err != nil {
		return err
	}
	o := session.TorrentOptions{
		Dir:            rec.DownloadDir,
		FilePriorities: prio,
		SuperSeed:      rec.SuperSeed,
		MaxPeers:       peers,
		Peers:          extra,
		Storage:        storage.Options{EarlyWriteback: true},
		Swarm:          swarm,
		OnCheck: func(done, total int) {
			d.mu.Lock()
			r.checked, r.toCheck = int32(done), int32(total)
			d.mu.Unlock()
		},
		OnComplete:    func() { d.onComplete(t) },
		UploadLimit:   upLim,
		DownloadLimit: downLim,
		WrapStorage:   d.wrapStorage,
		OnStart: func(e *engine.Torrent) {
			eng = e
			d.mu.Lock()
			r.eng, r.dir = e, st.Storage()
			if t.life == lifeChecking || t.life == lifeWaking {
				d.setLifeLocked(t, lifeRunning)
			}
			isReady()
			if t.complete {
				t.seedStart = time.Now().UnixNano()
			}
			d.mu.Unlock()
			// The check may have turned a queued download into a seed,
			// which frees a download slot.
			d.kickScheduler()
		},
	}
	if rec.HaveValid {
		if have, err := bitfield.FromBytes(rec.Have, t.layout.NumPieces()); err == nil {
			o.Have, o.HaveExact = have, rec.Clean
		}
	}
	st, err = d.sess.Open(ctx, mi, o)
	if err != nil {
		return err
	}
	defer st.Close()
	have := st.Have()
	// From here on pieces may be written that the checkpoint does not
	// cover: mark it inexact, durably, before the engine starts.
	d.mu.Lock()
	t.complete = t.leftPieces(have) == 0
	if t.complete && t.life != lifeWaking && d.cfg.ParkAfter >= 0 && len(d.extra[t.ih]) == 0 {
		// A seed with nobody to call needs no engine until a peer
		// comes: park at once (finishRun does), with an exact checkpoint.
		// One being held or removed meanwhile just ends.
		t.rec.Have, t.rec.HaveValid, t.rec.Clean = have.Bytes(), true, true
		if t.life == lifeChecking {
			d.setLifeLocked(t, lifeParking)
		}
		d.mu.Unlock()
		return nil
	}
	t.rec.Have, t.rec.HaveValid, t.rec.Clean = have.Bytes(), true, false
	r.lastHave = bytes.Clone(have.Bytes())
	d.saveLocked(t)
	d.mu.Unlock()

	runErr := st.Run(runCtx)
	stopRun()
	if eng == nil {
		return runErr // the engine never started
	}
	d.finalCheckpoint(t, eng, st.Storage())
	var werr *engine.WriteError
	switch {
	case errors.As(runErr, &werr):
		// A full disk or an unwritable folder: the error state, retried
		// after RetryAfter.
		return fmt.Errorf("writing data in %s: %w", rec.DownloadDir, runErr)
	case ctx.Err() != nil:
		return nil
	case runErr != nil:
		return fmt.Errorf("engine stopped: %w", runErr)
	}
	return errors.New("engine stopped unexpectedly")
}

// onComplete records that every wanted piece is verified.
func (d *Daemon) onComplete(t *torrent) {
	d.mu.Lock()
	t.complete = true
	t.seedStart = time.Now().UnixNano()
	if t.rec.DoneAt.IsZero() {
		t.rec.DoneAt = time.Now()
	}
	d.mu.Unlock()
	d.checkpointOne(t)
	d.kickScheduler()
}

// torrentLimiters picks the limiters for t; d.mu is held. A torrent with
// its own limit gets its own bucket, capped by the global limit's rate
// (the engine takes one limiter per direction, so a per-torrent limit
// does not also draw from the global bucket).
func (d *Daemon) torrentLimiters(t *torrent) (up, down *rate.Limiter) {
	down, up = d.down, d.up
	gDown, gUp := d.effectiveLimits(time.Now())
	if l := t.rec.DownloadLimit; l > 0 {
		if gDown > 0 {
			l = min(l, gDown)
		}
		down = engine.NewLimiter(l)
	}
	if l := t.rec.UploadLimit; l > 0 {
		if gUp > 0 {
			l = min(l, gUp)
		}
		up = engine.NewLimiter(l)
	}
	return up, down
}

// finalCheckpoint records the exact verified set after Run returned (its
// storage is synced) and folds this run's counters into the record.
func (d *Daemon) finalCheckpoint(t *torrent, eng *engine.Torrent, dir *storage.Dir) {
	have := eng.Have()
	st := eng.Stats()
	syncErr := dir.Sync()
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if syncErr == nil {
		t.rec.Have, t.rec.Clean = have.Bytes(), true
		t.complete = t.leftPieces(have) == 0
	} else {
		d.log.Warn("sync at stop failed; keeping the last checkpoint", "torrent", t.rec.Name, "err", syncErr)
	}
	t.rec.Uploaded += st.Uploaded
	t.rec.Downloaded += st.Downloaded
	t.rec.Wasted += st.Wasted
	t.rec.SeedSecs = t.seedSecs(now)
	t.seedStart = 0
	// finishRun saves the record (and drops t.run with this run's counters).
}

// checkpoint makes the verified pieces of every running torrent durable.
func (d *Daemon) checkpoint() {
	d.mu.Lock()
	var running []*torrent
	for _, t := range d.torrents {
		if t.eng() != nil {
			running = append(running, t)
		}
	}
	d.mu.Unlock()
	var recs []*record
	for _, t := range running {
		if r := d.checkpointRecord(t); r != nil {
			recs = append(recs, r)
		}
	}
	if len(recs) > 0 {
		if err := d.db.put(nil, recs...); err != nil {
			d.log.Error("checkpoint", "err", err)
		}
	}
}

func (d *Daemon) checkpointOne(t *torrent) {
	if r := d.checkpointRecord(t); r != nil {
		if err := d.db.put(nil, r); err != nil {
			d.log.Error("checkpoint", "torrent", r.Name, "err", err)
		}
	}
}

// checkpointRecord syncs t's files and returns the record to commit, or
// nil if nothing changed. Counters of the current run are included in the
// stored copy only, so a crash loses at most one interval of them.
func (d *Daemon) checkpointRecord(t *torrent) *record {
	d.mu.Lock()
	run := t.run
	var eng *engine.Torrent
	var dir *storage.Dir
	if run != nil {
		eng, dir = run.eng, run.dir
	}
	d.mu.Unlock()
	if eng == nil {
		return nil
	}
	have := eng.Have()
	st := eng.Stats()
	d.mu.Lock()
	run.lastUp, run.lastDown = st.Uploaded, st.Downloaded
	changed := !bytes.Equal(have.Bytes(), run.lastHave)
	d.mu.Unlock()
	if changed {
		// Every piece in have was handed to storage; after this sync it
		// is durable, so the checkpoint may vouch for it.
		if err := dir.Sync(); err != nil {
			d.log.Warn("sync for checkpoint failed", "torrent", t.rec.Name, "err", err)
			return nil
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.run != run {
		return nil // the run ended meanwhile; its final checkpoint wins
	}
	r := t.rec
	if changed {
		t.rec.Have = have.Bytes()
		run.lastHave = bytes.Clone(have.Bytes())
		r.Have = t.rec.Have
		// Priorities may have changed since the run started.
		if complete := t.leftPieces(have) == 0; complete != t.complete {
			t.complete = complete
			if complete && t.seedStart == 0 {
				t.seedStart = time.Now().UnixNano()
			}
		}
	}
	r.Uploaded += st.Uploaded
	r.Downloaded += st.Downloaded
	r.Wasted += st.Wasted
	r.SeedSecs = t.seedSecs(time.Now())
	return &r
}

func bitfieldFrom(b []byte, n int) (bitfield.Bitfield, error) { return bitfield.FromBytes(b, n) }
