package engine

import (
	"time"
)

// Stats is a snapshot of a torrent's progress and swarm, refreshed by the
// owner about once a second.
type Stats struct {
	Pieces, PiecesHave int   // wanted pieces in total, and verified
	Wanted             int64 // bytes selected for download
	Completed          int64 // verified bytes of wanted pieces
	Left               int64 // wanted bytes not yet verified
	Downloaded         int64 // payload bytes received, including waste
	Uploaded           int64 // payload bytes sent
	Wasted             int64 // duplicate blocks and pieces that failed the hash check
	HashFailures       int
	DownloadRate       float64 // bytes per second, smoothed
	UploadRate         float64
	Peers, Seeds       int // connected peers, of which seeds
	Known              int // addresses known, connected or not
	Complete           bool
}

// Progress is the verified fraction of the wanted data, 0..1.
func (s Stats) Progress() float64 {
	if s.Wanted == 0 {
		return 1
	}
	return float64(s.Completed) / float64(s.Wanted)
}

// Stats returns the latest snapshot. Safe for any goroutine.
func (t *Torrent) Stats() Stats {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	return t.stats
}

func (t *Torrent) publishStats(now time.Time) {
	t.down.update(t.downloaded, now)
	up := t.uploaded.Load()
	t.up.update(up, now)
	var s Stats
	for i := 0; i < t.pk.numPieces; i++ {
		if !t.pk.wanted[i] {
			continue
		}
		size := t.info.PieceSize(i)
		s.Pieces++
		s.Wanted += size
		if t.pk.have.Has(i) {
			s.PiecesHave++
			s.Completed += size
		}
	}
	s.Left = s.Wanted - s.Completed
	s.Downloaded = t.downloaded
	s.Uploaded = up
	s.Wasted = t.wasted
	s.HashFailures = t.hashFails
	s.DownloadRate = t.down.rate
	s.UploadRate = t.up.rate
	s.Peers = len(t.peers)
	for p := range t.peers {
		if p.seed {
			s.Seeds++
		}
	}
	s.Known = len(t.known)
	s.Complete = t.complete
	t.statsMu.Lock()
	t.stats = s
	t.statsMu.Unlock()
}
