package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// MaxInterval caps a tracker's interval so a bogus huge value cannot
// silence a torrent for the whole session.
const MaxInterval = 3 * time.Hour

// Tiers is one torrent's announce-list and what its trackers said, kept by
// the rules of BEP 12: tiers are tried in order, the URLs of a tier in a
// once-shuffled order, and a tracker that answers moves to the front of
// its tier. It remembers each tracker's "tracker id" (echoed back), its
// warning, its last result and its counts, for display.
//
// Tiers is safe for concurrent use, but one torrent should have at most
// one Announce round in flight: the order a round sees is the order the
// previous round left.
type Tiers struct {
	mu    sync.Mutex
	tiers [][]*Status // each tier in its current order
}

// Status is what Sower knows of one tracker of a torrent.
type Status struct {
	URL  string `json:"url"`
	Tier int    `json:"tier"`

	// TrackerID is the tracker's "tracker id", sent back in announces.
	TrackerID string `json:"tracker_id,omitempty"`
	// LastAnnounce is when the last announce to this tracker ended (zero
	// if none was tried); LastResult is "Success", the tracker's failure
	// reason or the error; LastOK tells them apart.
	LastAnnounce time.Time `json:"last_announce,omitzero"`
	LastResult   string    `json:"last_result,omitempty"`
	LastOK       bool      `json:"last_ok"`
	// Warning is the tracker's last "warning message".
	Warning string `json:"warning,omitempty"`
	// Seeders and Leechers are the counts of the last announce or scrape
	// (-1 when unknown); Downloaded comes from scrapes only (-1 unknown).
	Seeders    int `json:"seeders"`
	Leechers   int `json:"leechers"`
	Downloaded int `json:"downloaded"`
	// LastScrape is when the last scrape of this tracker ended; ScrapeResult
	// its outcome.
	LastScrape   time.Time `json:"last_scrape,omitzero"`
	ScrapeResult string    `json:"scrape_result,omitempty"`
	// Peers is the number of peers the last successful announce returned.
	Peers int `json:"peers"`
}

// NewTiers keeps tiers (a single-tracker torrent is one tier of one URL),
// each tier shuffled once. Empty URLs, duplicates and empty tiers are
// dropped.
func NewTiers(tiers [][]string) *Tiers {
	t := &Tiers{}
	t.set(tiers, rand.Shuffle)
	return t
}

func (t *Tiers) set(tiers [][]string, shuffle func(n int, swap func(i, j int))) {
	seen := make(map[string]bool)
	var out [][]*Status
	for _, tier := range tiers {
		var st []*Status
		for _, u := range tier {
			u = strings.TrimSpace(u)
			if u == "" || seen[u] {
				continue
			}
			seen[u] = true
			st = append(st, &Status{URL: u, Tier: len(out), Seeders: -1, Leechers: -1, Downloaded: -1})
		}
		if len(st) > 0 {
			shuffle(len(st), func(i, j int) { st[i], st[j] = st[j], st[i] })
			out = append(out, st)
		}
	}
	t.tiers = out
}

// Replace sets a new announce-list. What was learned about a tracker that
// stays is kept.
func (t *Tiers) Replace(tiers [][]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := make(map[string]*Status)
	for _, tier := range t.tiers {
		for _, s := range tier {
			old[s.URL] = s
		}
	}
	t.set(tiers, rand.Shuffle)
	for i, tier := range t.tiers {
		for j, s := range tier {
			if o := old[s.URL]; o != nil {
				o.Tier = i
				tier[j] = o
			}
		}
	}
}

// Len is the number of trackers.
func (t *Tiers) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, tier := range t.tiers {
		n += len(tier)
	}
	return n
}

// List returns the announce-list in its current order.
func (t *Tiers) List() [][]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([][]string, len(t.tiers))
	for i, tier := range t.tiers {
		for _, s := range tier {
			out[i] = append(out[i], s.URL)
		}
	}
	return out
}

// Statuses returns a copy of what is known of every tracker, tier by tier.
func (t *Tiers) Statuses() []Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Status
	for _, tier := range t.tiers {
		for _, s := range tier {
			out = append(out, *s)
		}
	}
	return out
}

