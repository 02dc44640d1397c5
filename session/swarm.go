package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/mse"
	"github.com/sowerbt/sower/tracker"
)

// maxPending bounds the peer addresses a swarm keeps while no engine is
// attached to take them.
const maxPending = 500

// SwarmOptions describe a torrent's membership of a session.
type SwarmOptions struct {
	// Trackers are the announce tiers (BEP 12); nil means no tracker.
	Trackers [][]string
	// Private torrents (BEP 27) use no DHT and no PEX.
	Private bool
	// Peers are addresses known to have the torrent (x.pe, --peer, RPC).
	Peers []netip.AddrPort
	// Stats gives the counters of each announce; nil means the attached
	// engine's, or Left 1 (a leecher of unknown size) without one.
	Stats func() tracker.Stats
	// Wake, if set, is called when a peer dials in, or a tracker reports
	// leechers with peers to dial, while no engine is attached: it
	// attaches one and returns true, or returns false to refuse. It runs
	// on a goroutine of the session and may block briefly.
	Wake func() bool
}

// Swarm is one torrent's membership of a session: its trackers are
// announced to, the DHT is asked for it and told about us, and incoming
// connections that name its info-hash go to the engine attached to it.
// Everything in it is guarded by the session's mutex.
type Swarm struct {
	s    *Session
	ih   [20]byte
	opts SwarmOptions

	tiers *tracker.Tiers

	// Guarded by s.mu.
	eng     *engine.Torrent
	engCtx  context.Context
	sink    func([]netip.AddrPort) // a metadata fetch waiting for peers
	pending []netip.AddrPort
	left    bool // Leave was called
	trk     job
	dht     job
	ann     annState
	dhtTry  time.Duration // retry delay while lookups find nobody
}

// ErrJoined is returned by Join for an info-hash already in the session.
var ErrJoined = errors.New("session: torrent already in the session")

// Join makes the torrent ih a member of the session: announced ("started")
// to its trackers, looked up in and announced to the DHT unless private,
// and reachable by incoming connections once an engine is attached.
func (s *Session) Join(ih [20]byte, o SwarmOptions) (*Swarm, error) {
	w := &Swarm{s: s, ih: ih, opts: o, tiers: tracker.NewTiers(o.Trackers)}
	w.trk = job{w: w, kind: jobTracker}
	w.dht = job{w: w, kind: jobDHT}
	w.dhtTry = time.Second
	w.pending = append(w.pending, o.Peers...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("session: closed")
	}
	if s.swarms[ih] != nil {
		return nil, fmt.Errorf("%w: %x", ErrJoined, ih)
	}
	s.swarms[ih] = w
	s.req2[mse.Req2(ih)] = ih
	w.ann.event = tracker.Started
	if w.tiers.Len() > 0 {
		s.scheduleLocked(&w.trk, time.Now())
	}
	if s.dht != nil && !o.Private {
		s.scheduleLocked(&w.dht, time.Now())
	}
	return w, nil
}

// markPrivate stops DHT announces for a swarm found to be private (BEP
// 27) once its metadata arrived.
func (w *Swarm) markPrivate() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	w.opts.Private = true
	s.unscheduleLocked(&w.dht)
}

// InfoHash is the swarm's torrent.
func (w *Swarm) InfoHash() [20]byte { return w.ih }

// Leave ends the membership: incoming connections for the torrent are
// refused from now on, and "stopped" is sent to the trackers that know
// us (in the background, bounded in time).
func (w *Swarm) Leave() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.left {
		return
	}
	w.left = true
	if s.swarms[w.ih] == w {
		delete(s.swarms, w.ih)
		delete(s.req2, mse.Req2(w.ih))
	}
	w.eng, w.sink, w.pending = nil, nil, nil
	s.unscheduleLocked(&w.dht)
	if w.ann.announced {
		// A "completed" not yet sent goes first: the tracker counts the
		// download, then drops us.
		if w.ann.event != tracker.Completed {
			w.ann.event = tracker.Stopped
		}
		s.leaving[w] = true
		s.scheduleLocked(&w.trk, time.Now())
	} else {
		s.unscheduleLocked(&w.trk)
	}
}

// Attach routes the swarm's incoming connections and discovered peers to
// e until Detach; ctx bounds the connections handed to it (use the
// context e runs under). Peers learned while nothing was attached are
// handed over at once.
func (w *Swarm) Attach(ctx context.Context, e *engine.Torrent) {
	s := w.s
	s.mu.Lock()
	if w.left {
		s.mu.Unlock()
		return
	}
	w.eng, w.engCtx = e, ctx
	pending := w.pending
	w.pending = nil
	// A fresh engine wants peers: look it up in the DHT soon.
	if w.dht.slot > 0 && w.dht.next.After(time.Now().Add(time.Second)) {
		s.scheduleLocked(&w.dht, time.Now())
	}
	s.mu.Unlock()
	if len(pending) > 0 {
		e.AddPeers(pending...)
	}
}

