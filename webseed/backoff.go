package webseed

import (
	"errors"
	"sync"
	"time"
)

// Defaults for zero BackoffConfig fields.
const (
	DefaultBackoffBase = 2 * time.Second
	DefaultBackoffMax  = 5 * time.Minute
	DefaultMaxPoison   = 1
)

// BackoffConfig tunes a Backoff. The zero value is usable.
type BackoffConfig struct {
	// Base is the wait after the first failure; each further failure in a
	// row doubles it (default DefaultBackoffBase).
	Base time.Duration
	// Max caps the wait (default DefaultBackoffMax).
	Max time.Duration
	// MaxPoison is how many bad pieces a source may serve before it is
	// dropped for good (default DefaultMaxPoison: BEP 19 says a URL that
	// served data failing its hash check should be discarded).
	MaxPoison int
}

// Backoff is the engine's record of one web seed's health: when it may be
// used again after failures, and whether it has been dropped for serving
// bad data. Failures in a row back it off exponentially, up to a cap; a
// busy answer (*RetryAfterError) waits what the server asked without
// counting as a failure, since BEP 19 says not to give up on a busy
// server. It is safe for concurrent use; times are passed in, so it never
// reads the clock itself.
type Backoff struct {
	cfg BackoffConfig

	mu       sync.Mutex
	failures int // in a row, since the last success
	poisoned int
	until    time.Time
}

// NewBackoff returns a Backoff for a source that is ready now.
func NewBackoff(cfg BackoffConfig) *Backoff {
	if cfg.Base <= 0 {
		cfg.Base = DefaultBackoffBase
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultBackoffMax
	}
	if cfg.Max < cfg.Base {
		cfg.Max = cfg.Base
	}
	if cfg.MaxPoison <= 0 {
		cfg.MaxPoison = DefaultMaxPoison
	}
	return &Backoff{cfg: cfg}
}

// Ready reports whether the source may be asked for data at now: it is
// not dropped and not backing off.
func (b *Backoff) Ready(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.poisoned < b.cfg.MaxPoison && !now.Before(b.until)
}

// Until returns when the current back-off ends (the zero time if none).
func (b *Backoff) Until() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.until
}

// Success records a request that delivered data, ending the run of
// failures.
func (b *Backoff) Success() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
}

// Failure records a failed Fetch at now and returns how long the source
// now rests. A *RetryAfterError rests it for the time the server asked;
// any other error doubles the wait of the previous failure in a row, from
// Base up to Max. Errors of a cancelled context are the caller's doing
// and should not be passed in.
func (b *Backoff) Failure(now time.Time, err error) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var wait time.Duration
	if ra, ok := errors.AsType[*RetryAfterError](err); ok {
		wait = ra.After
	} else {
		wait = b.cfg.Base
		for i := 0; i < b.failures && wait < b.cfg.Max; i++ {
			if wait > b.cfg.Max/2 { // also keeps the doubling from overflowing
				wait = b.cfg.Max
				break
			}
			wait *= 2
		}
		wait = min(wait, b.cfg.Max)
		b.failures++
	}
	if end := now.Add(wait); end.After(b.until) {
		b.until = end
	}
	return wait
}

// Poisoned records a piece from this source that failed its hash check,
// and reports whether the source is now dropped for good. A source that is
// not yet dropped is also backed off as for a failure.
func (b *Backoff) Poisoned(now time.Time) (dropped bool) {
	b.mu.Lock()
	b.poisoned++
	dropped = b.poisoned >= b.cfg.MaxPoison
	b.mu.Unlock()
	if !dropped {
		b.Failure(now, errors.New("webseed: bad piece"))
	}
	return dropped
}

// Dropped reports whether the source served too many bad pieces to be used
// again.
func (b *Backoff) Dropped() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.poisoned >= b.cfg.MaxPoison
}
