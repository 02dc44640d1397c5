package storage

import (
	"testing"
	"time"
)

// TestDropperDecides feeds the dropper 1 MiB writes whose CPU cost
// changes: it keeps the page cache while the writes are cheap, starts
// dropping after the first window of dropLag bytes that costs more than
// dropCost per byte, stays dropping when the writes turn cheap again, and
// hands back each range written since it started once the range is more
// than dropLag behind, oldest first.
func TestDropperDecides(t *testing.T) {
	const mb = 1 << 20
	const win = dropLag / mb                                       // writes per window
	cheap, dear := time.Duration(mb*4/10), time.Duration(mb*16/10) // 0.4 and 1.6 ns per byte
	for _, tc := range []struct {
		name  string
		costs []time.Duration // per window
		from  int             // first write dropped behind, -1 for none
	}{
		{"cheap throughout", []time.Duration{cheap, cheap, cheap, cheap}, -1},
		{"expensive from the start", []time.Duration{dear, cheap, cheap, cheap}, win - 1},
		{"expensive once the warm memory runs out", []time.Duration{cheap, cheap, dear, cheap, cheap}, 3*win - 1},
		{"a window half expensive", []time.Duration{cheap, (cheap + dear) / 2, cheap}, 2*win - 1},
	} {
		dr := dropper{on: true, maxCost: dropCost}
		var dropped []fileRange
		n := len(tc.costs) * win
		for k := 0; k < n; k++ {
			dropping := tc.from >= 0 && k >= tc.from
			if timing := dr.timing(); timing != (tc.from < 0 || k <= tc.from) {
				t.Fatalf("%s: write %d: timing %v", tc.name, k, timing)
			}
			old, drop := dr.wrote(fileRange{off: int64(k) * mb, n: mb}, tc.costs[k/win])
			if drop != dropping {
				t.Fatalf("%s: write %d: dropping %v, want %v", tc.name, k, drop, dropping)
			}
			dropped = append(dropped, old...)
		}
		want := 0
		if tc.from >= 0 {
			want = max(0, n-tc.from-win)
		}
		if len(dropped) != want {
			t.Fatalf("%s: dropped %d ranges, want %d", tc.name, len(dropped), want)
		}
		for i, r := range dropped {
			if r.off != int64(tc.from+i)*mb {
				t.Fatalf("%s: dropped range %d is at %d MiB, want %d", tc.name, i, r.off/mb, tc.from+i)
			}
		}
	}
}
