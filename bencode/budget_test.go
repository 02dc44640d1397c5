package bencode

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestMemoryBudget decodes 1 MB of empty dicts and lists into any: each
// is refused as over the budget (without one, 10 MB of dicts took 320 MB of
// live heap). The memory this saves is measured by metainfo's
// TestParseMemory.
func TestMemoryBudget(t *testing.T) {
	for _, unit := range []string{"de", "le"} {
		in := []byte("l" + strings.Repeat(unit, 1<<19) + "e")
		var v any
		var err error
		n := allocated(func() { err = Unmarshal(in, &v) })
		var se *SyntaxError
		if !errors.Is(err, ErrBudget) || !errors.As(err, &se) {
			t.Errorf("%s x 512K: error %v, want a SyntaxError wrapping ErrBudget", unit, err)
		}
		t.Logf("%s x 512K: %d MB allocated before the error", unit, n>>20)
		v = nil
	}
	// Typed decoding is charged too.
	var l []map[string]int
	if err := Unmarshal([]byte("l"+strings.Repeat("de", 1<<19)+"e"), &l); !errors.Is(err, ErrBudget) {
		t.Errorf("[]map[string]int of 512K empty dicts: %v, want ErrBudget", err)
	}
	// Real-looking data, a list of small file dicts, is well within it,
	// and the limit can be lifted or set.
	files := "l" + strings.Repeat("d6:lengthi1e4:pathl1:aee", 100_000) + "e"
	var anyv any
	if err := Unmarshal([]byte(files), &anyv); err != nil {
		t.Errorf("100,000 small file dicts: %v", err)
	}
	if err := (DecodeOptions{MaxMemory: -1}).Unmarshal([]byte("l"+strings.Repeat("de", 1<<19)+"e"), &anyv); err != nil {
		t.Errorf("no budget: %v", err)
	}
	if err := (DecodeOptions{MaxMemory: 100}).Unmarshal([]byte("ldededee"), &anyv); !errors.Is(err, ErrBudget) {
		t.Errorf("100-byte budget, 3 dicts: %v, want ErrBudget", err)
	}
}
