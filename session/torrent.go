package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/time/rate"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/storage"
	"github.com/sowerbt/sower/tracker"
)

// TorrentOptions describe how a torrent is downloaded or seeded.
type TorrentOptions struct {
	// Dir is the download folder: it holds the torrent's file
	// (single-file) or its top folder (multi-file). It is created if
	// missing.
	Dir string
	// Wanted selects files to download; nil wants all.
	// FilePriorities, when set, overrides it (see engine.Config).
	Wanted         []bool
	FilePriorities []engine.Priority
	// Sequential fetches pieces in order, for streaming.
	Sequential bool
	// SuperSeed enables BEP 16 super-seeding while we are a seed.
	SuperSeed bool
	// UploadLimit and DownloadLimit are the torrent's own limits; nil
	// means the session's.
	UploadLimit, DownloadLimit *rate.Limiter
	// MaxPeers bounds the torrent's connections; 0 means the session's
	// MaxConnsPerTorrent.
	MaxPeers int
	// Peers are addresses to dial that have the torrent.
	Peers []netip.AddrPort
	// Storage tunes the files (Wanted is set from Wanted or
	// FilePriorities).
	Storage storage.Options
	// SyncOnStop makes Close wait until the data is durable (fsync).
	SyncOnStop bool
	// Have is the verified set of a checkpoint, if any. With HaveExact,
	// nothing was written since it was taken and nothing is hashed;
	// otherwise the other pieces are checked. Without Have every piece
	// is checked.
	Have      bitfield.Bitfield
	HaveExact bool
	// OnCheck, if set, is told how many pieces of how many the check of
	// the existing data has hashed so far.
	OnCheck func(done, total int)
	// WrapStorage, if set, wraps the files' storage before the engine uses
	// it (a daemon watches write errors through it).
	WrapStorage func(storage.Storage) storage.Storage
	// Swarm, if set, is the torrent's existing membership of the session,
	// kept when the run ends; otherwise the run joins one and leaves it.
	Swarm *Swarm
	// OnStart, if set, is called with the engine once it takes
	// connections, before it runs.
	OnStart func(*engine.Torrent)
	// OnComplete, if set, is called when this run finishes the download
	// (not for data complete at start).
	OnComplete func()
}

// Torrent is one torrent being downloaded or seeded: its files, the
// engine over them and its swarm. Open it with Session.Open (files
// checked, nothing running), then Run it on a goroutine of yours or Start
// it on one of its own; Session.AddTorrent opens and starts at once.
type Torrent struct {
	s    *Session
	mi   *metainfo.MetaInfo
	opts TorrentOptions

	layout *storage.Layout
	dir    *storage.Dir
	have   bitfield.Bitfield // verified when opened

	mu     sync.Mutex // guards eng, swarm, cancel, closed
	eng    *engine.Torrent
	swarm  *Swarm
	cancel context.CancelFunc // set by Start
	closed bool

	wg      sync.WaitGroup // Start's goroutine
	stopped chan struct{}  // closed when the engine's Run returned
	runErr  error          // Run's result, set before stopped closes
}

