package engine

import (
	"context"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sowerbt/sower/peerwire"
)

// chokeLog records, as fake peers see them, the choke and unchoke
// messages a torrent sends them, with the virtual time of arrival.
type chokeLog struct {
	mu     sync.Mutex
	events []chokeEvent
	// until, called under mu after each event, says whether enough was
	// seen; then enough is closed.
	until  func([]chokeEvent) bool
	enough chan struct{}
	once   sync.Once
}

type chokeEvent struct {
	at       time.Time
	who      string
	unchoked bool
}

func (l *chokeLog) add(who string, unchoked bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, chokeEvent{at: time.Now(), who: who, unchoked: unchoked})
	if l.until(l.events) {
		l.once.Do(func() { close(l.enough) })
	}
}

// record reads the torrent's messages on c until it ends, logging chokes.
func (l *chokeLog) record(s *sim, c net.Conn, who string) {
	dec := s.decoder(c)
	for {
		m, err := dec.Next()
		if err != nil {
			return
		}
		switch m.ID {
		case peerwire.Choke:
			l.add(who, false)
		case peerwire.Unchoke:
			l.add(who, true)
		}
	}
}

// TestSimChokingRounds: a leecher with two upload slots and four
// interested peers: one uploads to it (slowly: a block every 4 s), three
// never do. Over many choking rounds of virtual time the uploader keeps
// the regular slot throughout (tit-for-tat), the optimistic slot is
// always in use and moves among the other three only every third round
// (30 s), each of them gets turns, and no more than two peers are ever
// unchoked at once.
func TestSimChokingRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{8 << 20}, 64<<10)
		s := newSim(t, tt, 2*time.Hour)
		stingy := []string{"s1", "s2", "s3"}
		// Run until every stingy peer has had two optimistic turns after
		// the first minute (with random picks among three, this takes a
		// few minutes of virtual time).
		var start time.Time
		log := &chokeLog{enough: make(chan struct{}), until: func(ev []chokeEvent) bool {
			turns := map[string]int{}
			for _, e := range ev {
				if e.unchoked && e.at.Sub(start) > time.Minute {
					turns[e.who]++
				}
			}
			for _, w := range stingy {
				if turns[w] < 2 {
					return false
				}
			}
			return true
		}}
		start = time.Now()
		leech := s.node(false, Config{MaxUnchoked: 2}, nodeOpts{})

		// The uploader has every piece but the last (a seed would not
		// compete for slots) and serves one request every 4 s.
		most := tt.full()
		most.Clear(tt.info.NumPieces() - 1)
		uploader := s.fake(func(c net.Conn) {
			if send(c, peerwire.Message{ID: peerwire.Bitfield, Payload: most.Bytes()}, peerwire.Message{ID: peerwire.Unchoke}, peerwire.Message{ID: peerwire.Interested}) != nil {
				return
			}
			go keepAlive(s.ctx, c)
			reqs := make(chan peerwire.Message, 1024)
			go func() {
				defer close(reqs)
				dec := s.decoder(c)
				for {
					m, err := dec.Next()
					if err != nil {
						return
					}
					switch m.ID {
					case peerwire.Choke:
						log.add("uploader", false)
					case peerwire.Unchoke:
						log.add("uploader", true)
					case peerwire.Request:
						select {
						case reqs <- m:
						default:
						}
					}
				}
			}()
			tick := time.NewTicker(4 * time.Second)
			defer tick.Stop()
			for m := range reqs {
				<-tick.C
				if send(c, peerwire.Message{ID: peerwire.Piece, Index: m.Index, Begin: m.Begin, Payload: s.block(m)}) != nil {
					break
				}
			}
			for range reqs {
			}
		})
		leech.t.AddPeers(uploader)
		for _, w := range stingy {
			s.fakeDial(func(c net.Conn) {
				if send(c, peerwire.Message{ID: peerwire.Interested}) != nil {
					return
				}
				go keepAlive(s.ctx, c)
				log.record(s, c, w)
			}, leech.addr)
		}
		select {
		case <-log.enough:
		case <-s.ctx.Done():
			t.Fatalf("the stingy peers did not all get turns: %v", log.events)
		}
		synctest.Wait() // the rest of this instant's messages are in
		log.mu.Lock()
		events := append([]chokeEvent(nil), log.events...)
		log.mu.Unlock()
		rounds := time.Since(start) / (10 * time.Second)

		// The state after each instant: events of one instant arrive in
		// any order.
		unchoked := map[string]bool{}
		var grid time.Time // an instant the optimistic slot moved, after the first minute
		for i, e := range events {
			unchoked[e.who] = e.unchoked
			if e.who != "uploader" && e.at.Sub(start) > time.Minute {
				if grid.IsZero() {
					grid = e.at
				}
				if d := e.at.Sub(grid); d%(30*time.Second) != 0 {
					t.Errorf("%s %s at %v: the optimistic slot moved %v after it did at %v, not a multiple of 30 s",
						e.who, chokeWord(e.unchoked), e.at.Sub(start), d, grid.Sub(start))
				}
			}
			if e.who == "uploader" && !e.unchoked {
				t.Errorf("the uploader was choked at %v", e.at.Sub(start))
			}
			if i+1 < len(events) && events[i+1].at.Equal(e.at) {
				continue
			}
			n, opt := 0, 0
			for w, u := range unchoked {
				if u {
					n++
					if w != "uploader" {
						opt++
					}
				}
			}
			if n > 2 {
				t.Errorf("at %v, %d peers unchoked with 2 upload slots: %v", e.at.Sub(start), n, unchoked)
			}
			if e.at.Sub(start) > time.Minute && opt != 1 {
				t.Errorf("at %v, %d stingy peers unchoked, want the one optimistic unchoke: %v", e.at.Sub(start), opt, unchoked)
			}
		}
		if !unchoked["uploader"] {
			t.Error("the uploader does not hold a slot at the end")
		}
		t.Logf("%d choking rounds, %d choke and unchoke messages", rounds, len(events))
	})
}

// keepAlive sends a fake peer's keep-alives, as real peers do, until the
// connection fails.
func keepAlive(ctx context.Context, c net.Conn) {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if send(c, peerwire.Message{KeepAlive: true}) != nil {
				return
			}
		}
	}
}

func chokeWord(unchoked bool) string {
	if unchoked {
		return "unchoked"
	}
	return "choked"
}

// TestSimSuperSeed: a super-seed (BEP 16) offers pieces one at a time and
// waits for them to spread, so it uploads about one copy in all, even
// with ample upload capacity, and every leecher completes.
func TestSimSuperSeed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tt := newTestTorrent(t, []int64{2 << 20}, 64<<10)
		s := newSim(t, tt, time.Hour)
		seed := s.node(true, Config{SuperSeed: true, UploadLimit: NewLimiter(2_000_000)}, nodeOpts{})
		nodes := []*simNode{seed}
		for range 4 {
			nodes = append(nodes, s.node(false, Config{}, nodeOpts{}))
		}
		meshed(nodes...)
		for _, n := range nodes[1:] {
			s.waitDone(n)
			s.checkData(n)
		}
		copies := float64(seed.t.Stats().Uploaded) / float64(len(tt.data))
		t.Logf("the super-seed uploaded %.2f copies for 4 leechers", copies)
		if copies > 1.5 {
			t.Fatalf("the super-seed uploaded %.2f copies", copies)
		}
	})
}
