package utp

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestSimPathMTU runs over a path that carries at most 4000-byte datagrams
// between sockets that may send 9000: probes find the size, and the data
// arrives intact.
func TestSimPathMTU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(5)
		link := simLink{Delay: 10 * time.Millisecond, MTU: 4000}
		cfg := Config{MaxPacketSize: 9000}
		_, _, client, server := simPair(t, n, link, link, cfg)
		exchange(t, n, client, server, randomBytes(2<<20, 1), randomBytes(64<<10, 2))
		size := client.Stats().PacketSize
		if size > 4000 || size < 4000-probeStep {
			t.Fatalf("packet size %d on a 4000-byte path, want within %d below it", size, probeStep)
		}
		if n.snapshot().tooBig == 0 {
			t.Fatal("no probe was too big: the ceiling was never tested")
		}
	})
}

// TestSimPathMTUShrinks lowers the path's MTU far below the size in use
// in the middle of a lossy transfer. Packets cannot be split (sequence
// numbers count packets), so the ones in use now travel fragmented, as the
// kernel does once it learns the smaller MTU, with loss multiplied by the
// fragments: the transfer must still finish intact.
func TestSimPathMTUShrinks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(6)
		link := simLink{Delay: 10 * time.Millisecond, Loss: 0.01}
		cfg := Config{MaxPacketSize: 9000}
		a, _, client, server := simPair(t, n, link, link, cfg)
		exchange0(t, client, server)
		shrunk := make(chan struct{})
		go func() {
			defer close(shrunk)
			time.Sleep(300 * time.Millisecond)
			small := link
			small.MTU = 1300
			a.setLink(small)
		}()
		exchange(t, n, client, server, randomBytes(8<<20, 1), randomBytes(1<<10, 2))
		<-shrunk
		if n.snapshot().fragmented == 0 {
			t.Fatal("the transfer ended before the path shrank")
		}
		t.Logf("%v; client %+v", n, client.Stats())
	})
}
