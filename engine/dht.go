package engine

import (
	"context"
	"net/netip"
	"time"
)

// dhtLoop looks the torrent up in the DHT and announces us there: at
// once, then every few minutes, more often while we have few peers.
func (t *Torrent) dhtLoop(ctx context.Context) {
	for {
		peers, err := t.cfg.DHT.GetPeers(ctx, t.infoHash)
		if err != nil {
			t.log.Debug("DHT lookup", "err", err)
		} else {
			var batch []netip.AddrPort
			for a := range peers {
				batch = append(batch, a)
				if len(batch) == 32 {
					t.AddPeers(batch...)
					batch = nil
				}
			}
			if len(batch) > 0 {
				t.AddPeers(batch...)
			}
		}
		if t.cfg.Port != 0 {
			if err := t.cfg.DHT.Announce(ctx, t.infoHash, t.cfg.Port, false); err != nil {
				t.log.Debug("DHT announce", "err", err)
			}
		}
		wait := 5 * time.Minute
		if s := t.Stats(); s.Peers < 5 && !s.Complete {
			wait = 30 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
