package daemon

import (
	"context"
	"errors"
	"time"
)

// startFetchLocked fetches a magnet torrent's metadata from the peers of
// its swarm (BEP 9): the link's x.pe, AddPeers, its trackers and the DHT;
// d.mu is held. With no peers the fetch waits: no spinning, no retries.
func (d *Daemon) startFetchLocked(t *torrent) {
	d.announceStartLocked(t)
	w := t.swarm
	if w == nil {
		t.rec.Error = "could not join the torrent's swarm"
		t.retryAt = time.Now().Add(d.cfg.RetryAfter).UnixNano()
		return
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	exited := make(chan struct{})
	t.run = &runState{cancel: cancel, exited: exited}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(exited)
		defer cancel()
		info, err := w.FetchMetadata(ctx)
		d.mu.Lock()
		t.run = nil
		if err != nil && ctx.Err() == nil {
			t.rec.Error = err.Error()
			t.retryAt = time.Now().Add(d.cfg.RetryAfter).UnixNano()
		}
		d.mu.Unlock()
		if err == nil {
			if err := d.AddMetadata(t.ih, info); err != nil && !errors.Is(err, ErrNotFound) {
				d.log.Warn("metadata from peers", "infohash", t.rec.InfoHash, "err", err)
			}
		}
		d.kickScheduler()
	}()
}
