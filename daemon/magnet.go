package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metadata"
	"github.com/sowerbt/sower/tracker"
)

// startFetchLocked fetches a magnet torrent's metadata from peers (BEP 9)
// found through the link's x.pe, AddPeers and its trackers; d.mu is held.
// With no peers the fetch waits on its channel: no spinning, no retries.
func (d *Daemon) startFetchLocked(t *torrent) {
	m, err := magnet.Parse(t.rec.Magnet)
	if err != nil {
		t.rec.Error = fmt.Sprintf("stored magnet link: %v", err)
		return
	}
	ctx, cancel := context.WithCancel(d.runCtx)
	peers := make(chan netip.AddrPort, 64)
	exited := make(chan struct{})
	t.run = &runState{cancel: cancel, exited: exited, metaPeers: peers}
	initial := append([]netip.AddrPort(nil), d.extra[t.ih]...)
	for _, s := range m.Peers {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			initial = append(initial, ap)
			// They have the torrent: the engine dials them too.
			d.extra[t.ih] = append(d.extra[t.ih], ap)
		}
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(exited)
		defer cancel()
		info, err := d.fetchMetadata(ctx, m, peers, initial)
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

func (d *Daemon) fetchMetadata(ctx context.Context, m *magnet.Magnet, peers chan netip.AddrPort, initial []netip.AddrPort) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	send := func(a netip.AddrPort) bool {
		select {
		case peers <- a:
			return true
		case <-ctx.Done():
			return false
		}
	}
	wg.Go(func() {
		for _, a := range initial {
			if !send(a) {
				return
			}
		}
	})
	if len(m.Trackers) > 0 {
		tiers := make([][]string, len(m.Trackers))
		for i, tr := range m.Trackers {
			tiers[i] = []string{tr}
		}
		found := make(chan []tracker.Peer, 4)
		a := tracker.NewAnnouncer(&tracker.Client{}, tiers, m.InfoHash, d.peerID, d.ln.Port(), d.log)
		wg.Go(func() {
			// Left is unknown before the metadata: 1 byte makes us a leecher.
			a.Run(ctx, func() tracker.Stats { return tracker.Stats{Left: 1} }, found)
		})
		wg.Go(func() {
			for {
				select {
				case ps := <-found:
					for _, p := range ps {
						if !send(p.Addr) {
							return
						}
					}
				case <-ctx.Done():
					return
				}
			}
		})
	}
	info, err := metadata.Fetch(ctx, m.InfoHash, peers, metadata.Config{PeerID: d.peerID, Port: d.ln.Port(), Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("fetching metadata: %w", err)
	}
	return info, nil
}
