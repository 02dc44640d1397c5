package daemon

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
	"unique"

	"github.com/sowerbt/sower/tracker"
)

// The daemon, not each engine, announces its torrents to their trackers:
// one goroutine with a timer heap serves every running and parked
// torrent, so a parked seed stays in its swarms without a goroutine of its
// own, and parking or waking a torrent sends no "stopped"/"started" pair.

const (
	// maxAnnounces bounds the announces in flight at once.
	maxAnnounces = 16
	// announceRetryMin and announceRetryMax bound the back-off after a
	// round in which every tracker of a torrent failed.
	announceRetryMin = 15 * time.Second
	announceRetryMax = 30 * time.Minute
	// announceCap caps a tracker's interval so a bogus huge value cannot
	// silence a torrent for the whole session.
	announceCap = 3 * time.Hour
	// stopAnnounceTimeout bounds the "stopped" announces sent when the
	// daemon shuts down.
	stopAnnounceTimeout = 5 * time.Second
)

// announceState is a torrent's place in the announce schedule; guarded by
// Daemon.mu. It is a value in torrent, so it costs no allocation.
type announceState struct {
	next      time.Time
	event     tracker.Event // to send next: Started until one got through
	slot      int32         // 1 + index in Daemon.annHeap; 0 when not scheduled
	failures  uint8
	inFlight  bool
	announced bool // a tracker accepted us this session: "stopped" is due at the end
}

// internTiers copies tiers with every URL interned, so a thousand torrents
// of one tracker share its URL's bytes.
func internTiers(tiers [][]string) [][]string {
	if len(tiers) == 0 {
		return nil
	}
	out := make([][]string, len(tiers))
	for i, tier := range tiers {
		out[i] = make([]string, len(tier))
		for j, u := range tier {
			out[i][j] = unique.Make(u).Value()
		}
	}
	return out
}

// internDir returns the canonical copy of a download folder's path, so
// the thousands of torrents of one folder share its bytes.
func internDir(dir string) string { return unique.Make(dir).Value() }

// annHeap orders scheduled torrents by their next announce.
type annHeap []*torrent

func (h annHeap) Len() int           { return len(h) }
func (h annHeap) Less(i, j int) bool { return h[i].ann.next.Before(h[j].ann.next) }
func (h annHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].ann.slot, h[j].ann.slot = int32(i+1), int32(j+1)
}
func (h *annHeap) Push(x any) {
	t := x.(*torrent)
	t.ann.slot = int32(len(*h) + 1)
	*h = append(*h, t)
}
func (h *annHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.ann.slot = 0
	return t
}

// scheduleAnnounceLocked (re)places t in the schedule at time at; d.mu is
// held. Torrents without trackers are never scheduled.
func (d *Daemon) scheduleAnnounceLocked(t *torrent, at time.Time) {
	if len(t.tiers) == 0 || t.ann.inFlight {
		return
	}
	t.ann.next = at
	if t.ann.slot > 0 {
		heap.Fix(&d.annHeap, int(t.ann.slot-1))
	} else {
		heap.Push(&d.annHeap, t)
	}
	if d.annHeap[0] == t {
		select {
		case d.annKick <- struct{}{}:
		default:
		}
	}
}

// announceStartLocked puts a torrent that starts running (or is parked at
// load) in the schedule: "started" now unless this session already
// announced it; d.mu is held.
func (d *Daemon) announceStartLocked(t *torrent) {
	if t.ann.event == tracker.Stopped {
		t.ann.event = tracker.None // never sent; we are back
	}
	if !t.ann.announced {
		t.ann.event = tracker.Started
		d.scheduleAnnounceLocked(t, time.Now())
		return
	}
	if t.ann.slot == 0 && !t.ann.inFlight {
		d.scheduleAnnounceLocked(t, time.Now())
	}
}

