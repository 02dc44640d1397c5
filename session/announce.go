package session

import (
	"container/heap"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/sowerbt/sower/tracker"
)

// One goroutine with a timer heap announces every swarm of the session to
// its trackers and to the DHT, so a swarm costs no goroutine of its own
// while it waits (a daemon keeps thousands of idle seeds announced).

const (
	// maxJobs bounds the announces and DHT lookups in flight at once.
	maxJobs = 16
	// Back-off after a round in which every tracker failed.
	retryMin = 15 * time.Second
	retryMax = 30 * time.Minute
	// stopTimeout bounds the "stopped" announces sent when the session
	// closes.
	stopTimeout = 5 * time.Second
	// scrapeEvery is the shortest gap between two scrapes of a torrent's
	// trackers (the announce replies carry seeders and leechers; the
	// scrape adds the download count).
	scrapeEvery = 15 * time.Minute
	// DHT timing: a swarm with an engine short of peers is looked up
	// every dhtShort (sooner, backing off from a second, while lookups
	// find nobody: the first ones may run before the node has joined);
	// otherwise every dhtLong, which also renews our announce.
	dhtShort = 30 * time.Second
	// A download with fewer than starvedPeers peers announces again at
	// the tracker's "min interval" (at least eagerMin; eagerNoMin when it
	// gives none), the gap doubling each time, instead of waiting the
	// whole interval: a first announce that returned only dead peers must
	// not leave it idle for half an hour.
	starvedPeers = 5
	eagerMin     = 5 * time.Second
	eagerNoMin   = time.Minute
	dhtLong      = 5 * time.Minute
	dhtIdle      = 15 * time.Minute
)

type jobKind uint8

const (
	jobTracker jobKind = iota
	jobDHT
)

// job is a swarm's place in the schedule for one kind of announce.
type job struct {
	w        *Swarm
	kind     jobKind
	next     time.Time
	slot     int // 1 + index in the heap; 0 when not scheduled
	inFlight bool
}

// annState is a swarm's tracker announce state; guarded by s.mu.
type annState struct {
	event           tracker.Event // to send next: Started until one got through
	announced       bool          // a tracker accepted us: "stopped" is due at the end
	completedSent   bool          // Completed was called
	completedQueued bool          // ... before "started" got through
	again           bool          // Reannounce while one was in flight
	failures        int
	lastOK          time.Time
	minGap          time.Duration
	lastScrape      time.Time
	// eager is the gap of the last early announce while starved (0 when
	// not starved); regular is when the next announce is due by the
	// tracker's interval.
	eager   time.Duration
	regular time.Time
}

// starvedLocked reports whether w's engine downloads with too few peers;
// s.mu is held.
func starvedLocked(w *Swarm) bool {
	if w.eng == nil {
		return false
	}
	st := w.eng.LastStats()
	return st.Peers < starvedPeers && !st.Complete && st.Left > 0
}

// schedule orders jobs by their next run.
type schedule []*job

func (h schedule) Len() int           { return len(h) }
func (h schedule) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h schedule) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].slot, h[j].slot = i+1, j+1
}
func (h *schedule) Push(x any) {
	j := x.(*job)
	j.slot = len(*h) + 1
	*h = append(*h, j)
}
func (h *schedule) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	j.slot = 0
	return j
}

// scheduleLocked (re)places j at time at; s.mu is held. A job in flight is
// rescheduled when it ends.
func (s *Session) scheduleLocked(j *job, at time.Time) {
	if j.inFlight {
		return
	}
	j.next = at
	if j.slot > 0 {
		heap.Fix(&s.sched, j.slot-1)
	} else {
		heap.Push(&s.sched, j)
	}
	if s.sched[0] == j {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Session) unscheduleLocked(j *job) {
	if j.slot > 0 {
		heap.Remove(&s.sched, j.slot-1)
	}
}

// announceLoop runs the schedule until the session closes, then sends
// "stopped" for every swarm a tracker knows about.
func (s *Session) announceLoop() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxJobs)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var due []*job
		for len(s.sched) > 0 && !s.sched[0].next.After(now) && len(due) < maxJobs {
			j := heap.Pop(&s.sched).(*job)
			j.inFlight = true
			due = append(due, j)
		}
		wait := time.Hour
		if len(s.sched) > 0 {
			wait = max(time.Until(s.sched[0].next), 0)
		}
		s.mu.Unlock()
		for _, j := range due {
			select {
			case sem <- struct{}{}:
			case <-s.ctx.Done():
				s.mu.Lock()
				j.inFlight = false
				s.mu.Unlock()
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				s.runJob(j)
			})
		}
		if len(due) == maxJobs {
			wait = 0 // more may be due
		}
		timer.Reset(wait)
		select {
		case <-s.ctx.Done():
			wg.Wait()
			s.stopAll()
			return
		case <-timer.C:
		case <-s.kick:
		}
	}
}

