package daemon

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/storage"
)

// ErrNotFound is returned for an id or info-hash the daemon does not have.
var ErrNotFound = errors.New("no such torrent")

// errInvalidTorrent marks Add's refusal of metainfo that does not parse.
var errInvalidTorrent = errors.New("invalid .torrent")

// AddRequest describes a torrent to add: exactly one of Metainfo (the
// bytes of a .torrent file) and URL (magnet:, http: or https:).
type AddRequest struct {
	Metainfo    []byte
	URL         string
	DownloadDir string // default: the session's download folder
	Paused      bool
	// Priorities per file (Skip, Normal, High); nil means all Normal.
	Priorities []engine.Priority
}

// AddResult says what Add did.
type AddResult struct {
	ID        int
	InfoHash  [20]byte
	Name      string
	Duplicate bool // the torrent was already there; nothing changed
}

// Add adds a torrent. A magnet link without metadata is kept in
// StateMetadata until AddMetadata supplies the info dictionary.
func (d *Daemon) Add(ctx context.Context, req AddRequest) (AddResult, error) {
	var (
		mi  *metainfo.MetaInfo
		mag *magnet.Magnet
		err error
	)
	switch {
	case len(req.Metainfo) > 0 && req.URL != "":
		return AddResult{}, errors.New("add: give either metainfo or a URL, not both")
	case len(req.Metainfo) > 0:
		if len(req.Metainfo) > metainfo.MaxFileSize {
			return AddResult{}, fmt.Errorf("add: .torrent of %d bytes exceeds the %d-byte limit", len(req.Metainfo), metainfo.MaxFileSize)
		}
		mi, err = metainfo.Parse(req.Metainfo)
		if err != nil {
			return AddResult{}, fmt.Errorf("add: %w: %w", errInvalidTorrent, err)
		}
	case strings.HasPrefix(strings.ToLower(req.URL), "magnet:"):
		mag, err = magnet.Parse(req.URL)
		if err != nil {
			return AddResult{}, fmt.Errorf("add: %w", err)
		}
	case strings.HasPrefix(req.URL, "http://") || strings.HasPrefix(req.URL, "https://"):
		data, err := d.fetch(ctx, req.URL)
		if err != nil {
			return AddResult{}, err
		}
		mi, err = metainfo.Parse(data)
		if err != nil {
			return AddResult{}, fmt.Errorf("add: %s is not a valid .torrent: %w", req.URL, err)
		}
	case req.URL != "":
		return AddResult{}, fmt.Errorf("add: unsupported URL %q: want a magnet, http or https URL", req.URL)
	default:
		return AddResult{}, errors.New("add: no torrent given")
	}

	var ih [20]byte
	t := &torrent{}
	if mi != nil {
		ih = mi.InfoHash
		if err := t.setMeta(mi); err != nil {
			return AddResult{}, fmt.Errorf("add: %w: %w", errInvalidTorrent, err)
		}
		if req.Priorities != nil {
			if len(req.Priorities) != t.layout.NumFiles() {
				return AddResult{}, fmt.Errorf("add: %d file priorities for %d files", len(req.Priorities), t.layout.NumFiles())
			}
			t.rec.Priorities = make([]int8, len(req.Priorities))
			for i, p := range req.Priorities {
				t.rec.Priorities[i] = int8(p)
			}
		}
	} else {
		ih = mag.InfoHash
		t.rec.Magnet = mag.String()
		t.rec.Name = mag.Name
		if t.rec.Name == "" {
			t.rec.Name = hex.EncodeToString(ih[:])
		}
	}
	t.ih = ih

	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.torrents[ih]; old != nil {
		return AddResult{ID: old.rec.ID, InfoHash: ih, Name: old.rec.Name, Duplicate: true}, nil
	}
	id, err := d.db.nextID()
	if err != nil {
		return AddResult{}, err
	}
	dir := req.DownloadDir
	if dir == "" {
		dir = d.settings.DownloadDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return AddResult{}, fmt.Errorf("add: download folder %q: %w", dir, err)
	}
	queue := 0
	for _, o := range d.torrents {
		queue = max(queue, o.rec.Queue+1)
	}
	t.rec.ID = id
	t.rec.InfoHash = hex.EncodeToString(ih[:])
	t.rec.DownloadDir = internDir(abs)
	t.rec.AddedAt = time.Now().Truncate(time.Second)
	t.rec.Paused = req.Paused
	t.rec.Queue = queue
	var meta []byte
	if mi != nil {
		meta, err = mi.Encode()
		if err != nil {
			return AddResult{}, fmt.Errorf("add: encode metainfo: %w", err)
		}
	}
	rec := t.rec
	if err := d.db.put(meta, &rec); err != nil {
		return AddResult{}, err
	}
	d.torrents[ih] = t
	d.byID[id] = t
	d.kickScheduler()
	d.log.Info("torrent added", "name", t.rec.Name, "infohash", t.rec.InfoHash, "id", id)
	return AddResult{ID: id, InfoHash: ih, Name: t.rec.Name}, nil
}

