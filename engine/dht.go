package engine

import (
	"context"
	"net/netip"
	"time"
)

// dhtLoop looks the torrent up in the DHT and announces us there: at
// once, then every few minutes, more often while we have few peers, and
// within seconds while lookups find nobody (the first ones may run while
// the node is still joining the DHT).
func (t *Torrent) dhtLoop(ctx context.Context) {
	retry := time.Second
	for {
		found := 0
		peers, err := t.cfg.DHT.GetPeers(ctx, t.infoHash)
		if err != nil {
			t.log.Debug("DHT lookup", "err", err)
		} else {
			var batch []netip.AddrPort
			for a := range peers {
				found++
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
			if found == 0 {
				wait, retry = retry, min(2*retry, wait)
			} else {
				retry = time.Second
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