// Detach stops routing to the attached engine; incoming connections wake
// the swarm (SwarmOptions.Wake) or are refused.
func (w *Swarm) Detach() {
	s := w.s
	s.mu.Lock()
	w.eng, w.engCtx = nil, nil
	s.mu.Unlock()
}

// AddPeers hands addresses that have the torrent to the attached engine,
// or keeps them (a bounded number) until one is attached.
func (w *Swarm) AddPeers(addrs ...netip.AddrPort) {
	if len(addrs) == 0 {
		return
	}
	s := w.s
	s.mu.Lock()
	e, sink := w.eng, w.sink
	if e == nil && !w.left {
		w.pending = appendBounded(w.pending, addrs)
	}
	s.mu.Unlock()
	switch {
	case e != nil:
		e.AddPeers(addrs...)
	case sink != nil:
		sink(addrs)
	}
}

func appendBounded(list, addrs []netip.AddrPort) []netip.AddrPort {
	for _, a := range addrs {
		if len(list) >= maxPending {
			// Keep the newest: they are the likeliest to be there.
			copy(list, list[1:])
			list = list[:len(list)-1]
		}
		list = append(list, a)
	}
	return list
}

// deliver hands peers found by a tracker or the DHT to whoever takes them,
// waking the swarm when wake is set and nothing is attached.
func (w *Swarm) deliver(addrs []netip.AddrPort, wake bool) {
	if len(addrs) == 0 {
		return
	}
	s := w.s
	s.mu.Lock()
	e, sink, wakeFn := w.eng, w.sink, w.opts.Wake
	left := w.left
	s.mu.Unlock()
	switch {
	case left:
	case e != nil:
		e.AddPeers(addrs...)
	case sink != nil:
		w.AddPeers(addrs...)
	case wake && wakeFn != nil:
		w.AddPeers(addrs...) // kept for the engine Wake attaches
		wakeFn()
	default:
		w.AddPeers(addrs...)
	}
}

// engineForIncoming returns the engine an incoming connection goes to,
// waking the swarm if needed; nil refuses the connection.
func (w *Swarm) engineForIncoming() (*engine.Torrent, context.Context) {
	s := w.s
	s.mu.Lock()
	e, ctx, wake, left := w.eng, w.engCtx, w.opts.Wake, w.left
	s.mu.Unlock()
	if e != nil || left || wake == nil {
		return e, ctx
	}
	if !wake() {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return w.eng, w.engCtx
}

// Completed reports that this process has just finished downloading the
// torrent, so its trackers get a "completed" event (BEP 3). Do not call it
// for a torrent whose data was complete when it started.
func (w *Swarm) Completed() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.left || w.ann.completedSent {
		return
	}
	w.ann.completedSent = true
	if w.ann.event == tracker.Started {
		w.ann.completedQueued = true // after "started" gets through
		return
	}
	w.ann.event = tracker.Completed
	if w.ann.failures == 0 && w.tiers.Len() > 0 {
		s.scheduleLocked(&w.trk, time.Now())
	}
}

// Reannounce asks for an announce to the trackers now, or as soon as the
// tracker's "min interval" since the last successful announce allows. It
// returns when the announce is due, or an error if the torrent has no
// tracker.
func (w *Swarm) Reannounce() (time.Time, error) {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.left {
		return time.Time{}, errors.New("session: torrent left the session")
	}
	if w.tiers.Len() == 0 {
		return time.Time{}, errors.New("torrent has no trackers")
	}
	at := time.Now()
	if !w.ann.lastOK.IsZero() {
		at = later(at, w.ann.lastOK.Add(w.ann.minGap))
	}
	if w.trk.inFlight {
		w.ann.again = true
		return at, nil
	}
	if w.trk.slot == 0 || w.trk.next.After(at) {
		s.scheduleLocked(&w.trk, at)
	}
	return w.trk.next, nil
}

// NextAnnounce is when the trackers are next announced to (zero if not
// scheduled).
func (w *Swarm) NextAnnounce() time.Time {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.trk.slot == 0 {
		return time.Time{}
	}
	return w.trk.next
}

// Trackers returns what is known of each tracker of the torrent.
func (w *Swarm) Trackers() []tracker.Status { return w.tiers.Statuses() }

// TrackerList returns the announce-list in its current order.
func (w *Swarm) TrackerList() [][]string { return w.tiers.List() }

// SetTrackers replaces the announce-list; a torrent that had none is
// announced at once.
func (w *Swarm) SetTrackers(tiers [][]string) {
	w.tiers.Replace(tiers)
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !w.left && w.tiers.Len() > 0 && w.trk.slot == 0 && !w.trk.inFlight {
		s.scheduleLocked(&w.trk, time.Now())
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
