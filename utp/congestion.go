package utp

import "time"

// ledbat is the congestion window: LEDBAT's delay-based control (BEP 29,
// RFC 6817) with TCP-like halving on loss and slow start until the first
// loss or until queuing delay shows up.
type ledbat struct {
	target    int64   // target queuing delay, µs
	cwnd      float64 // bytes allowed in flight
	ssthresh  float64
	slowStart bool
	base      baseDelay
	ourDelay  int64 // the last queuing delay measured, µs
}

// Window bounds: at least one small packet (BEP 29's 150 bytes, though a
// connection may always have one packet in flight), at most 16 MiB.
const (
	minCwnd = 150
	maxCwnd = 16 << 20
)

func newLedbat(target time.Duration, mss int) ledbat {
	return ledbat{target: target.Microseconds(), cwnd: float64(2 * mss), ssthresh: maxCwnd, slowStart: true}
}

// onAck grows or shrinks the window for acked bytes given the peer's
// latest one-way delay sample (0: none). limited says whether the flight
// was limited by the window (an application-limited flow must not grow it).
func (l *ledbat) onAck(acked int, sample uint32, now time.Time, mss int, limited bool) {
	if sample != 0 {
		l.base.add(sample, now)
		l.ourDelay = int64(int32(sample - l.base.min()))
		if l.ourDelay < 0 {
			l.ourDelay = 0
		}
	}
	if l.slowStart {
		if l.ourDelay > l.target/2 {
			l.slowStart = false
			l.ssthresh = l.cwnd
		} else if limited {
			l.cwnd = min(l.cwnd+float64(acked), maxCwnd)
			if l.cwnd >= l.ssthresh {
				l.slowStart = false
			}
			return
		}
	}
	off := float64(l.target-l.ourDelay) / float64(l.target)
	if off > 0 && !limited {
		return
	}
	gain := float64(max(3000, mss))
	l.cwnd += gain * off * float64(acked) / max(l.cwnd, 1)
	l.cwnd = min(max(l.cwnd, minCwnd), maxCwnd)
}

// onLoss halves the window (BEP 29's loss factor 0.5).
func (l *ledbat) onLoss(mss int) {
	l.cwnd = max(l.cwnd/2, float64(minCwnd))
	l.ssthresh = l.cwnd
	l.slowStart = false
}

// onTimeout drops to one packet and slow-starts back to half the old
// window.
func (l *ledbat) onTimeout(mss int) {
	l.ssthresh = max(l.cwnd/2, float64(2*mss))
	l.cwnd = float64(mss)
	l.slowStart = true
}

// baseDelay is the sliding minimum of delay samples over the last two
// minutes, in six 20-second buckets.
type baseDelay struct {
	buckets [6]uint32
	n       int // buckets in use
	cur     int
	start   time.Time // of the current bucket
}

const baseBucket = 20 * time.Second

// before compares wrapping microsecond values.
func before(a, b uint32) bool { return int32(a-b) < 0 }

func (b *baseDelay) add(s uint32, now time.Time) {
	switch {
	case b.n == 0:
		b.buckets[0], b.n, b.cur, b.start = s, 1, 0, now
	case now.Sub(b.start) >= baseBucket:
		b.cur = (b.cur + 1) % len(b.buckets)
		b.buckets[b.cur] = s
		b.n = min(b.n+1, len(b.buckets))
		b.start = now
	case before(s, b.buckets[b.cur]):
		b.buckets[b.cur] = s
	}
}

func (b *baseDelay) min() uint32 {
	m := b.buckets[b.cur]
	for i := range b.n {
		if v := b.buckets[(b.cur-i+len(b.buckets))%len(b.buckets)]; before(v, m) {
			m = v
		}
	}
	return m
}