// fetch downloads a .torrent, refusing anything larger than the metainfo
// limit without reading it all.
func (d *Daemon) fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("add: fetch %s: %w", url, err)
	}
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("add: fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("add: fetch %s: HTTP %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, metainfo.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("add: fetch %s: %w", url, err)
	}
	if len(data) > metainfo.MaxFileSize {
		return nil, fmt.Errorf("add: fetch %s: larger than the %d-byte .torrent limit", url, metainfo.MaxFileSize)
	}
	return data, nil
}

// AddMetadata completes a magnet torrent with its info dictionary (as
// fetched from peers, BEP 9): the bytes must hash to the info-hash. The
// torrent then starts like one added from a file.
func (d *Daemon) AddMetadata(infoHash [20]byte, infoBytes []byte) error {
	if sha1.Sum(infoBytes) != infoHash {
		return fmt.Errorf("metadata does not match info-hash %x", infoHash)
	}
	info, err := metainfo.ParseInfo(infoBytes)
	if err != nil {
		return fmt.Errorf("metadata for %x: %w", infoHash, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.torrents[infoHash]
	if t == nil {
		return ErrNotFound
	}
	if t.mi != nil || t.parked() {
		return nil
	}
	mi := &metainfo.MetaInfo{Info: *info, InfoBytes: infoBytes, InfoHash: infoHash}
	m, merr := magnet.Parse(t.rec.Magnet)
	if merr == nil {
		for _, tr := range m.Trackers {
			mi.AnnounceList = append(mi.AnnounceList, []string{tr})
		}
		mi.URLList = m.WebSeeds
	}
	meta, err := mi.Encode()
	if err != nil {
		return fmt.Errorf("metadata for %x: %w", infoHash, err)
	}
	if err := t.setMeta(mi); err != nil {
		return err
	}
	if merr == nil && t.rec.Priorities == nil {
		// The link's so= selects files (BEP 53); the rest are skipped.
		if wanted := session.Wanted(m, t.layout.NumFiles()); wanted != nil {
			t.rec.Priorities = make([]int8, len(wanted))
			for i, w := range wanted {
				if w {
					t.rec.Priorities[i] = int8(engine.Normal)
				}
			}
		}
	}
	if t.run != nil {
		t.run.cancel() // a fetch in progress is no longer needed
	}
	rec := t.rec
	if err := d.db.put(meta, &rec); err != nil {
		return err
	}
	d.kickScheduler()
	return nil
}

// lookup finds a torrent by info-hash; d.mu is held.
func (d *Daemon) lookup(ih [20]byte) (*torrent, error) {
	t := d.torrents[ih]
	if t == nil || t.removing() {
		return nil, fmt.Errorf("torrent %x: %w", ih, ErrNotFound)
	}
	return t, nil
}

// Start resumes a stopped torrent (subject to the queue) and clears an
// error, so a torrent whose disk filled up can be retried at once.
func (d *Daemon) Start(ih [20]byte) error {
	return d.update(ih, func(t *torrent) error {
		t.rec.Paused = false
		if t.run == nil {
			t.rec.Error = ""
		}
		return nil
	})
}

// Stop pauses a torrent: its run ends with an exact checkpoint.
func (d *Daemon) Stop(ih [20]byte) error {
	return d.update(ih, func(t *torrent) error {
		t.rec.Paused = true
		if t.run != nil {
			t.run.cancel()
		}
		if t.parked() {
			d.announceStopLocked(t)
			d.unparkLocked(t)
		}
		return nil
	})
}

// Verify forgets the checkpoint so the next start hashes all data, and
// restarts the torrent if it runs.
func (d *Daemon) Verify(ih [20]byte) error {
	return d.restart(ih, func(t *torrent) error {
		t.rec.HaveValid, t.rec.Have, t.rec.Clean = false, nil, false
		t.complete = false
		return nil
	})
}

// TorrentOptions are per-torrent settings; nil fields stay unchanged.
type TorrentOptions struct {
	Priorities    []engine.Priority
	UploadLimit   *int64 // bytes/s, 0 = only the global limit
	DownloadLimit *int64
	RatioLimit    *float64 // 0 = session default, <0 = never stop
	SeedMinutes   *int
	Queue         *int
	// SuperSeed turns BEP 16 super-seeding on or off; a running torrent
	// restarts (cheaply: its checkpoint is exact) to apply it.
	SuperSeed *bool
}

// Set changes per-torrent settings. New priorities reach a running
// engine at once; new rate limits restart the torrent (cheaply: the
// checkpoint is exact).
func (d *Daemon) Set(ih [20]byte, o TorrentOptions) error {
	d.mu.Lock()
	t, err := d.lookup(ih)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	if o.Priorities != nil && t.parked() {
		// New priorities may leave pieces to download: back to an
		// ordinary torrent, which the scheduler starts again.
		if err := d.unparkLocked(t); err != nil {
			d.mu.Unlock()
			return err
		}
		d.announceStopLocked(t)
	}
	if o.Priorities != nil && t.layout != nil && len(o.Priorities) != t.layout.NumFiles() {
		d.mu.Unlock()
		return fmt.Errorf("torrent %x: %d file priorities for %d files", ih, len(o.Priorities), t.layout.NumFiles())
	}
	for _, p := range o.Priorities {
		if p < engine.Skip || p > engine.High {
			d.mu.Unlock()
			return fmt.Errorf("torrent %x: priority %d out of range", ih, p)
		}
	}
	restart := false
	if o.UploadLimit != nil && *o.UploadLimit != t.rec.UploadLimit {
		t.rec.UploadLimit, restart = max(*o.UploadLimit, 0), true
	}
	if o.DownloadLimit != nil && *o.DownloadLimit != t.rec.DownloadLimit {
		t.rec.DownloadLimit, restart = max(*o.DownloadLimit, 0), true
	}
	if o.SuperSeed != nil && *o.SuperSeed != t.rec.SuperSeed {
		t.rec.SuperSeed, restart = *o.SuperSeed, true
	}
	if o.RatioLimit != nil {
		t.rec.RatioLimit = *o.RatioLimit
	}
	if o.SeedMinutes != nil {
		t.rec.SeedMinutes = max(*o.SeedMinutes, 0)
	}
	if o.Queue != nil {
		t.rec.Queue = *o.Queue
	}
	var eng *engine.Torrent
	var prio []engine.Priority
	if o.Priorities != nil {
		t.rec.Priorities = make([]int8, len(o.Priorities))
		for i, p := range o.Priorities {
			t.rec.Priorities[i] = int8(p)
		}
		if t.layout != nil {
			prio = t.priorities()
			if t.rec.HaveValid {
				if have, err := bitfieldFrom(t.rec.Have, t.layout.NumPieces()); err == nil {
					t.complete = t.leftPieces(have) == 0
				}
			}
		}
		eng = t.eng()
	}
	d.saveLocked(t)
	if restart && t.run != nil {
		t.run.cancel()
	}
	d.mu.Unlock()
	if eng != nil {
		if err := eng.SetFilePriorities(prio); err != nil && !errors.Is(err, engine.ErrNotRunning) {
			return fmt.Errorf("torrent %x: set priorities: %w", ih, err)
		}
	}
	d.kickScheduler()
	return nil
}

func (d *Daemon) update(ih [20]byte, f func(*torrent) error) error {
	d.mu.Lock()
	t, err := d.lookup(ih)
	if err == nil {
		err = f(t)
	}
	if err == nil {
		d.saveLocked(t)
	}
	d.mu.Unlock()
	d.kickScheduler()
	return err
}

// restart stops t if it runs (holding it, so the scheduler does not start
// it again meanwhile), waits for its final checkpoint, applies f and lets
// the scheduler start it again. f runs under the lock with no run, so two
// restarts of one torrent apply one after the other, and a removal that
// comes while the run ends wins (f is not applied, nothing is saved).
func (d *Daemon) restart(ih [20]byte, f func(*torrent) error) error {
	d.mu.Lock()
	var t *torrent
	for {
		var err error
		t, err = d.lookup(ih)
		if err != nil {
			d.mu.Unlock()
			return err
		}
		if t.run == nil {
			break
		}
		if t.life != lifeHeld {
			d.setLifeLocked(t, lifeHeld)
		}
		exited := d.stopLocked(t)
		d.mu.Unlock()
		<-exited
		d.mu.Lock()
	}
	if t.parked() {
		d.announceStopLocked(t)
		if err := d.unparkLocked(t); err != nil {
			d.mu.Unlock()
			return err
		}
	}
	err := f(t)
	if err == nil {
		d.saveLocked(t)
	}
	if t.life == lifeHeld {
		d.setLifeLocked(t, lifeIdle)
	}
	d.mu.Unlock()
	d.kickScheduler()
	return err
}

// stopLocked cancels t's run; the returned channel closes once the run
// has ended. The caller holds t or is removing it first, so the scheduler
// does not start it again meanwhile.
func (d *Daemon) stopLocked(t *torrent) <-chan struct{} {
	if t.run == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	t.run.cancel()
	return t.run.exited
}

// Remove drops a torrent, and its files too with deleteData.
func (d *Daemon) Remove(ih [20]byte, deleteData bool) error {
	d.mu.Lock()
	t, err := d.lookup(ih)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	wasParked := t.parked()
	d.setLifeLocked(t, lifeRemoving)
	exited := d.stopLocked(t)
	d.mu.Unlock()
	<-exited
	d.mu.Lock()
	var layout *storage.Layout
	if deleteData {
		if wasParked {
			_, layout, err = d.storedMeta(t)
		} else {
			layout = t.layout
		}
	}
	if wasParked {
		d.announceStopLocked(t)
	}
	delete(d.torrents, ih)
	delete(d.byID, t.rec.ID)
	delete(d.extra, ih)
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("remove: data files unknown, left in place", "torrent", t.rec.Name, "err", err)
		layout = nil
	}
	if err := d.db.delete(t.rec.InfoHash); err != nil {
		return err
	}
	if layout != nil {
		if err := removeData(t, layout); err != nil {
			return err
		}
	}
	d.kickScheduler()
	return nil
}

// removeData deletes a torrent's files, its parts file and the folders
// of its layout that are left empty, and nothing else. It works through
// an os.Root of the download folder, so nothing outside the folder is
// touched, and it never goes through a symbolic link: a link placed in
// the folder (by anyone who can write there) where one of the torrent's
// folders would be must not lead the deletion to files Sower never wrote.
// What is found where a file of the torrent should be but is not a
// regular file, or is reached through a link, is left in place and
// reported.
func removeData(t *torrent, layout *storage.Layout) error {
	root, err := os.OpenRoot(t.rec.DownloadDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove data of %s: %w", t.rec.Name, err)
	}
	defer root.Close()
	var errs []error
	seen := map[string]bool{} // one report for a link above many files
	dirs := map[string]bool{}
	remove := func(name string) {
		err := removeOwnFile(root, name)
		if err != nil && !errors.Is(err, os.ErrNotExist) && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	for _, f := range layout.Files() {
		if f.Padding {
			continue
		}
		name := filepath.FromSlash(f.Path)
		remove(name)
		for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
			dirs[dir] = true
		}
	}
	top, _, _ := strings.Cut(layout.File(0).Path, "/")
	remove("." + top + ".parts")
	// Deepest first, so parents are empty when their turn comes; a folder
	// that is not empty (it holds files that are not the torrent's) stays.
	list := make([]string, 0, len(dirs))
	for dir := range dirs {
		list = append(list, dir)
	}
	slices.SortFunc(list, func(a, b string) int { return len(b) - len(a) })
	for _, dir := range list {
		if noLinkOnPath(root, dir) == nil {
			root.Remove(dir) // fails harmlessly if not empty
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove data of %s: %w", t.rec.Name, errors.Join(errs...))
	}
	return nil
}

// removeOwnFile removes name, relative to root, if it is a regular file
// reached without any symbolic link.
func removeOwnFile(root *os.Root, name string) error {
	if err := noLinkOnPath(root, filepath.Dir(name)); err != nil {
		return err
	}
	st, err := root.Lstat(name)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s): left in place", name, st.Mode().Type())
	}
	return root.Remove(name)
}

