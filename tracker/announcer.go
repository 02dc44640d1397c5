package tracker

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
)

// Stats are the transfer counters reported in each announce.
type Stats struct{ Uploaded, Downloaded, Left int64 }

// Default timing of an Announcer; see the fields of the same meaning.
const (
	DefaultRetryMin      = 15 * time.Second
	DefaultRetryMax      = 30 * time.Minute
	DefaultIntervalFloor = time.Minute
	DefaultStopTimeout   = 5 * time.Second
	// maxAnnounceInterval caps a tracker's interval so a bogus huge value
	// cannot silence announces for the whole session.
	maxAnnounceInterval = 3 * time.Hour
)

// Announcer keeps one torrent announced to the trackers of its
// announce-list, following BEP 12: tiers are tried in order, the URLs of a
// tier in a once-shuffled order, and a tracker that answers moves to the
// front of its tier. Create it with NewAnnouncer, adjust the exported
// fields if needed, then call Run once.
type Announcer struct {
	// RetryMin and RetryMax bound the exponential back-off after an
	// announce round in which every tracker failed.
	RetryMin, RetryMax time.Duration
	// IntervalFloor is the shortest re-announce interval honoured whatever
	// the tracker says, and the minimum gap for AnnounceNow when the
	// tracker gives no "min interval".
	IntervalFloor time.Duration
	// StopTimeout bounds the "stopped" announce made when Run's context
	// ends.
	StopTimeout time.Duration
	// NumWant is the number of peers asked for; negative lets the tracker
	// decide.
	NumWant int

	client   *Client
	tiers    [][]string
	infoHash [20]byte
	peerID   [20]byte
	port     uint16
	key      uint32
	log      *slog.Logger

	// trackerIDs remembers each tracker's "tracker id" to echo back.
	trackerIDs map[string]string
	completed  chan struct{}
	early      chan struct{}

	// shuffle and jitter are randomness sources, replaced by tests.
	shuffle func(n int, swap func(i, j int))
	jitter  func() float64
}

// NewAnnouncer prepares announces of the torrent infoHash, as peer peerID
// listening on port, to the given announce-list tiers (a single-tracker
// torrent is one tier of one URL). Empty URLs and tiers are dropped. A nil
// logger discards messages.
func NewAnnouncer(c *Client, tiers [][]string, infoHash, peerID [20]byte, port uint16, logger *slog.Logger) *Announcer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var own [][]string
	for _, tier := range tiers {
		var t []string
		for _, u := range tier {
			if u = strings.TrimSpace(u); u != "" {
				t = append(t, u)
			}
		}
		if len(t) > 0 {
			own = append(own, t)
		}
	}
	return &Announcer{
		RetryMin:      DefaultRetryMin,
		RetryMax:      DefaultRetryMax,
		IntervalFloor: DefaultIntervalFloor,
		StopTimeout:   DefaultStopTimeout,
		NumWant:       -1,
		client:        c,
		tiers:         own,
		infoHash:      infoHash,
		peerID:        peerID,
		port:          port,
		key:           rand.Uint32(),
		log:           logger.With("infohash", hex.EncodeToString(infoHash[:])),
		trackerIDs:    make(map[string]string),
		completed:     make(chan struct{}, 1),
		early:         make(chan struct{}, 1),
		shuffle:       rand.Shuffle,
		jitter:        rand.Float64,
	}
}

// Completed reports that the download has just finished, so the trackers
// get a "completed" event. Only the first call has an effect; it never
// blocks. Do not call it for a torrent that was already complete when Run
// started: BEP 3 sends no "completed" then.
func (a *Announcer) Completed() {
	select {
	case a.completed <- struct{}{}:
	default:
	}
}

// AnnounceNow asks for an announce before the interval is up, for example
// when the engine is short of peers. It is honoured no earlier than the
// tracker's minimum interval after the last successful announce, and not
// while backing off after failures. It never blocks.
func (a *Announcer) AnnounceNow() {
	select {
	case a.early <- struct{}{}:
	default:
	}
}