// announceStopLocked takes a torrent that stops (paused, queued, removed,
// failed) out of the schedule, sending "stopped" if a tracker knows us;
// d.mu is held.
func (d *Daemon) announceStopLocked(t *torrent) {
	if !t.ann.announced {
		if t.ann.slot > 0 {
			heap.Remove(&d.annHeap, int(t.ann.slot-1))
		}
		t.ann.event = tracker.None
		return
	}
	t.ann.event = tracker.Stopped
	d.scheduleAnnounceLocked(t, time.Now())
}

// announceCompletedLocked sends "completed" soon; d.mu is held.
func (d *Daemon) announceCompletedLocked(t *torrent) {
	if t.ann.event == tracker.None && t.ann.announced {
		t.ann.event = tracker.Completed
		d.scheduleAnnounceLocked(t, time.Now())
	}
}

// announceJob is one announce, prepared under d.mu.
type announceJob struct {
	t     *torrent
	tiers [][]string
	req   tracker.AnnounceRequest
}

// prepareLocked builds t's next announce; d.mu is held.
func (d *Daemon) prepareLocked(t *torrent) announceJob {
	up, down := t.rec.Uploaded, t.rec.Downloaded
	var left int64
	if t.eng() != nil {
		st := t.eng().LastStats()
		up += st.Uploaded
		down += st.Downloaded
		left = st.Left
	} else if !t.complete {
		left = max(t.sum.wanted-t.sum.completed, 1)
	}
	tiers := make([][]string, len(t.tiers))
	for i, tier := range t.tiers {
		tiers[i] = append([]string(nil), tier...)
	}
	req := tracker.AnnounceRequest{
		InfoHash: t.ih, PeerID: d.peerID, Port: d.ln.Port(),
		Uploaded: up, Downloaded: down, Left: left,
		Event: t.ann.event, NumWant: -1, Key: d.annKey,
	}
	if req.Event == tracker.Stopped {
		req.NumWant = 0
	}
	return announceJob{t: t, tiers: tiers, req: req}
}

// announceLoop runs the schedule until ctx ends, then sends "stopped" for
// every torrent a tracker knows about (bounded by stopAnnounceTimeout).
func (d *Daemon) announceLoop(ctx context.Context) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxAnnounces)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		now := time.Now()
		var due []announceJob
		for len(d.annHeap) > 0 && !d.annHeap[0].ann.next.After(now) && len(due) < maxAnnounces {
			t := heap.Pop(&d.annHeap).(*torrent)
			due = append(due, d.prepareLocked(t))
			t.ann.inFlight = true
		}
		wait := time.Hour
		if len(d.annHeap) > 0 {
			wait = max(time.Until(d.annHeap[0].ann.next), 0)
		}
		d.mu.Unlock()
		for _, j := range due {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				d.announceDone(j, "", nil, ctx.Err())
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				won, resp, err := d.announceTiers(ctx, j.tiers, j.req)
				d.announceDone(j, won, resp, err)
			})
		}
		if len(due) == maxAnnounces {
			wait = 0 // more may be due
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			wg.Wait()
			d.announceShutdown()
			return
		case <-timer.C:
		case <-d.annKick:
		}
	}
}

