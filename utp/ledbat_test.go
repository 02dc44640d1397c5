package utp

import (
	"io"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestLedbatWindow drives the controller directly: with no queuing delay
// the window grows, with delay above the target it shrinks on every ack,
// and a loss halves it.
func TestLedbatWindow(t *testing.T) {
	const mss = 1400
	l := newLedbat(100*time.Millisecond, mss)
	now := time.Unix(1000, 0)
	base := uint32(50_000) // 50 ms of one-way delay and clock offset
	start := l.cwnd
	for range 200 {
		now = now.Add(time.Millisecond)
		l.onAck(mss, base, now, mss, true)
	}
	if l.cwnd <= start {
		t.Fatalf("window %v after acks without queuing delay, started at %v: want growth", l.cwnd, start)
	}
	prev := l.cwnd
	for i := range 50 {
		now = now.Add(time.Millisecond)
		l.onAck(mss, base+300_000, now, mss, true) // 300 ms of queue: three times the target
		if l.cwnd >= prev {
			t.Fatalf("ack %d with 300 ms queuing delay: window %v, was %v: want it to shrink", i, l.cwnd, prev)
		}
		prev = l.cwnd
	}
	if l.ourDelay != 300_000 {
		t.Fatalf("queuing delay %d µs, want 300000", l.ourDelay)
	}
	// Below the target again: it grows.
	for range 20 {
		now = now.Add(time.Millisecond)
		l.onAck(mss, base+20_000, now, mss, true)
	}
	if l.cwnd <= prev {
		t.Fatalf("window %v below the target delay, was %v: want growth", l.cwnd, prev)
	}
	before := l.cwnd
	l.onLoss(mss)
	if l.cwnd != max(before/2, minCwnd) {
		t.Fatalf("window %v after a loss, want half of %v", l.cwnd, before)
	}
}

// TestBaseDelay checks the two-minute sliding minimum, across the
// microsecond clock's wrap.
func TestBaseDelay(t *testing.T) {
	var b baseDelay
	now := time.Unix(0, 0)
	b.add(0xFFFF_FF00, now)
	b.add(0x0000_0100, now.Add(time.Second)) // later in wrapping order
	if b.min() != 0xFFFF_FF00 {
		t.Fatalf("min %x, want ffffff00", b.min())
	}
	for i := range 8 { // 160 s of higher samples push the old minimum out
		now = now.Add(baseBucket)
		b.add(0x0000_0200+uint32(i), now)
	}
	if b.min() != 0x0000_0202 {
		t.Fatalf("min %x after two minutes, want 202", b.min())
	}
}

// TestSimLedbatYields sends through a 1 MB/s bottleneck whose buffer holds
// two seconds: a loss-driven sender would fill it. LEDBAT keeps the queue
// near its 100 ms target.
func TestSimLedbatYields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newSimNet(3)
		bottleneck := simLink{Delay: 10 * time.Millisecond, Rate: 1 << 20, QueueLimit: 2 * time.Second}
		_, _, client, server := simPair(t, n, bottleneck, simLink{Delay: 10 * time.Millisecond}, Config{})
		data := randomBytes(12<<20, 9)
		n.mu.Lock()
		n.measureFrom = time.Now().Add(4 * time.Second)
		n.mu.Unlock()
		start := time.Now()
		go func() {
			client.Write(data)
			client.Close()
		}()
		got, err := io.ReadAll(server)
		if err != nil || len(got) != len(data) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		elapsed := time.Since(start)
		s := n.snapshot()
		slices.Sort(s.queues)
		median, p95 := s.queues[len(s.queues)/2], s.queues[len(s.queues)*95/100]
		t.Logf("%.2f MB/s through a 1.05 MB/s bottleneck; queuing delay median %v, 95th percentile %v, max %v; %v",
			float64(len(data))/elapsed.Seconds()/1e6, median, p95, s.maxQueue, n)
		if p95 > 250*time.Millisecond {
			t.Fatalf("95th percentile queuing delay %v: LEDBAT should hold it near 100 ms", p95)
		}
		if s.overQueue > 0 {
			t.Fatalf("%d datagrams overflowed the bottleneck's buffer", s.overQueue)
		}
	})
}
