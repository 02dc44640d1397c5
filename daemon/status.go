package daemon

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/storage"
	"github.com/sowerbt/sower/tracker"
)

// Status is a snapshot of one torrent, the common ground of the RPC, the
// web UI and the command line.
type Status struct {
	ID       int    `json:"id"`
	InfoHash string `json:"info_hash"`
	Name     string `json:"name"`
	State    string `json:"state"`
	Error    string `json:"error,omitempty"`
	Paused   bool   `json:"paused"`
	// Parked: an idle seed without an engine, woken by the next peer.
	Parked  bool      `json:"parked,omitempty"`
	Queue   int       `json:"queue"`
	Dir     string    `json:"download_dir"`
	AddedAt time.Time `json:"added_at"`
	DoneAt  time.Time `json:"done_at,omitzero"`
	Magnet  string    `json:"magnet,omitempty"`
	HasMeta bool      `json:"has_metadata"`
	Private bool      `json:"private"`
	// SuperSeed: BEP 16 super-seeding while seeding.
	SuperSeed bool `json:"super_seed"`

	TotalSize  int64   `json:"total_size"`
	Wanted     int64   `json:"wanted"`    // bytes selected for download
	Completed  int64   `json:"completed"` // verified bytes of wanted pieces
	Left       int64   `json:"left"`
	Progress   float64 `json:"progress"` // 0..1 of the wanted data
	CheckDone  float64 `json:"check_progress"`
	PieceCount int     `json:"piece_count"`
	PieceSize  int64   `json:"piece_size"`

	Downloaded   int64   `json:"downloaded"` // all runs
	Uploaded     int64   `json:"uploaded"`
	Wasted       int64   `json:"wasted"`
	HashFailures int     `json:"hash_failures"`
	DownloadRate float64 `json:"download_rate"`
	UploadRate   float64 `json:"upload_rate"`
	Ratio        float64 `json:"ratio"`
	ETA          int64   `json:"eta"` // seconds, -1 unknown
	Peers        int     `json:"peers"`
	Seeds        int     `json:"seeds"`
	Availability float64 `json:"availability"`
	SeedSecs     int64   `json:"seed_secs"`

	UploadLimit   int64   `json:"upload_limit"`
	DownloadLimit int64   `json:"download_limit"`
	RatioLimit    float64 `json:"ratio_limit"`
	SeedMinutes   int     `json:"seed_minutes"`
}

// FileStatus is one file of a torrent.
type FileStatus struct {
	Path      string          `json:"path"`
	Length    int64           `json:"length"`
	Completed int64           `json:"completed"` // bytes in verified pieces
	Priority  engine.Priority `json:"priority"`
}

// Detail is everything about one torrent that a torrent page shows.
type Detail struct {
	Status
	Files    []FileStatus      `json:"files"`
	Peerlist []engine.PeerInfo `json:"peerlist"`
	Trackers [][]string        `json:"trackers"`
	// TrackerStats is what each tracker last said (BEP 12 order); the
	// counts are -1 when unknown. NextAnnounce is zero when the torrent is
	// not announced (stopped, queued, failed).
	TrackerStats []tracker.Status `json:"tracker_stats"`
	NextAnnounce time.Time        `json:"next_announce"`
	// Have is the verified-piece bitfield (BEP 3 order, high bit first).
	Have []byte `json:"have"`
}

// List returns every torrent, ordered by id. It holds the lock once for
// all of them: a running engine's figures come from its last published
// snapshot (LastStats), a parked torrent's from its summary, so listing a
// thousand torrents asks no goroutine anything.
func (d *Daemon) List() []Status {
	now := time.Now()
	d.mu.Lock()
	out := make([]Status, 0, len(d.torrents))
	for _, t := range d.torrents {
		if !t.removing() {
			out = append(out, d.statusLocked(t, now))
		}
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return a.ID - b.ID })
	return out
}

// Get returns one torrent's status.
func (d *Daemon) Get(ih [20]byte) (Status, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, err := d.lookup(ih)
	if err != nil {
		return Status{}, err
	}
	return d.statusLocked(t, time.Now()), nil
}

// ByID maps a Transmission id to an info-hash.
func (d *Daemon) ByID(id int) ([20]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.byID[id]
	if t == nil || t.removing() {
		return [20]byte{}, fmt.Errorf("torrent id %d: %w", id, ErrNotFound)
	}
	return t.ih, nil
}

// haveLocked returns the verified pieces: the engine's when running, else
// the checkpoint's; d.mu is held.
func (t *torrent) haveLocked() bitfield.Bitfield {
	n := int(t.sum.pieces)
	if t.eng() != nil {
		return t.eng().Have()
	}
	if t.rec.HaveValid {
		if b, err := bitfield.FromBytes(t.rec.Have, n); err == nil {
			return b
		}
	}
	return bitfield.New(n)
}

