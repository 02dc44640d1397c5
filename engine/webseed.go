package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sowerbt/sower/webseed"
)

// Web seeds (BEP 19 url-list, BEP 17 httpseeds) are HTTP servers that
// hold the whole torrent. Each source gets a few worker goroutines; a
// worker asks the owner for a run of pieces, fetches it in one ranged
// request per file, and hands the pieces back to be verified like any
// peer's. The owner prefers pieces that no connected peer has, so web
// seeds fill the gaps the swarm cannot, and gives a source whole
// contiguous runs so each HTTP request is large.

// errSourceDropped marks results of a source dropped while they were in
// flight.
var errSourceDropped = errors.New("web seed dropped for bad data")

// maxWebRun bounds one fetch: large enough that request overhead does not
// matter, small enough that a slow server does not hold much.
const maxWebRun = 4 << 20

// wsSource is one web seed and its health.
type wsSource struct {
	src     *webseed.Source
	backoff *webseed.Backoff
	fetched int64   // payload bytes delivered (owner)
	rate    float64 // bytes per second of one connection, smoothed (owner)
	// avoid holds pieces whose fetch failed on this source, until when:
	// a server missing one file must not block the files it does have.
	avoid map[int]time.Time
}

// avoidFor is how long a source is not asked again for pieces it failed.
const avoidFor = 5 * time.Minute

// runBytes sizes the next run for one worker: about a second of this
// source's transfer, so a fast server gets big requests while a slow one
// does not sit on pieces the peers could deliver sooner.
func (s *wsSource) runBytes(pieceLen int64) int64 {
	if s.rate == 0 {
		return pieceLen
	}
	return min(max(int64(s.rate), pieceLen), maxWebRun)
}

// wsJob is a run of pieces given to a worker.
type wsJob struct {
	pieces []*piece
}

type wsRequest struct {
	s     *wsSource
	reply chan *wsJob // nil job: nothing to do now
}

type wsResult struct {
	s    *wsSource
	job  *wsJob
	data []byte // the run's bytes; the worker reuses it only after the owner is done
	took time.Duration
	err  error
}

// startWebSeeds builds the sources and starts their workers.
func (t *Torrent) startWebSeeds(ctx context.Context, wg *sync.WaitGroup) {
	add := func(kind webseed.Kind, u string) {
		src, err := webseed.New(kind, u, t.info.Name, t.layout.Files(), t.info.IsMultiFile(),
			t.info.PieceLength, t.info.TotalLength(), t.infoHash, webseed.Config{Logger: t.log})
		if err != nil {
			t.log.Warn("ignoring web seed", "url", u, "err", err)
			return
		}
		s := &wsSource{src: src, backoff: webseed.NewBackoff(webseed.BackoffConfig{})}
		t.webSeeds = append(t.webSeeds, s)
		for range webseed.DefaultMaxConns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.webSeedWorker(ctx, s)
			}()
		}
	}
	for _, u := range t.cfg.WebSeeds {
		add(webseed.URLList, u)
	}
	for _, u := range t.cfg.HTTPSeeds {
		add(webseed.HTTPSeed, u)
	}
}

// webSeedWorker fetches runs of pieces until ctx ends or the source is
// dropped.
func (t *Torrent) webSeedWorker(ctx context.Context, s *wsSource) {
	reply := make(chan *wsJob, 1)
	var buf []byte
	idle := time.NewTimer(0)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
		}
		select {
		case t.wsReqs <- wsRequest{s: s, reply: reply}:
		case <-ctx.Done():
			return
		}
		var job *wsJob
		select {
		case job = <-reply:
		case <-ctx.Done():
			return
		}
		if job == nil {
			if s.backoff.Dropped() {
				return
			}
			// Nothing to fetch now (all done, budget used, or resting);
			// look again shortly.
			idle.Reset(500 * time.Millisecond)
			continue
		}
		first := job.pieces[0]
		off := int64(first.index) * t.info.PieceLength
		n := 0
		for _, pc := range job.pieces {
			n += pc.size
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		began := time.Now()
		err := s.src.Fetch(ctx, off, buf[:n])
		// The owner copies the run into the piece buffers: peers may be
		// filling the same pieces in end game, and only the owner may
		// touch piece buffers.
		select {
		case t.wsResults <- wsResult{s: s, job: job, data: buf[:n], took: time.Since(began), err: err}:
		case <-ctx.Done():
			return
		}
		idle.Reset(0)
	}
}

// onWebSeedRequest hands a worker a run of pieces, or nil.
func (t *Torrent) onWebSeedRequest(r wsRequest, now time.Time) {
	if t.complete || r.s.backoff.Dropped() || !r.s.backoff.Ready(now) {
		r.reply <- nil
		return
	}
	run := t.pk.webRun(r.s, r.s.runBytes(t.info.PieceLength), now)
	if len(run) == 0 {
		r.reply <- nil
		return
	}
	r.reply <- &wsJob{pieces: run}
}

func (s *wsSource) avoids(i int, now time.Time) bool {
	until, ok := s.avoid[i]
	return ok && now.Before(until)
}

// onWebSeedResult verifies fetched pieces, or returns them to the picker.
func (t *Torrent) onWebSeedResult(r wsResult, now time.Time) {
	if r.s.backoff.Dropped() {
		// Runs in flight when the source was dropped for bad data are not
		// trusted: hand their pieces back to peers.
		r.err = errSourceDropped
	}
	if r.err != nil {
		t.pk.webFailed(r.job.pieces)
		if errors.Is(r.err, context.Canceled) || errors.Is(r.err, errSourceDropped) {
			return
		}
		if r.s.avoid == nil {
			r.s.avoid = make(map[int]time.Time)
		}
		for _, pc := range r.job.pieces {
			r.s.avoid[pc.index] = now.Add(avoidFor)
		}
		if !r.s.backoff.Ready(now) {
			return // another worker's failure of the same moment already counted
		}
		wait := r.s.backoff.Failure(now, r.err)
		t.log.Warn("web seed failed; using other sources meanwhile", "url", r.s.src.URL(), "err", r.err, "retry_in", wait.Round(time.Second))
		return
	}
	r.s.backoff.Success()
	if secs := r.took.Seconds(); secs > 0 {
		inst := float64(len(r.data)) / secs
		if r.s.rate == 0 {
			r.s.rate = inst
		} else {
			r.s.rate += 0.3 * (inst - r.s.rate)
		}
	}
	at := 0
	for _, pc := range r.job.pieces {
		data := r.data[at : at+pc.size]
		at += pc.size
		n := int64(pc.size)
		t.downloaded += n
		t.webDownloaded += n
		r.s.fetched += n
		if !t.pk.webFetched(pc, data) {
			t.wasted += n // peers finished it first, in end game
			continue
		}
		t.verify(pc)
	}
	// Cancel end-game copies that peers were asked for.
	for _, pc := range r.job.pieces {
		if t.pk.inFlight(pc.index) == pc {
			t.cancelPieceRequests(pc)
		}
	}
}

// onWebSeedHashFail treats a web seed that served a bad piece like a
// poisoning peer: by default one bad piece drops it (BEP 19).
func (t *Torrent) onWebSeedHashFail(pc *piece, now time.Time) {
	s := pc.web
	if s.backoff.Dropped() {
		return // already dropped and logged
	}
	t.log.Warn("web seed served a piece that failed the hash check", "url", s.src.URL(), "piece", pc.index)
	if s.backoff.Poisoned(now) {
		t.log.Warn("dropping web seed for bad data", "url", s.src.URL())
		s.src.Close()
	}
}
