package engine

import (
	"net/netip"
	"slices"
	"strings"
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
	WebSeedDownloaded  int64 // of Downloaded, bytes from web seeds
	Uploaded           int64 // payload bytes sent
	Wasted             int64 // duplicate blocks and pieces that failed the hash check
	HashFailures       int
	// DuplicateRefusals counts requests we refused while seeding because
	// the piece was already in the swarm or on its way to another peer.
	DuplicateRefusals int64
	DownloadRate      float64 // bytes per second, smoothed
	UploadRate        float64
	Peers, Seeds      int // connected peers, of which seeds
	Known             int // addresses known, connected or not
	Banned            int // addresses banned for bad data
	// Availability is the number of distributed copies among the connected
	// peers and us: the number of full copies (the rarest piece's count)
	// plus the fraction of pieces held by more than that.
	Availability float64
	Complete     bool
	Peerlist     []PeerInfo
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	Addr         netip.AddrPort
	Client       string
	Progress     float64 // fraction of pieces the peer has
	DownloadRate float64 // from the peer to us, bytes per second
	UploadRate   float64 // from us to the peer
	Downloaded   int64   // payload received from the peer
	Uploaded     int64   // payload sent to the peer
	// Flags in the style of common clients: D/d we download (interested,
	// unchoked / choked), U/u we upload, O optimistic unchoke, S snubbed,
	// I incoming connection, E encrypted (RC4, as Transmission's "E").
	Flags string
	// Encryption is how the connection is protected: EncryptionNone,
	// EncryptionRC4 or EncryptionObfuscated (MSE handshake, plaintext
	// payload).
	Encryption string
}

// Progress is the verified fraction of the wanted data, 0..1.
func (s Stats) Progress() float64 {
	if s.Wanted == 0 {
		return 1
	}
	return float64(s.Completed) / float64(s.Wanted)
}

// Ratio is the share ratio: uploaded over downloaded. A torrent that was
// complete from the start (nothing downloaded) divides by the size of the
// selected data instead, as seeders expect.
func (s Stats) Ratio() float64 {
	d := s.Downloaded
	if d == 0 {
		d = s.Wanted
	}
	if d == 0 {
		return 0
	}
	return float64(s.Uploaded) / float64(d)
}

// Stats returns a current snapshot, asking the owner goroutine for a fresh
// one while Run is running (so counters are exact at the moment of the
// call, e.g. right after Done). Safe for any goroutine.
func (t *Torrent) Stats() Stats {
	select {
	case t.statsReq <- struct{}{}:
		// The owner publishes before it answers.
		<-t.statsDone
	case <-t.loopDone:
	case <-t.notRunning():
	case <-time.After(2 * time.Second):
		// The owner is busy for unusually long: the last snapshot will do.
	}
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	return t.stats
}

// LastStats returns the snapshot the owner published last (at most about
// a second old) without waiting for it: for listing many torrents at once,
// where a round trip to each owner would add up.
func (t *Torrent) LastStats() Stats {
	t.statsMu.Lock()
	defer t.statsMu.Unlock()
	return t.stats
}

// notRunning is ready when Run has not started, so Stats does not wait
// for an owner that does not exist yet.
func (t *Torrent) notRunning() <-chan struct{} {
	if t.running.Load() {
		return nil
	}
	c := make(chan struct{})
	close(c)
	return c
}

func (t *Torrent) publishStats(now time.Time) {
	t.down.update(t.downloaded, now)
	up := t.uploaded.Load()
	t.up.update(up, now)
	var s Stats
	for i := 0; i < t.info.NumPieces(); i++ {
		if t.pk.priority(i) == Skip {
			continue
		}
		size := t.info.PieceSize(i)
		s.Pieces++
		s.Wanted += size
		if t.pk.hasPiece(i) {
			s.PiecesHave++
			s.Completed += size
		}
	}
	s.Left = s.Wanted - s.Completed
	s.Downloaded = t.downloaded
	s.WebSeedDownloaded = t.webDownloaded
	s.Uploaded = up
	s.Wasted = t.wasted
	s.HashFailures = t.hashFails
	s.DuplicateRefusals = t.dupRefusals
	s.DownloadRate = t.down.rate
	s.UploadRate = t.up.rate
	s.Peers = len(t.peers)
	s.Known = len(t.known)
	s.Banned = len(t.banned)
	s.Availability = t.availability()
	s.Complete = t.complete
	for p := range t.peers {
		if p.seed {
			s.Seeds++
		}
		s.Peerlist = append(s.Peerlist, PeerInfo{
			Addr:         p.addr,
			Client:       p.client,
			Progress:     float64(p.has.Count()) / float64(max(t.info.NumPieces(), 1)),
			DownloadRate: p.rate.rate,
			UploadRate:   p.upRate.rate,
			Downloaded:   p.downloaded,
			Uploaded:     p.uploaded.Load(),
			Flags:        p.flags(),
			Encryption:   p.encryption,
		})
	}
	slices.SortFunc(s.Peerlist, func(a, b PeerInfo) int { return a.Addr.Compare(b.Addr) })
	t.statsMu.Lock()
	t.stats = s
	t.lastHave = t.pk.haveSet()
	t.statsMu.Unlock()
}

// availability counts distributed copies (see Stats.Availability).
func (t *Torrent) availability() float64 {
	n := t.info.NumPieces()
	if n == 0 {
		return 0
	}
	lowest := int(^uint(0) >> 1)
	for i := 0; i < n; i++ {
		a := t.pk.copies(i)
		if t.pk.hasPiece(i) {
			a++
		}
		lowest = min(lowest, a)
	}
	above := 0
	for i := 0; i < n; i++ {
		a := t.pk.copies(i)
		if t.pk.hasPiece(i) {
			a++
		}
		if a > lowest {
			above++
		}
	}
	return float64(lowest) + float64(above)/float64(n)
}

func (p *peer) flags() string {
	var b strings.Builder
	switch {
	case p.amInterested && !p.peerChoking:
		b.WriteByte('D')
	case p.amInterested:
		b.WriteByte('d')
	}
	switch {
	case p.peerInterested && !p.amChoking:
		b.WriteByte('U')
	case p.peerInterested:
		b.WriteByte('u')
	}
	if p.optimistic {
		b.WriteByte('O')
	}
	if p.snubbed {
		b.WriteByte('S')
	}
	if !p.outgoing {
		b.WriteByte('I')
	}
	if p.encryption == EncryptionRC4 {
		b.WriteByte('E')
	}
	return b.String()
}