func (s *Session) runJob(j *job) {
	switch j.kind {
	case jobTracker:
		s.announceTrackers(j.w)
	case jobDHT:
		s.announceDHT(j.w)
	}
}

// request builds the swarm's next announce. s.mu must not be held: the
// counters come from the swarm's owner, which may hold its own lock while
// it calls the session.
func (s *Session) request(w *Swarm, ev tracker.Event) tracker.AnnounceRequest {
	s.mu.Lock()
	e := w.eng
	s.mu.Unlock()
	var st tracker.Stats
	switch {
	case w.opts.Stats != nil:
		st = w.opts.Stats()
	case e != nil:
		es := e.LastStats()
		st = tracker.Stats{Uploaded: es.Uploaded, Downloaded: es.Downloaded, Left: es.Left}
	default:
		st = tracker.Stats{Left: 1}
	}
	req := tracker.AnnounceRequest{
		InfoHash: w.ih, PeerID: s.cfg.PeerID, Port: s.port,
		Uploaded: st.Uploaded, Downloaded: st.Downloaded, Left: st.Left,
		Event: ev, NumWant: -1, Key: s.key(),
	}
	if ev == tracker.Stopped {
		req.NumWant = 0
	}
	return req
}

// key is the announce "key" (BEP 7): one per session, so trackers can
// tell us apart from others behind the same address.
func (s *Session) key() uint32 {
	id := s.cfg.PeerID
	return uint32(id[16])<<24 | uint32(id[17])<<16 | uint32(id[18])<<8 | uint32(id[19])
}

// announceTrackers makes one BEP 12 round for w and schedules the next.
func (s *Session) announceTrackers(w *Swarm) {
	s.mu.Lock()
	ev := w.ann.event
	if ev == tracker.None && w.ann.eager > 0 && !w.ann.again && !starvedLocked(w) {
		// An early announce for peers that have come meanwhile: back to
		// the tracker's schedule.
		w.trk.inFlight, w.ann.eager = false, 0
		s.scheduleLocked(&w.trk, w.ann.regular)
		s.mu.Unlock()
		return
	}
	needScrape := time.Since(w.ann.lastScrape) >= scrapeEvery && ev != tracker.Stopped
	s.mu.Unlock()
	req := s.request(w, ev)

	// An announce under way when the session closes may finish (within
	// stopTimeout): cut off, nobody would know whether the tracker got it,
	// and its event would be sent twice or not at all.
	ctx := s.trackerCtx
	won, resp, err := w.tiers.Announce(ctx, s.cfg.Tracker, req, s.log)
	if err == nil {
		s.external.vote("tracker "+won, resp.ExternalIP)
	}
	if err == nil && needScrape {
		if serr := w.tiers.Scrape(ctx, s.cfg.Tracker, w.ih); serr != nil {
			s.log.Debug("tracker: scrape", "err", serr)
		}
	}

	s.mu.Lock()
	w.trk.inFlight = false
	if needScrape {
		w.ann.lastScrape = time.Now()
	}
	if err != nil {
		switch {
		case ev == tracker.Stopped || w.left && !w.ann.announced:
			// A stop is not retried: the tracker drops us by timeout.
			w.ann.announced, w.ann.event = false, tracker.None
			delete(s.leaving, w)
		case ctx.Err() != nil || s.ctx.Err() != nil:
		default:
			w.ann.failures = min(w.ann.failures+1, 30)
			s.scheduleLocked(&w.trk, time.Now().Add(tracker.Backoff(w.ann.failures, s.cfg.AnnounceRetry, retryMax, rand.Float64())))
		}
		s.mu.Unlock()
		if !errors.Is(err, context.Canceled) && ev != tracker.Stopped {
			s.log.Warn("tracker: every tracker failed; backing off", "infohash", hexHash(w.ih), "event", ev.String(), "err", err)
		}
		return
	}
	w.ann.failures = 0
	if ev == tracker.Stopped {
		w.ann.announced, w.ann.event = false, tracker.None
		delete(s.leaving, w)
		s.mu.Unlock()
		return
	}
	now := time.Now()
	w.ann.announced, w.ann.lastOK = true, now
	w.ann.minGap = max(resp.MinInterval, s.cfg.AnnounceFloor)
	if w.ann.event == ev {
		w.ann.event = tracker.None
		if ev == tracker.Started && w.ann.completedQueued {
			w.ann.event = tracker.Completed
		}
	}
	next := now.Add(min(max(resp.Interval, w.ann.minGap), tracker.MaxInterval))
	w.ann.regular = next
	if starvedLocked(w) {
		gap := 2 * w.ann.eager
		if gap == 0 {
			gap = eagerNoMin
			if resp.MinInterval > 0 {
				gap = max(resp.MinInterval, eagerMin)
			}
		}
		w.ann.eager = gap
		next = earlier(next, now.Add(gap))
	} else {
		w.ann.eager = 0
	}
	switch {
	case w.left:
		// Left while this announce was in flight, or after "completed":
		// "stopped" now.
		w.ann.event = tracker.Stopped
		next = now
	case w.ann.event != tracker.None:
		next = now // an event queued meanwhile may go regardless of the interval
	case w.ann.again:
		next = now.Add(w.ann.minGap)
	}
	w.ann.again = false
	s.scheduleLocked(&w.trk, next)
	s.mu.Unlock()

	peers := make([]netip.AddrPort, 0, len(resp.Peers))
	for _, p := range resp.Peers {
		peers = append(peers, p.Addr)
	}
	// Wake an idle seed only for a swarm with leechers (a tracker that
	// gives no counts is trusted to have some): seeds need nothing.
	w.deliver(peers, resp.Incomplete > 0 || resp.Complete == 0)
}