// noLinkOnPath checks that every component of the folder dir, relative to
// root, is a folder and not a symbolic link.
func noLinkOnPath(root *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	if err := noLinkOnPath(root, filepath.Dir(dir)); err != nil {
		return err
	}
	st, err := root.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a folder (%s): what is under it is left in place", dir, st.Mode().Type())
	}
	return nil
}

// Move moves a torrent's files to dir (a rename: same file system) and
// points the torrent there; with move false only the folder changes, for
// data that was moved by hand (it is rechecked).
func (d *Daemon) Move(ih [20]byte, dir string, move bool) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("move: folder %q: %w", dir, err)
	}
	return d.restart(ih, func(t *torrent) error {
		if abs == t.rec.DownloadDir {
			return nil
		}
		if move && t.layout != nil {
			if err := os.MkdirAll(abs, 0o755); err != nil {
				return fmt.Errorf("move: %w", err)
			}
			done := map[string]bool{}
			for _, f := range t.layout.Files() {
				if f.Padding {
					continue
				}
				top, _, _ := strings.Cut(f.Path, "/")
				if done[top] {
					continue
				}
				done[top] = true
				from := filepath.Join(t.rec.DownloadDir, top)
				if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
					continue
				}
				if err := os.Rename(from, filepath.Join(abs, top)); err != nil {
					return fmt.Errorf("move %s: %w", from, err)
				}
			}
		} else {
			t.rec.HaveValid, t.rec.Have, t.rec.Clean = false, nil, false
		}
		t.rec.DownloadDir = internDir(abs)
		return nil
	})
}

// Reannounce asks the torrent's trackers for peers now, or as soon as the
// trackers' "min interval" allows. It fails for a torrent that is not
// announced (stopped, queued, failed) or has no tracker.
func (d *Daemon) Reannounce(ih [20]byte) error {
	d.mu.Lock()
	t, err := d.lookup(ih)
	var w *session.Swarm
	if err == nil {
		w = t.swarm
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if w == nil {
		return fmt.Errorf("torrent %x is not running: start it to announce", ih)
	}
	if _, err := w.Reannounce(); err != nil {
		return fmt.Errorf("torrent %x: %w", ih, err)
	}
	return nil
}