// Run announces "started" at once, then re-announces every interval,
// sending each non-empty peer list on peers (nil peers discards them).
// stats, if not nil, is called for the counters of each announce. When ctx
// ends, Run sends "stopped" (bounded by StopTimeout) if any announce got
// through, and returns. Tracker failures are logged and retried with
// back-off; they never end Run. The receiver should drain peers promptly:
// Run waits for it, which delays the next announce.
func (a *Announcer) Run(ctx context.Context, stats func() Stats, peers chan<- []Peer) {
	if len(a.tiers) == 0 {
		a.log.Warn("tracker: torrent has no trackers; not announcing")
		<-ctx.Done()
		return
	}
	if a.RetryMin <= 0 {
		a.RetryMin = DefaultRetryMin
	}
	if a.RetryMax < a.RetryMin {
		a.RetryMax = a.RetryMin
	}
	if a.StopTimeout <= 0 {
		a.StopTimeout = DefaultStopTimeout
	}
	for _, tier := range a.tiers {
		a.shuffle(len(tier), func(i, j int) { tier[i], tier[j] = tier[j], tier[i] })
	}
	var (
		event          = Started
		anyOK          bool // some tracker knows about us
		completeQueued bool // Completed arrived before "started" got through
		completedSeen  bool
		failures       int
		lastOK         time.Time
		minGap         time.Duration
		next           = time.Now()
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-ctx.Done():
			if anyOK {
				a.stop(ctx, stats)
			}
			return
		case <-a.completed:
			if completedSeen {
				continue
			}
			completedSeen = true
			if event == Started {
				completeQueued = true
				continue
			}
			event = Completed
			if failures == 0 {
				// An event may be sent regardless of the interval.
				next = time.Now()
			}
			continue
		case <-a.early:
			if failures > 0 || lastOK.IsZero() {
				continue
			}
			earliest := lastOK.Add(minGap)
			if now := time.Now(); earliest.Before(now) {
				earliest = now
			}
			if earliest.Before(next) {
				next = earliest
			}
			continue
		case <-timer.C:
		}

		req := a.request(event, stats)
		resp, err := a.announceTiers(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				continue // the select above sends "stopped"
			}
			failures++
			wait := a.backoff(failures)
			a.log.Warn("tracker: every tracker failed; backing off",
				"event", eventName(event), "failures", failures, "retry_in", wait, "err", err)
			next = time.Now().Add(wait)
			continue
		}
		failures = 0
		anyOK = true
		lastOK = time.Now()
		minGap = max(resp.MinInterval, a.IntervalFloor)
		interval := min(max(resp.Interval, minGap), maxAnnounceInterval)
		next = lastOK.Add(interval)
		switch {
		case event == Started && completeQueued:
			event = Completed
			next = lastOK
		default:
			event = None
		}
		if len(resp.Peers) > 0 && peers != nil {
			select {
			case peers <- resp.Peers:
			case <-ctx.Done():
			}
		}
	}
}

// request builds an announce with the current counters.
func (a *Announcer) request(ev Event, stats func() Stats) AnnounceRequest {
	var s Stats
	if stats != nil {
		s = stats()
	}
	return AnnounceRequest{
		InfoHash:   a.infoHash,
		PeerID:     a.peerID,
		Port:       a.port,
		Uploaded:   s.Uploaded,
		Downloaded: s.Downloaded,
		Left:       s.Left,
		Event:      ev,
		NumWant:    a.NumWant,
		Key:        a.key,
	}
}

// announceTiers makes one BEP 12 announce round: the first tracker to
// answer wins and moves to the front of its tier. The error joins every
// tracker's failure.
func (a *Announcer) announceTiers(ctx context.Context, req AnnounceRequest) (*AnnounceResponse, error) {
	var errs []error
	for _, tier := range a.tiers {
		for i, u := range tier {
			req.TrackerID = a.trackerIDs[u]
			resp, err := a.client.Announce(ctx, u, req)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				a.log.Warn("tracker: announce failed", "tracker", hostOf(u), "event", eventName(req.Event), "err", err)
				errs = append(errs, err)
				continue
			}
			if resp.Warning != "" {
				a.log.Warn("tracker: warning from tracker", "tracker", hostOf(u), "warning", resp.Warning)
			}
			if resp.TrackerID != "" {
				a.trackerIDs[u] = resp.TrackerID
			}
			copy(tier[1:i+1], tier[:i])
			tier[0] = u
			a.log.Debug("tracker: announced", "tracker", hostOf(u), "event", eventName(req.Event),
				"peers", len(resp.Peers), "interval", resp.Interval)
			return resp, nil
		}
	}
	return nil, errors.Join(errs...)
}

// stop sends "stopped" so the trackers drop us from the swarm at once
// rather than after a timeout. ctx is already done, so a fresh bounded
// context carries the request.
func (a *Announcer) stop(ctx context.Context, stats func() Stats) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.StopTimeout)
	defer cancel()
	req := a.request(Stopped, stats)
	req.NumWant = 0
	if _, err := a.announceTiers(sctx, req); err != nil {
		a.log.Warn("tracker: stopped announce failed", "err", err)
	}
}

// backoff is the wait after the given number of consecutive failed rounds:
// RetryMin doubling up to RetryMax, spread by ±25% so that many clients
// failing together do not retry in lockstep.
func (a *Announcer) backoff(failures int) time.Duration {
	d := a.RetryMin
	for i := 1; i < failures && d < a.RetryMax; i++ {
		d *= 2
	}
	d = min(d, a.RetryMax)
	j := time.Duration(float64(d) * (0.75 + 0.5*a.jitter()))
	return min(j, a.RetryMax)
}

func eventName(e Event) string {
	if e == None {
		return "none"
	}
	return e.String()
}