// AddTorrent opens mi's files in o.Dir, checks the data already there and
// starts downloading and seeding it. ctx bounds the check only.
func (s *Session) AddTorrent(ctx context.Context, mi *metainfo.MetaInfo, o TorrentOptions) (*Torrent, error) {
	t, err := s.Open(ctx, mi, o)
	if err != nil {
		return nil, err
	}
	if err := t.Start(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Open opens mi's files in o.Dir and finds which pieces are already
// verified there (see TorrentOptions.Have), without starting the
// transfer. ctx bounds the check.
func (s *Session) Open(ctx context.Context, mi *metainfo.MetaInfo, o TorrentOptions) (*Torrent, error) {
	layout, err := storage.NewLayout(engine.Files(&mi.Info), mi.Info.PieceLength)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("download folder: %w", err)
	}
	sopts := o.Storage
	sopts.Wanted = wantedFiles(o)
	dir, err := storage.OpenDir(o.Dir, layout, sopts)
	if err != nil {
		return nil, err
	}
	have, err := check(ctx, dir, layout, mi, o)
	if err != nil {
		dir.Close()
		return nil, err
	}
	return &Torrent{s: s, mi: mi, opts: o, layout: layout, dir: dir, have: have, stopped: make(chan struct{})}, nil
}

func wantedFiles(o TorrentOptions) []bool {
	if o.FilePriorities == nil {
		return o.Wanted
	}
	w := make([]bool, len(o.FilePriorities))
	for i, p := range o.FilePriorities {
		w[i] = p != engine.Skip
	}
	return w
}

// check finds the verified pieces on disk, hashing only what a checkpoint
// does not vouch for.
func check(ctx context.Context, dir *storage.Dir, layout *storage.Layout, mi *metainfo.MetaInfo, o TorrentOptions) (bitfield.Bitfield, error) {
	n := layout.NumPieces()
	switch {
	case o.Have.Len() == n && o.HaveExact:
		return o.Have.Clone(), nil
	case o.Have.Len() == n:
		if o.OnCheck != nil {
			o.OnCheck(0, n-o.Have.Count())
		}
		have, err := storage.RecheckPieces(ctx, dir, layout, mi.Info.Pieces, o.Have, 0)
		if err != nil {
			return bitfield.Bitfield{}, fmt.Errorf("checking pieces written since the last checkpoint: %w", err)
		}
		return have, nil
	}
	have, err := storage.Recheck(ctx, dir, layout, mi.Info.Pieces, 0, func(c int) {
		if o.OnCheck != nil {
			o.OnCheck(c, n)
		}
	})
	if err != nil {
		return bitfield.Bitfield{}, fmt.Errorf("checking existing data: %w", err)
	}
	return have, nil
}

// Have returns the pieces verified when the torrent was opened.
func (t *Torrent) Have() bitfield.Bitfield { return t.have }

// Layout is the torrent's piece layout over its files.
func (t *Torrent) Layout() *storage.Layout { return t.layout }

// MetaInfo is the torrent.
func (t *Torrent) MetaInfo() *metainfo.MetaInfo { return t.mi }

// Start runs the torrent (see Run) on a goroutine of its own until Close,
// or until it stops with a fatal error (see Stopped and Err).
func (t *Torrent) Start() error {
	ctx, cancel := context.WithCancel(t.s.ctx)
	t.mu.Lock()
	if t.closed || t.cancel != nil {
		t.mu.Unlock()
		cancel()
		return errors.New("session: torrent already started or closed")
	}
	t.cancel = cancel
	t.mu.Unlock()
	started := make(chan error, 1)
	t.wg.Go(func() {
		t.runErr = t.run(ctx, started)
		close(t.stopped)
	})
	return <-started
}

// Run creates the engine over the opened files, attaches it to the
// torrent's swarm (joining one if TorrentOptions.Swarm is nil) and runs it
// on the calling goroutine until ctx ends or the engine stops on a fatal
// error (a full or read-only disk), which it returns. The files stay
// open: Close closes them.
func (t *Torrent) Run(ctx context.Context) error {
	return t.run(ctx, nil)
}

func (t *Torrent) run(ctx context.Context, started chan<- error) error {
	s, mi, o := t.s, t.mi, t.opts
	fail := func(err error) error {
		if started != nil {
			started <- err
		}
		return err
	}
	var st storage.Storage = t.dir
	if o.WrapStorage != nil {
		st = o.WrapStorage(st)
	}
	cfg := s.EngineConfig(mi.Info.Private)
	cfg.InfoBytes = mi.InfoBytes
	cfg.Have = t.have
	cfg.WantedFiles = o.Wanted
	cfg.FilePriorities = o.FilePriorities
	cfg.Sequential = o.Sequential
	cfg.WebSeeds = mi.WebSeeds()
	cfg.HTTPSeeds = mi.HTTPSeeds
	cfg.SuperSeed = o.SuperSeed
	cfg.SyncOnStop = o.SyncOnStop
	if o.UploadLimit != nil {
		cfg.UploadLimit = o.UploadLimit
	}
	if o.DownloadLimit != nil {
		cfg.DownloadLimit = o.DownloadLimit
	}
	if o.MaxPeers > 0 {
		cfg.MaxPeers = o.MaxPeers
	}
	eng, err := engine.New(&mi.Info, mi.InfoHash, t.layout, st, cfg)
	if err != nil {
		return fail(err)
	}
	w := o.Swarm
	own := false
	if w == nil {
		w, err = s.Join(mi.InfoHash, SwarmOptions{Trackers: mi.Tiers(), Private: mi.Info.Private, Stats: func() tracker.Stats {
			es := eng.LastStats()
			return tracker.Stats{Uploaded: es.Uploaded, Downloaded: es.Downloaded, Left: es.Left}
		}})
		if err != nil {
			return fail(err)
		}
		own = true
	}
	if mi.Info.Private {
		w.markPrivate() // a magnet's swarm learns it with the metadata
	}
	t.mu.Lock()
	t.eng, t.swarm = eng, w
	t.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.Attach(ctx, eng)
	defer func() {
		if own {
			w.Leave()
		} else {
			w.Detach()
		}
	}()
	w.AddPeers(o.Peers...)
	if o.OnStart != nil {
		o.OnStart(eng)
	}
	if started != nil {
		started <- nil
	}
	// BEP 3: "completed" only when this process finished the download,
	// not for data that was complete at start. A seed needs no watcher.
	var watcher sync.WaitGroup
	if eng.LastStats().Left > 0 {
		watcher.Go(func() {
			select {
			case <-eng.Done():
			case <-ctx.Done():
				// Stopped right after completing (sower get exits then):
				// the completion still counts.
				select {
				case <-eng.Done():
				default:
					return
				}
			}
			w.Completed()
			if o.OnComplete != nil {
				o.OnComplete()
			}
		})
	}
	err = eng.Run(ctx)
	cancel()
	watcher.Wait()
	return err
}

// Engine is the running engine, nil before Run.
func (t *Torrent) Engine() *engine.Torrent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng
}

// Swarm is the torrent's membership of the session, nil before Run.
func (t *Torrent) Swarm() *Swarm {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.swarm
}

// Storage is the torrent's files.
func (t *Torrent) Storage() *storage.Dir { return t.dir }

// Done is closed once every wanted piece is verified; Start first.
func (t *Torrent) Done() <-chan struct{} { return t.Engine().Done() }

// Stopped is closed when the engine started by Start stops: after Close,
// or on its own with a fatal error (see Err).
func (t *Torrent) Stopped() <-chan struct{} { return t.stopped }

// Err is the engine's fatal error once Stopped is closed, nil otherwise.
func (t *Torrent) Err() error {
	select {
	case <-t.stopped:
		return t.runErr
	default:
		return nil
	}
}

// Stats is a fresh snapshot of the torrent's transfer; Start first.
func (t *Torrent) Stats() engine.Stats { return t.Engine().Stats() }

// Close stops the engine Start started and closes the files. It returns
// the engine's fatal error, if it stopped with one, or the error of
// closing the files.
func (t *Torrent) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cancel := t.cancel
	t.mu.Unlock()
	var err error
	if cancel != nil {
		cancel()
		t.wg.Wait()
		if !errors.Is(t.runErr, context.Canceled) {
			err = t.runErr
		}
	}
	if cerr := t.dir.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing files: %w", cerr)
	}
	return err
}
