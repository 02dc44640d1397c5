package tracker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// announceLog is a test tracker that records each announce's event and
// answers with a fixed interval and one peer, or fails while failN > 0.
type announceLog struct {
	mu       sync.Mutex
	events   []string
	lefts    []string
	failN    int
	interval int
	minIntvl int
	ch       chan string
}

func newAnnounceLog(interval int) *announceLog {
	return &announceLog{interval: interval, ch: make(chan string, 100)}
}

func (l *announceLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev := r.URL.Query().Get("event")
	if ev == "" {
		ev = "none"
	}
	l.mu.Lock()
	fail := l.failN > 0
	if fail {
		l.failN--
		ev = "failed:" + ev
	}
	l.events = append(l.events, ev)
	l.lefts = append(l.lefts, r.URL.Query().Get("left"))
	body := fmt.Sprintf("d8:intervali%de12:min intervali%de5:peers6:\x7f\x00\x00\x02\x1a\xe1e", l.interval, l.minIntvl)
	l.mu.Unlock()
	select {
	case l.ch <- ev:
	default:
	}
	if fail {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprint(w, body)
}

func (l *announceLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events)
}

func (l *announceLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// waitEvent returns the next announce event seen by the tracker, failing
// the test if none arrives within a generous bound.
func (l *announceLog) waitEvent(t *testing.T) string {
	t.Helper()
	select {
	case ev := <-l.ch:
		return ev
	case <-time.After(15 * time.Second):
		t.Fatalf("no announce arrived; so far %v", l.snapshot())
		return ""
	}
}

// testAnnouncer returns an announcer with deterministic tier order and
// jitter and timings suited to tests.
func testAnnouncer(tiers [][]string) *Announcer {
	a := NewAnnouncer(&Client{HTTPTimeout: 5 * time.Second}, tiers, [20]byte{0xaa}, [20]byte{0xbb}, 6881, nil)
	a.shuffle = func(int, func(int, int)) {}
	a.jitter = func() float64 { return 0.5 }
	a.RetryMin, a.RetryMax = 20*time.Millisecond, 80*time.Millisecond
	a.IntervalFloor = 0
	return a
}

// runAnnouncer starts Run and returns a function that stops it and waits
// for it to return.
func runAnnouncer(t *testing.T, a *Announcer, stats func() Stats, peers chan []Peer) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx, stats, peers)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestAnnouncerLifecycle(t *testing.T) {
	log := newAnnounceLog(1)
	srv := httptest.NewServer(log)
	defer srv.Close()
	a := testAnnouncer([][]string{{srv.URL + "/announce"}})
	var mu sync.Mutex
	left := int64(1000)
	stats := func() Stats {
		mu.Lock()
		defer mu.Unlock()
		return Stats{Left: left}
	}
	peers := make(chan []Peer, 10)
	stop := runAnnouncer(t, a, stats, peers)

	if ev := log.waitEvent(t); ev != "started" {
		t.Fatalf("first announce %q, want started", ev)
	}
	select {
	case ps := <-peers:
		if len(ps) != 1 || ps[0].Addr.String() != "127.0.0.2:6881" {
			t.Errorf("peers %v", ps)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no peers delivered")
	}
	if ev := log.waitEvent(t); ev != "none" {
		t.Fatalf("second announce %q, want a regular one", ev)
	}
	mu.Lock()
	left = 0
	mu.Unlock()
	a.Completed()
	for {
		ev := log.waitEvent(t)
		if ev == "completed" {
			break
		}
		if ev != "none" {
			t.Fatalf("announce %q while waiting for completed", ev)
		}
	}
	a.Completed() // a second call must not produce another event
	stop()
	evs := log.snapshot()
	if evs[len(evs)-1] != "stopped" {
		t.Fatalf("events %v do not end with stopped", evs)
	}
	n := 0
	for _, e := range evs {
		if e == "completed" {
			n++
		}
	}
	if n != 1 || evs[0] != "started" {
		t.Errorf("events %v: want one started first and exactly one completed", evs)
	}
	log.mu.Lock()
	if l := log.lefts[len(log.lefts)-1]; l != "0" {
		t.Errorf("stopped announce left=%s, want 0 from stats", l)
	}
	if l := log.lefts[0]; l != "1000" {
		t.Errorf("started announce left=%s, want 1000", l)
	}
	log.mu.Unlock()
}

func TestAnnouncerAnnounceNow(t *testing.T) {
	log := newAnnounceLog(3600)
	srv := httptest.NewServer(log)
	defer srv.Close()
	a := testAnnouncer([][]string{{srv.URL + "/announce"}})
	runAnnouncer(t, a, nil, nil)
	if ev := log.waitEvent(t); ev != "started" {
		t.Fatalf("first announce %q", ev)
	}
	// The started announce may still be in progress; AnnounceNow before a
	// success is ignored, so retry until the early announce shows up.
	deadline := time.After(15 * time.Second)
	for log.count() < 2 {
		a.AnnounceNow()
		select {
		case <-deadline:
			t.Fatal("AnnounceNow had no effect")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if evs := log.snapshot(); evs[1] != "none" {
		t.Errorf("events %v", evs)
	}
}

// deadURL returns an http URL on which nothing listens.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/announce"
}

func TestAnnouncerTierFallback(t *testing.T) {
	bad := newAnnounceLog(1)
	bad.failN = 1 << 30
	badSrv := httptest.NewServer(bad)
	defer badSrv.Close()
	good := newAnnounceLog(1)
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()

	a := testAnnouncer([][]string{{badSrv.URL + "/announce", goodSrv.URL + "/announce"}})
	stop := runAnnouncer(t, a, nil, nil)
	if ev := good.waitEvent(t); ev != "started" {
		t.Fatalf("good tracker first saw %q", ev)
	}
	if ev := good.waitEvent(t); ev != "none" {
		t.Fatalf("good tracker then saw %q", ev)
	}
	stop()
	// Only the first round tried the failing tracker: after the good one
	// answered it moved to the front of the tier.
	if evs := bad.snapshot(); len(evs) != 1 || evs[0] != "failed:started" {
		t.Errorf("failing tracker saw %v, want a single started", evs)
	}
	if evs := good.snapshot(); evs[len(evs)-1] != "stopped" {
		t.Errorf("good tracker saw %v, want stopped last", evs)
	}
}

func TestAnnouncerNextTier(t *testing.T) {
	good := newAnnounceLog(1)
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()
	dead := deadURL(t)
	a := testAnnouncer([][]string{{dead}, {goodSrv.URL + "/announce"}})
	stop := runAnnouncer(t, a, nil, nil)
	if ev := good.waitEvent(t); ev != "started" {
		t.Fatalf("backup tier first saw %q", ev)
	}
	if ev := good.waitEvent(t); ev != "none" {
		t.Fatalf("backup tier then saw %q", ev)
	}
	stop()
	// Tiers keep their order (BEP 12), so the dead first tier was retried
	// each round; the structure is unchanged.
	if a.tiers[0][0] != dead || a.tiers[1][0] != goodSrv.URL+"/announce" {
		t.Errorf("tiers reordered: %v", a.tiers)
	}
}

func TestAnnouncerBackoffRecovers(t *testing.T) {
	log := newAnnounceLog(3600)
	log.failN = 3
	srv := httptest.NewServer(log)
	defer srv.Close()
	a := testAnnouncer([][]string{{srv.URL + "/announce"}})
	peers := make(chan []Peer, 1)
	runAnnouncer(t, a, nil, peers)
	want := []string{"failed:started", "failed:started", "failed:started", "started"}
	for i, w := range want {
		if ev := log.waitEvent(t); ev != w {
			t.Fatalf("announce %d = %q, want %q (started is repeated until it gets through)", i, ev, w)
		}
	}
	select {
	case <-peers:
	case <-time.After(15 * time.Second):
		t.Fatal("no peers after recovery")
	}
}

func TestBackoffSchedule(t *testing.T) {
	a := NewAnnouncer(&Client{}, nil, [20]byte{}, [20]byte{}, 1, nil)
	a.jitter = func() float64 { return 0.5 } // no spread
	want := []time.Duration{15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800}
	for i, w := range want {
		if got := a.backoff(i + 1); got != w*time.Second {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := a.backoff(1000); got != 30*time.Minute {
		t.Errorf("backoff(1000) = %v", got)
	}
	a.jitter = func() float64 { return 0 }
	if got := a.backoff(2); got != 22500*time.Millisecond {
		t.Errorf("low jitter backoff(2) = %v, want 22.5s", got)
	}
	a.jitter = func() float64 { return 0.999999 }
	if got := a.backoff(2); got < 37*time.Second || got > 38*time.Second {
		t.Errorf("high jitter backoff(2) = %v, want about 37.5s", got)
	}
	if got := a.backoff(20); got != 30*time.Minute {
		t.Errorf("high jitter at cap = %v, want capped at 30m", got)
	}
}

func TestAnnouncerNoTrackers(t *testing.T) {
	a := NewAnnouncer(&Client{}, [][]string{{" "}, {}}, [20]byte{}, [20]byte{}, 1, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	a.Run(ctx, nil, nil) // returns at once
	if len(a.tiers) != 0 {
		t.Errorf("empty tiers kept: %v", a.tiers)
	}
}

func TestAnnouncerTrackerID(t *testing.T) {
	var mu sync.Mutex
	var ids []string
	seen := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ids = append(ids, r.URL.Query().Get("trackerid"))
		mu.Unlock()
		fmt.Fprint(w, "d8:intervali1e10:tracker id3:xyze")
		select {
		case seen <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	a := testAnnouncer([][]string{{srv.URL + "/announce"}})
	stop := runAnnouncer(t, a, nil, nil)
	for range 2 {
		select {
		case <-seen:
		case <-time.After(15 * time.Second):
			t.Fatal("no announce")
		}
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if ids[0] != "" || ids[1] != "xyz" {
		t.Errorf("trackerid sent %q, want none then the one returned", ids)
	}
}