// announceDHT looks w up in the DHT, hands over the peers found, announces
// us, and schedules the next round.
func (s *Session) announceDHT(w *Swarm) {
	found := 0
	ch, err := s.dht.GetPeers(s.ctx, w.ih)
	if err != nil {
		s.log.Debug("DHT lookup", "err", err)
	} else {
		var batch []netip.AddrPort
		for a := range ch {
			found++
			batch = append(batch, a)
			if len(batch) == 32 {
				w.deliver(batch, true)
				batch = nil
			}
		}
		w.deliver(batch, true)
	}
	if s.ctx.Err() == nil {
		if err := s.dht.Announce(s.ctx, w.ih, s.port, false); err != nil {
			s.log.Debug("DHT announce", "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.dht.inFlight = false
	if w.left || s.ctx.Err() != nil {
		return
	}
	wait := dhtIdle
	switch {
	case w.sink != nil:
		// Fetching metadata: every peer counts.
		wait, w.dhtTry = w.dhtTry, min(2*w.dhtTry, dhtShort)
	case w.eng != nil:
		wait = dhtLong
		if st := w.eng.LastStats(); st.Peers < 5 && !st.Complete {
			wait = dhtShort
			if found == 0 {
				wait, w.dhtTry = w.dhtTry, min(2*w.dhtTry, dhtShort)
			} else {
				w.dhtTry = time.Second
			}
		}
	}
	s.scheduleLocked(&w.dht, time.Now().Add(wait))
}

// stopAll sends "stopped" for every swarm a tracker knows about, a few at
// a time, within stopTimeout overall.
func (s *Session) stopAll() {
	s.mu.Lock()
	var stop []*Swarm
	seen := make(map[*Swarm]bool)
	completed := make(map[*Swarm]bool)
	add := func(w *Swarm) {
		if seen[w] || !w.ann.announced {
			return
		}
		seen[w] = true
		stop = append(stop, w)
		completed[w] = w.ann.event == tracker.Completed
		w.ann.announced = false
	}
	for _, w := range s.swarms {
		add(w)
	}
	for w := range s.leaving {
		add(w) // swarms that left with "stopped" still due
	}
	clear(s.leaving)
	s.sched = nil
	s.mu.Unlock()
	if len(stop) == 0 {
		return
	}
	// A "completed" not yet sent goes before the swarm's "stopped".
	reqs := make([][]tracker.AnnounceRequest, len(stop))
	tiers := make([]*tracker.Tiers, len(stop))
	for i, w := range stop {
		if completed[w] {
			reqs[i] = append(reqs[i], s.request(w, tracker.Completed))
		}
		reqs[i], tiers[i] = append(reqs[i], s.request(w, tracker.Stopped)), w.tiers
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxJobs)
	for i := range reqs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, req := range reqs[i] {
				if _, _, err := tiers[i].Announce(ctx, s.cfg.Tracker, req, nil); err != nil {
					s.log.Debug("tracker: announce at close failed", "event", req.Event.String(), "err", err)
				}
			}
		})
	}
	wg.Wait()
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
