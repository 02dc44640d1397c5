package daemon

import (
	"unique"

	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/tracker"
)

// The session, not each engine, announces the daemon's torrents: a torrent
// is a member of the session's swarms (session.Swarm) from the moment it
// starts until it stops, whether its engine runs or it is parked, so
// parking and waking send no "stopped"/"started" pair and a parked seed
// stays in its swarms without a goroutine of its own.

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

// announceStartLocked makes a torrent that starts running (or is parked
// at load) a member of the session's swarm for it, if it is not already:
// its trackers hear "started", the DHT is asked for it, and peers that dial
// in reach it (waking it if parked). d.mu is held.
func (d *Daemon) announceStartLocked(t *torrent) {
	if t.swarm != nil {
		return
	}
	ih := t.ih
	o := session.SwarmOptions{
		Trackers: t.tiers,
		Private:  t.sum.private,
		Peers:    d.extra[ih],
		Stats:    func() tracker.Stats { return d.announceStats(ih) },
		Wake:     func() bool { return d.wakeEngine(ih) != nil },
	}
	if t.mi == nil && !t.parked() && t.rec.Magnet != "" {
		if m, err := magnet.Parse(t.rec.Magnet); err == nil {
			mo := session.MagnetOptions(m)
			o.Trackers, o.Peers = mo.Trackers, append(o.Peers, mo.Peers...)
		}
	}
	w, err := d.sess.Join(ih, o)
	if err != nil {
		d.log.Warn("joining the swarm", "torrent", t.rec.Name, "err", err)
		return
	}
	t.swarm = w
}

// announceStopLocked takes a torrent that stops (paused, queued, removed,
// failed) out of the session: "stopped" goes to the trackers that know
// us, and peers that dial in are refused. d.mu is held.
func (d *Daemon) announceStopLocked(t *torrent) {
	if t.swarm == nil {
		return
	}
	t.swarm.Leave()
	t.swarm = nil
}

// announceStats gives the counters of a torrent's next announce.
func (d *Daemon) announceStats(ih [20]byte) tracker.Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.torrents[ih]
	if t == nil {
		return tracker.Stats{}
	}
	up, down := t.rec.Uploaded, t.rec.Downloaded
	var left int64
	if e := t.eng(); e != nil {
		st := e.LastStats()
		up += st.Uploaded
		down += st.Downloaded
		left = st.Left
	} else if !t.complete {
		left = max(t.sum.wanted-t.sum.completed, 1)
	}
	return tracker.Stats{Uploaded: up, Downloaded: down, Left: left}
}
