package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/time/rate"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/internal/bitfield"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/storage"
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
	// kept when the Torrent closes; otherwise the Torrent joins one and
	// leaves it when it closes.
	Swarm *Swarm
}

// Torrent is one torrent being downloaded or seeded: its files, the
// engine over them and its swarm. Open it with Session.Open (files
// checked, nothing running) and Start it, or both at once with
// Session.AddTorrent.
type Torrent struct {
	s    *Session
	mi   *metainfo.MetaInfo
	opts TorrentOptions

	layout *storage.Layout
	dir    *storage.Dir
	have   bitfield.Bitfield // verified when opened
	swarm  *Swarm
	own    bool // swarm joined by Open, left by Close

	mu     sync.Mutex // guards eng, cancel, closed
	eng    *engine.Torrent
	cancel context.CancelFunc
	closed bool

	wg      sync.WaitGroup // Start's goroutines
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

// Start starts the engine over the opened files and attaches it to the
// torrent's swarm (joining one if TorrentOptions.Swarm is nil).
func (t *Torrent) Start() error {
	s, mi, o := t.s, t.mi, t.opts
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
		return err
	}
	w := o.Swarm
	if w == nil {
		w, err = s.Join(mi.InfoHash, SwarmOptions{Trackers: mi.Tiers(), Private: mi.Info.Private})
		if err != nil {
			return err
		}
		t.own = true
	}
	if mi.Info.Private {
		w.markPrivate() // a magnet's swarm learns it with the metadata
	}
	t.swarm = w
	ctx, cancel := context.WithCancel(s.ctx)
	t.mu.Lock()
	t.eng, t.cancel = eng, cancel
	t.mu.Unlock()
	w.Attach(ctx, eng)
	w.AddPeers(o.Peers...)
	completeAtStart := eng.LastStats().Left == 0
	t.wg.Go(func() {
		t.runErr = eng.Run(ctx)
		close(t.stopped)
	})
	t.wg.Go(func() {
		select {
		case <-eng.Done():
			// BEP 3: "completed" only when this process finished the
			// download, not for data that was complete at start.
			if !completeAtStart && eng.LastStats().Left == 0 {
				w.Completed()
			}
		case <-ctx.Done():
		}
	})
	return nil
}

// Engine is the running engine, nil before Start.
func (t *Torrent) Engine() *engine.Torrent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eng
}

// Swarm is the torrent's membership of the session, nil before Start.
func (t *Torrent) Swarm() *Swarm { return t.swarm }

// Done is closed once every wanted piece is verified.
func (t *Torrent) Done() <-chan struct{} { return t.Engine().Done() }

// Stopped is closed when the engine stops: after Close, or on its own
// with a fatal error (see Err).
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

// Stats is a fresh snapshot of the torrent's transfer.
func (t *Torrent) Stats() engine.Stats { return t.Engine().Stats() }

// Close stops the engine, detaches it (leaving the swarm if the Torrent
// joined it) and closes the files. It returns the engine's fatal error,
// if it stopped with one, or the error of closing the files.
func (t *Torrent) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	t.wg.Wait()
	if t.swarm != nil {
		if t.own {
			t.swarm.Leave()
		} else {
			t.swarm.Detach()
		}
	}
	var err error
	if cancel != nil && !errors.Is(t.runErr, context.Canceled) {
		err = t.runErr
	}
	if cerr := t.dir.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing files: %w", cerr)
	}
	return err
}