// statusLocked computes t's Status; d.mu is held.
func (d *Daemon) statusLocked(t *torrent, now time.Time) Status {
	r := &t.rec
	stat := t.state()
	st := Status{
		ID: r.ID, InfoHash: r.InfoHash, Name: r.Name, State: stat.String(), Error: r.Error,
		Paused: r.Paused, Queue: r.Queue, Dir: r.DownloadDir, AddedAt: r.AddedAt, DoneAt: r.DoneAt,
		Magnet: r.Magnet, ETA: -1, SeedSecs: t.seedSecs(now), Parked: t.parked(),
		Downloaded: r.Downloaded, Uploaded: r.Uploaded, Wasted: r.Wasted,
		UploadLimit: r.UploadLimit, DownloadLimit: r.DownloadLimit, RatioLimit: r.RatioLimit, SeedMinutes: r.SeedMinutes,
	}
	if r := t.run; stat == StateChecking && r != nil && r.toCheck > 0 {
		st.CheckDone = float64(r.checked) / float64(r.toCheck)
	}
	if stat == StateMetadata {
		if r.Paused {
			st.Error = "stopped before its metadata arrived"
		} else if st.Error == "" {
			st.Error = "fetching metadata from peers (BEP 9): waiting for peers that have it"
		}
	}
	if t.mi == nil && !t.parked() {
		return st
	}
	st.HasMeta = true
	st.Private = t.sum.private
	st.SuperSeed = t.rec.SuperSeed
	st.TotalSize = t.sum.total
	st.PieceCount = int(t.sum.pieces)
	st.PieceSize = t.sum.pieceLen
	switch {
	case t.eng() != nil:
		es := t.eng().LastStats()
		st.Wanted, st.Completed, st.Left = es.Wanted, es.Completed, es.Left
		st.Downloaded += es.Downloaded
		st.Uploaded += es.Uploaded
		st.Wasted += es.Wasted
		st.HashFailures = es.HashFailures
		st.DownloadRate, st.UploadRate = es.DownloadRate, es.UploadRate
		st.Peers, st.Seeds, st.Availability = es.Peers, es.Seeds, es.Availability
	case t.parked():
		st.Wanted, st.Completed = t.sum.wanted, t.sum.completed
	default:
		st.Wanted, st.Completed = t.sizes(t.haveLocked())
	}
	st.Left = st.Wanted - st.Completed
	if st.Wanted > 0 {
		st.Progress = float64(st.Completed) / float64(st.Wanted)
	} else {
		st.Progress = 1
	}
	base := st.Downloaded
	if base == 0 {
		base = st.Wanted
	}
	if base > 0 {
		st.Ratio = float64(st.Uploaded) / float64(base)
	}
	if st.Left == 0 {
		st.ETA = 0
	} else if st.DownloadRate > 1 {
		st.ETA = int64(float64(st.Left) / st.DownloadRate)
	}
	return st
}

// Detail returns a torrent's status with files, peers, trackers and its
// piece map.
func (d *Daemon) Detail(ih [20]byte) (Detail, error) {
	d.mu.Lock()
	t, err := d.lookup(ih)
	if err != nil {
		d.mu.Unlock()
		return Detail{}, err
	}
	det := Detail{Status: d.statusLocked(t, time.Now())}
	mi, layout, err := d.metaFor(t)
	if err != nil {
		d.mu.Unlock()
		return Detail{}, fmt.Errorf("torrent %x: %w", ih, err)
	}
	if mi == nil {
		d.mu.Unlock()
		return det, nil
	}
	prio := priorities(t.rec.Priorities, layout.NumFiles())
	have := t.haveLocked()
	eng := t.eng()
	swarm := t.swarm
	d.mu.Unlock()
	det.Trackers = mi.Tiers()
	if swarm != nil {
		det.Trackers = swarm.TrackerList()
		det.TrackerStats = swarm.Trackers()
		det.NextAnnounce = swarm.NextAnnounce()
	} else {
		for i, tier := range det.Trackers {
			for _, u := range tier {
				det.TrackerStats = append(det.TrackerStats, tracker.Status{URL: u, Tier: i, Seeders: -1, Leechers: -1, Downloaded: -1})
			}
		}
	}
	det.Have = have.Bytes()
	if eng != nil {
		det.Peerlist = eng.Stats().Peerlist
	}
	det.Files = fileStatuses(layout, have, prio)
	return det, nil
}

// Files lists a torrent's files with their verified bytes.
func (d *Daemon) Files(ih [20]byte) ([]FileStatus, error) {
	det, err := d.Detail(ih)
	if err != nil {
		return nil, err
	}
	if !det.HasMeta {
		return nil, errors.New("torrent has no metadata yet")
	}
	return det.Files, nil
}

func fileStatuses(layout *storage.Layout, have bitfield.Bitfield, prio []engine.Priority) []FileStatus {
	out := make([]FileStatus, 0, layout.NumFiles())
	for i := range layout.NumFiles() {
		f := layout.File(i)
		if f.Padding {
			continue
		}
		fs := FileStatus{Path: f.Path, Length: f.Length, Priority: prio[i]}
		first, end := layout.FilePieces(i)
		start, stop := layout.FileOffset(i), layout.FileOffset(i)+f.Length
		for p := first; p < end; p++ {
			if !have.Has(p) {
				continue
			}
			ps := layout.PieceOffset(p)
			pe := ps + layout.PieceSize(p)
			fs.Completed += min(pe, stop) - max(ps, start)
		}
		out = append(out, fs)
	}
	return out
}

// InfoHashString formats an info-hash as Transmission's hashString.
func InfoHashString(ih [20]byte) string { return hex.EncodeToString(ih[:]) }

// parseHash reads a 40-digit hex info-hash.
func parseHash(s string) ([20]byte, error) {
	var ih [20]byte
	if len(s) != 40 {
		return ih, fmt.Errorf("info-hash %q: want 40 hex digits", s)
	}
	if _, err := hex.Decode(ih[:], []byte(s)); err != nil {
		return ih, fmt.Errorf("info-hash %q: %w", s, err)
	}
	return ih, nil
}