// Announce makes one BEP 12 announce round with req: tiers in order, the
// URLs of a tier in order, the first answer wins and its tracker moves to
// the front of its tier. It returns the URL that answered; the error joins
// every tracker's failure. req.TrackerID is filled in per tracker.
func (t *Tiers) Announce(ctx context.Context, c *Client, req AnnounceRequest, log *slog.Logger) (string, *AnnounceResponse, error) {
	t.mu.Lock()
	order := make([]*Status, 0, 4)
	for _, tier := range t.tiers {
		order = append(order, tier...)
	}
	t.mu.Unlock()
	if len(order) == 0 {
		return "", nil, errors.New("tracker: no trackers")
	}
	var errs []error
	for _, s := range order {
		t.mu.Lock()
		req.TrackerID = s.TrackerID
		t.mu.Unlock()
		resp, err := c.Announce(ctx, s.URL, req)
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return "", nil, ctx.Err()
			}
			t.mu.Lock()
			s.LastAnnounce, s.LastOK, s.LastResult = now, false, err.Error()
			t.mu.Unlock()
			if log != nil {
				log.Warn("tracker: announce failed", "tracker", hostOf(s.URL), "event", eventName(req.Event), "err", err)
			}
			errs = append(errs, err)
			continue
		}
		t.mu.Lock()
		s.LastAnnounce, s.LastOK, s.LastResult = now, true, "Success"
		s.Warning, s.Peers = resp.Warning, len(resp.Peers)
		if resp.TrackerID != "" {
			s.TrackerID = resp.TrackerID
		}
		if resp.Complete > 0 || resp.Incomplete > 0 || s.Seeders < 0 {
			s.Seeders, s.Leechers = resp.Complete, resp.Incomplete
		}
		t.toFront(s)
		t.mu.Unlock()
		if log != nil {
			if resp.Warning != "" {
				log.Warn("tracker: warning from tracker", "tracker", hostOf(s.URL), "warning", resp.Warning)
			}
			log.Debug("tracker: announced", "tracker", hostOf(s.URL), "event", eventName(req.Event),
				"peers", len(resp.Peers), "interval", resp.Interval)
		}
		return s.URL, resp, nil
	}
	return "", nil, errors.Join(errs...)
}

// toFront moves s to the front of its tier; t.mu is held.
func (t *Tiers) toFront(s *Status) {
	for _, tier := range t.tiers {
		for i, x := range tier {
			if x == s {
				copy(tier[1:i+1], tier[:i])
				tier[0] = s
				return
			}
		}
	}
}

// Scrape asks the first tracker of every tier for the torrent's counts
// and records them. It returns the first error if no tracker answered.
func (t *Tiers) Scrape(ctx context.Context, c *Client, infoHash [20]byte) error {
	t.mu.Lock()
	var first []*Status
	for _, tier := range t.tiers {
		first = append(first, tier[0])
	}
	t.mu.Unlock()
	var errs []error
	ok := false
	for _, s := range first {
		res, err := c.Scrape(ctx, s.URL, [][20]byte{infoHash})
		now := time.Now()
		t.mu.Lock()
		s.LastScrape = now
		switch st, found := res[infoHash]; {
		case err != nil:
			s.ScrapeResult = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", hostOf(s.URL), err))
		case !found:
			s.ScrapeResult = "torrent not known to the tracker"
		default:
			ok = true
			s.ScrapeResult = "Success"
			s.Seeders, s.Leechers, s.Downloaded = st.Complete, st.Incomplete, st.Downloaded
		}
		t.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if ok || len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

// Backoff is the wait after failures consecutive failed rounds: min
// doubling up to max, spread by ±25% so that many clients failing together
// do not retry in lockstep.
func Backoff(failures int, lo, hi time.Duration, jitter float64) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return min(time.Duration(float64(d)*(0.75+0.5*jitter)), hi)
}

func eventName(e Event) string {
	if e == None {
		return "none"
	}
	return e.String()
}

// Stats are the transfer counters reported in an announce.
type Stats struct{ Uploaded, Downloaded, Left int64 }
