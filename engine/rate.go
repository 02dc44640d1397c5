package engine

import (
	"math"
	"sync"
	"time"
)

// rateMeter turns a growing byte counter into a smoothed bytes-per-second
// rate. It is updated by the owner once per tick.
type rateMeter struct {
	last     int64
	lastTime time.Time
	rate     float64
}

// rateHalfLife weighs the newest second against history: short enough that
// a progress bar reacts within a few seconds, long enough not to jitter.
const rateHalfLife = 3.0

func (r *rateMeter) update(total int64, now time.Time) {
	if r.lastTime.IsZero() {
		r.last, r.lastTime = total, now
		return
	}
	dt := now.Sub(r.lastTime).Seconds()
	if dt <= 0 {
		return
	}
	inst := float64(total-r.last) / dt
	// Exponential smoothing with a weight that depends on elapsed time,
	// so irregular ticks do not skew the rate.
	alpha := 1 - math.Exp2(-dt/rateHalfLife)
	r.rate += alpha * (inst - r.rate)
	r.last, r.lastTime = total, now
}

// blockPool recycles the buffers that carry received blocks from a peer's
// reader goroutine to the owner, so steady-state downloading does not
// allocate per block.
type blockPool struct{ p sync.Pool }

func (bp *blockPool) get(n int) []byte {
	if n <= blockSize {
		if b, ok := bp.p.Get().(*[]byte); ok {
			return (*b)[:n]
		}
		b := make([]byte, blockSize)
		return b[:n]
	}
	return make([]byte, n)
}

func (bp *blockPool) put(b []byte) {
	if cap(b) != blockSize {
		return
	}
	b = b[:blockSize]
	bp.p.Put(&b)
}