// announceTiers makes one BEP 12 round: tiers in order, the URLs of a tier
// in order, the first answer wins. It returns the URL that answered.
func (d *Daemon) announceTiers(ctx context.Context, tiers [][]string, req tracker.AnnounceRequest) (string, *tracker.AnnounceResponse, error) {
	var errs []error
	for _, tier := range tiers {
		for _, u := range tier {
			resp, err := d.trackers.Announce(ctx, u, req)
			if err == nil {
				return u, resp, nil
			}
			if ctx.Err() != nil {
				return "", nil, ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return "", nil, errors.New("no trackers")
	}
	return "", nil, errors.Join(errs...)
}

// announceDone records an announce's outcome, schedules the next one and
// hands the peers to the torrent, waking it if it is parked and the swarm
// has leechers to serve.
func (d *Daemon) announceDone(j announceJob, won string, resp *tracker.AnnounceResponse, err error) {
	t := j.t
	d.mu.Lock()
	t.ann.inFlight = false
	gone := d.torrents[t.ih] != t
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			d.log.Warn("tracker announce failed", "torrent", t.rec.Name, "event", j.req.Event.String(), "err", err)
		}
		switch {
		case j.req.Event == tracker.Stopped || gone:
			// A stop is not retried: the tracker drops us by timeout.
			t.ann.announced, t.ann.event = false, tracker.None
		case t.ann.event == tracker.Stopped:
			d.scheduleAnnounceLocked(t, time.Now())
		default:
			t.ann.failures = min(t.ann.failures+1, 30)
			d.scheduleAnnounceLocked(t, time.Now().Add(d.annBackoff(int(t.ann.failures))))
		}
		d.mu.Unlock()
		return
	}
	t.ann.failures = 0
	moveToFront(t.tiers, won)
	if j.req.Event == tracker.Stopped {
		t.ann.announced = false
		if t.ann.event == tracker.Stopped {
			t.ann.event = tracker.None
			d.mu.Unlock()
			return
		}
		// Started again while "stopped" was in flight.
		t.ann.event = tracker.Started
		d.scheduleAnnounceLocked(t, time.Now())
		d.mu.Unlock()
		return
	}
	t.ann.announced = true
	if t.ann.event == j.req.Event {
		t.ann.event = tracker.None
	}
	floor := max(resp.MinInterval, d.annFloor)
	interval := min(max(resp.Interval, floor), announceCap)
	next := time.Now().Add(interval)
	if t.ann.event != tracker.None {
		next = time.Now() // an event queued meanwhile (completed, stopped)
	}
	if !gone || t.ann.event == tracker.Stopped {
		d.scheduleAnnounceLocked(t, next)
	}
	var peers []netip.AddrPort
	for _, p := range resp.Peers {
		peers = append(peers, p.Addr)
	}
	eng := t.eng()
	// Wake a parked seed only for a swarm with leechers (a tracker that
	// gives no counts is trusted to have some): seeds need nothing.
	wake := t.parked() && !gone && len(peers) > 0 && (resp.Incomplete > 0 || resp.Complete == 0)
	d.mu.Unlock()
	switch {
	case eng != nil && len(peers) > 0:
		eng.AddPeers(peers...)
	case wake:
		if eng := d.wakeEngine(t.ih); eng != nil {
			eng.AddPeers(peers...)
		}
	}
}

// moveToFront moves the tracker that answered to the front of its tier
// (BEP 12).
func moveToFront(tiers [][]string, won string) {
	for _, tier := range tiers {
		for i, u := range tier {
			if u == won {
				copy(tier[1:i+1], tier[:i])
				tier[0] = u
				return
			}
		}
	}
}

// annBackoff is the wait after failures consecutive failed rounds:
// announceRetryMin doubling up to announceRetryMax, spread by ±25%.
func (d *Daemon) annBackoff(failures int) time.Duration {
	w := announceRetryMin
	for i := 1; i < failures && w < announceRetryMax; i++ {
		w *= 2
	}
	w = min(w, announceRetryMax)
	return min(time.Duration(float64(w)*(0.75+0.5*rand.Float64())), announceRetryMax)
}

// announceShutdown sends "stopped" for every torrent a tracker knows
// about, a few at a time, within stopAnnounceTimeout overall.
func (d *Daemon) announceShutdown() {
	d.mu.Lock()
	var jobs []announceJob
	for _, t := range d.annHeap {
		if t.ann.announced {
			t.ann.event = tracker.Stopped
			jobs = append(jobs, d.prepareLocked(t))
		}
	}
	d.annHeap = nil
	d.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopAnnounceTimeout)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxAnnounces)
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			d.announceTiers(ctx, j.tiers, j.req)
		})
	}
	wg.Wait()
}
