package tracker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// announceLog is a test tracker that records each announce's event and
// answers with a fixed interval and one peer, or fails while failN > 0.
type announceLog struct {
	mu       sync.Mutex
	events   []string
	failN    int
	trackers string // extra bencoded keys of the reply
}

func (l *announceLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ev := r.URL.Query().Get("event")
	if ev == "" {
		ev = "none"
	}
	if strings.HasSuffix(r.URL.Path, "/scrape") {
		fmt.Fprintf(w, "d5:filesd20:%sd8:completei7e10:downloadedi3e10:incompletei2eeee", strings.Repeat("\xaa", 20))
		return
	}
	l.mu.Lock()
	fail := l.failN > 0
	if fail {
		l.failN--
		ev = "failed:" + ev
	}
	l.events = append(l.events, ev+" trackerid="+r.URL.Query().Get("trackerid"))
	extra := l.trackers
	l.mu.Unlock()
	if fail {
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "d8:completei5e10:incompletei4e8:intervali60e5:peers6:\x7f\x00\x00\x02\x1a\xe1%se", extra)
}

func (l *announceLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// ordered returns Tiers without the shuffle, for tests that check order.
func ordered(tiers [][]string) *Tiers {
	t := &Tiers{}
	t.set(tiers, func(int, func(int, int)) {})
	return t
}

func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/announce"
}

func announce(t *testing.T, tr *Tiers, ev Event) (string, *AnnounceResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	return tr.Announce(ctx, &Client{HTTPTimeout: 5 * time.Second}, AnnounceRequest{InfoHash: [20]byte{0xaa}, Event: ev, Port: 1}, nil)
}

func TestTiersFallbackMovesToFront(t *testing.T) {
	bad := &announceLog{failN: 1 << 30}
	badSrv := httptest.NewServer(bad)
	defer badSrv.Close()
	good := &announceLog{}
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()
	tr := ordered([][]string{{badSrv.URL + "/announce", goodSrv.URL + "/announce"}})
	for i, ev := range []Event{Started, None} {
		won, resp, err := announce(t, tr, ev)
		if err != nil || won != goodSrv.URL+"/announce" || len(resp.Peers) != 1 {
			t.Fatalf("round %d: won %q resp %+v err %v", i, won, resp, err)
		}
	}
	// Only the first round tried the failing tracker: the good one moved
	// to the front of the tier (BEP 12).
	if evs := bad.snapshot(); len(evs) != 1 {
		t.Errorf("failing tracker saw %v, want one try", evs)
	}
	if l := tr.List(); l[0][0] != goodSrv.URL+"/announce" {
		t.Errorf("tier order %v", l)
	}
	st := tr.Statuses()
	if !st[0].LastOK || st[0].Seeders != 5 || st[0].Leechers != 4 || st[0].Peers != 1 || st[0].LastResult != "Success" {
		t.Errorf("good tracker status %+v", st[0])
	}
	if st[1].LastOK || !strings.Contains(st[1].LastResult, "503") {
		t.Errorf("failing tracker status %+v", st[1])
	}
}

func TestTiersNextTierKeepsOrder(t *testing.T) {
	good := &announceLog{}
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()
	dead := deadURL(t)
	tr := ordered([][]string{{dead}, {goodSrv.URL + "/announce"}})
	for range 2 {
		if _, _, err := announce(t, tr, None); err != nil {
			t.Fatal(err)
		}
	}
	// Tiers keep their order: the dead first tier is tried every round.
	if l := tr.List(); l[0][0] != dead || l[1][0] != goodSrv.URL+"/announce" {
		t.Errorf("tiers reordered: %v", l)
	}
}

func TestTiersAllFail(t *testing.T) {
	tr := ordered([][]string{{deadURL(t)}, {deadURL(t)}})
	if _, _, err := announce(t, tr, Started); err == nil {
		t.Fatal("no error with every tracker dead")
	}
	if _, _, err := announce(t, ordered(nil), Started); err == nil {
		t.Fatal("no error without trackers")
	}
}

func TestTiersTrackerIDAndWarning(t *testing.T) {
	log := &announceLog{trackers: "10:tracker id3:xyz15:warning message4:slow"}
	srv := httptest.NewServer(log)
	defer srv.Close()
	tr := ordered([][]string{{srv.URL + "/announce"}})
	for range 2 {
		if _, _, err := announce(t, tr, None); err != nil {
			t.Fatal(err)
		}
	}
	evs := log.snapshot()
	if evs[0] != "none trackerid=" || evs[1] != "none trackerid=xyz" {
		t.Errorf("announces %v: want no tracker id, then the one returned", evs)
	}
	if st := tr.Statuses()[0]; st.Warning != "slow" || st.TrackerID != "xyz" {
		t.Errorf("status %+v", st)
	}
}

func TestTiersScrape(t *testing.T) {
	log := &announceLog{}
	srv := httptest.NewServer(log)
	defer srv.Close()
	tr := ordered([][]string{{srv.URL + "/announce"}})
	if err := tr.Scrape(t.Context(), &Client{}, [20]byte(bytesOf(0xaa))); err != nil {
		t.Fatal(err)
	}
	st := tr.Statuses()[0]
	if st.Seeders != 7 || st.Leechers != 2 || st.Downloaded != 3 || st.ScrapeResult != "Success" || st.LastScrape.IsZero() {
		t.Errorf("after scrape %+v", st)
	}
	if err := ordered([][]string{{deadURL(t)}}).Scrape(t.Context(), &Client{}, [20]byte{}); err == nil {
		t.Error("scrape of a dead tracker gave no error")
	}
}

func bytesOf(b byte) []byte {
	p := make([]byte, 20)
	for i := range p {
		p[i] = b
	}
	return p
}

func TestTiersReplaceKeepsStatus(t *testing.T) {
	log := &announceLog{trackers: "10:tracker id3:xyz"}
	srv := httptest.NewServer(log)
	defer srv.Close()
	u := srv.URL + "/announce"
	tr := NewTiers([][]string{{u}, {" "}, {}})
	if tr.Len() != 1 {
		t.Fatalf("empty tiers kept: %v", tr.List())
	}
	if _, _, err := announce(t, tr, None); err != nil {
		t.Fatal(err)
	}
	tr.Replace([][]string{{"udp://other:1/announce"}, {u, u}})
	l := tr.List()
	if len(l) != 2 || len(l[1]) != 1 || l[1][0] != u {
		t.Fatalf("after Replace %v", l)
	}
	st := tr.Statuses()
	if st[1].TrackerID != "xyz" || st[1].Tier != 1 || st[0].Seeders != -1 {
		t.Errorf("statuses after Replace %+v", st)
	}
}

func TestBackoffSchedule(t *testing.T) {
	want := []time.Duration{15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800}
	for i, w := range want {
		if got := Backoff(i+1, 15*time.Second, 30*time.Minute, 0.5); got != w*time.Second {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := Backoff(1000, 15*time.Second, 30*time.Minute, 0.5); got != 30*time.Minute {
		t.Errorf("Backoff(1000) = %v", got)
	}
	if got := Backoff(2, 15*time.Second, 30*time.Minute, 0); got != 22500*time.Millisecond {
		t.Errorf("low jitter Backoff(2) = %v, want 22.5s", got)
	}
	if got := Backoff(20, 15*time.Second, 30*time.Minute, 0.999999); got != 30*time.Minute {
		t.Errorf("high jitter at cap = %v, want capped at 30m", got)
	}
}
