//go:build linux

package wanlab

import (
	"testing"
	"time"
)

// TestPipeRate checks the serialiser: back-to-back packets leave one
// transmission time apart, after the delay.
func TestPipeRate(t *testing.T) {
	p := newPipe(Link{Rate: 12e6, Delay: 10 * time.Millisecond}, 1, 2)
	// 1500 bytes at 12 Mbit/s take 1 ms.
	for i := range 5 {
		at, ok := p.admit(0, 1500)
		want := 10*time.Millisecond + time.Duration(i+1)*time.Millisecond
		if !ok || at != want {
			t.Fatalf("packet %d: out at %v (%v), want %v", i, at, ok, want)
		}
	}
	// After an idle gap the link starts afresh.
	if at, _ := p.admit(time.Second, 1500); at != time.Second+11*time.Millisecond {
		t.Errorf("after a gap: out at %v", at)
	}
	if p.c.Packets != 6 || p.c.Bytes != 6*1500 {
		t.Errorf("counters %+v", p.c)
	}
}

// TestPipeQueue checks tail drop once the queue holds Queue bytes.
func TestPipeQueue(t *testing.T) {
	p := newPipe(Link{Rate: 12e6, Queue: 3000}, 1, 2)
	var sent int
	for range 10 {
		if _, ok := p.admit(0, 1500); ok {
			sent++
		}
	}
	// The link holds 3000 bytes, the packet being sent included: two
	// packets.
	if sent != 2 || p.c.QueueDrops != 8 {
		t.Errorf("sent %d, queue drops %d; want 2 and 8", sent, p.c.QueueDrops)
	}
	if DefaultQueue(100e6) != 100e6/8/20 || DefaultQueue(1e6) != 32*1500 {
		t.Errorf("DefaultQueue: %d, %d", DefaultQueue(100e6), DefaultQueue(1e6))
	}
}

// TestPipeJitterKeepsOrder checks that jitter spreads delays within
// Delay ± Jitter without a packet overtaking an earlier one.
func TestPipeJitterKeepsOrder(t *testing.T) {
	p := newPipe(Link{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}, 1, 2)
	var last time.Duration
	var spread bool
	for i := range 1000 {
		now := time.Duration(i) * 100 * time.Microsecond
		at, ok := p.admit(now, 100)
		if !ok {
			t.Fatal("dropped without loss")
		}
		if at < last {
			t.Fatalf("packet %d out at %v before the previous one (%v)", i, at, last)
		}
		d := at - now
		if d < 15*time.Millisecond || d > 25*time.Millisecond+5*time.Millisecond {
			t.Fatalf("packet %d delayed %v", i, d)
		}
		if d != 20*time.Millisecond {
			spread = true
		}
		last = at
	}
	if !spread {
		t.Error("jitter changed no delay")
	}
}

// TestPipeLoss checks the loss rate over many packets and that the same
// seed loses the same packets.
func TestPipeLoss(t *testing.T) {
	run := func() []bool {
		p := newPipe(Link{Loss: 0.1}, 7, 8)
		out := make([]bool, 20000)
		for i := range out {
			_, out[i] = p.admit(time.Duration(i), 100)
		}
		return out
	}
	a, b := run(), run()
	lost := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("the same seed lost different packets")
		}
		if !a[i] {
			lost++
		}
	}
	// 2000 expected, sd 42: 5 sd either way.
	if lost < 1790 || lost > 2210 {
		t.Errorf("lost %d of 20000 at 10 %%", lost)
	}
}
