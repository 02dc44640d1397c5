package webseed

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestBackoffExponential(t *testing.T) {
	b := NewBackoff(BackoffConfig{Base: time.Second, Max: 10 * time.Second, MaxPoison: 2})
	now := time.Unix(1_000_000, 0)
	if !b.Ready(now) {
		t.Fatal("new Backoff not ready")
	}
	fail := errors.New("boom")
	want := []time.Duration{1, 2, 4, 8, 10, 10}
	for i, w := range want {
		w *= time.Second
		if got := b.Failure(now, fail); got != w {
			t.Fatalf("failure %d: wait %v, want %v", i+1, got, w)
		}
		if b.Ready(now.Add(w-time.Nanosecond)) || !b.Ready(now.Add(w)) {
			t.Fatalf("failure %d: ready before %v or not after", i+1, w)
		}
		if !b.Until().Equal(now.Add(w)) {
			t.Fatalf("failure %d: Until %v, want %v", i+1, b.Until(), now.Add(w))
		}
		now = now.Add(w)
	}
	b.Success()
	if got := b.Failure(now, fail); got != time.Second {
		t.Errorf("after Success: wait %v, want the base 1s again", got)
	}
}

func TestBackoffManyFailuresDoNotOverflow(t *testing.T) {
	b := NewBackoff(BackoffConfig{Base: time.Nanosecond, Max: time.Duration(1<<63 - 1)})
	now := time.Unix(0, 0)
	for range 200 {
		if d := b.Failure(now, errors.New("x")); d <= 0 {
			t.Fatalf("wait %v after many failures", d)
		}
	}
}

func TestBackoffRetryAfter(t *testing.T) {
	b := NewBackoff(BackoffConfig{Base: time.Second, Max: time.Minute})
	now := time.Unix(1_000_000, 0)
	busy := &RetryAfterError{URL: "u", Status: 503, After: 45 * time.Second}
	if got := b.Failure(now, busy); got != 45*time.Second {
		t.Errorf("retry-after wait %v, want 45s", got)
	}
	// Busy answers do not count as failures: the next failure waits Base.
	if got := b.Failure(now, errors.New("x")); got != time.Second {
		t.Errorf("failure after busy: wait %v, want 1s", got)
	}
	// A shorter wait does not cut a longer one short.
	if b.Ready(now.Add(44 * time.Second)) {
		t.Error("ready before the server's retry-after")
	}
	// A wrapped RetryAfterError counts too.
	b2 := NewBackoff(BackoffConfig{})
	if got := b2.Failure(now, errors.Join(errors.New("ctx"), busy)); got != 45*time.Second {
		t.Errorf("wrapped retry-after: wait %v", got)
	}
}

func TestBackoffPoisoned(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := NewBackoff(BackoffConfig{})
	if !b.Poisoned(now) || !b.Dropped() || b.Ready(now.Add(time.Hour)) {
		t.Error("default: one bad piece should drop the source (BEP 19)")
	}
	b = NewBackoff(BackoffConfig{Base: time.Second, MaxPoison: 3})
	if b.Poisoned(now) || b.Dropped() {
		t.Fatal("dropped after 1 of 3 bad pieces")
	}
	if b.Ready(now) || !b.Ready(now.Add(time.Second)) {
		t.Error("a bad piece should back the source off for Base")
	}
	if b.Poisoned(now) || !b.Poisoned(now) || !b.Dropped() {
		t.Error("not dropped after 3 of 3 bad pieces")
	}
	b.Success()
	if b.Ready(now.Add(24 * time.Hour)) {
		t.Error("a dropped source came back after Success")
	}
}

func TestBackoffConcurrent(t *testing.T) {
	b := NewBackoff(BackoffConfig{MaxPoison: 1000})
	now := time.Unix(0, 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Failure(now, errors.New("x"))
				b.Success()
				b.Ready(now)
				b.Poisoned(now)
			}
		})
	}
	wg.Wait()
	if b.Dropped() != false {
		t.Error("800 of 1000 bad pieces dropped the source")
	}
}

func TestErrorAndKindText(t *testing.T) {
	ra := &RetryAfterError{URL: "http://h/s", Status: 503, After: 30 * time.Second}
	if got, want := ra.Error(), "webseed: http://h/s: busy (HTTP 503), retry after 30s"; got != want {
		t.Errorf("RetryAfterError.Error() = %q, want %q", got, want)
	}
	he := &HTTPError{URL: "http://h/f", Status: 404}
	if got, want := he.Error(), "webseed: http://h/f: HTTP 404 Not Found"; got != want {
		t.Errorf("HTTPError.Error() = %q, want %q", got, want)
	}
	for k, want := range map[Kind]string{URLList: "url-list", HTTPSeed: "httpseed", 7: "Kind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
