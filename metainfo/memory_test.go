package metainfo

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/sowerbt/sower/bencode"
)

// TestParseMemory parses 1 MB torrents whose bulk is empty dicts or
// lists, where the parser keeps arbitrary values (an unknown key), and
// where it checks them (info.files). Parsing is refused as over the
// bencode memory budget, having allocated at most about the budget (16
// bytes per byte of input); it allocated 550 MB and more before.
func TestParseMemory(t *testing.T) {
	info := "4:infod6:lengthi1e4:name1:a12:piece lengthi16384e6:pieces20:" + strings.Repeat("a", 20) + "e"
	for name, torrent := range map[string]string{
		"unknown key":   "d" + info + "1:xl" + strings.Repeat("de", 1<<19) + "ee",
		"lists":         "d" + info + "1:xl" + strings.Repeat("le", 1<<19) + "ee",
		"info.files":    "d4:infod5:filesl" + strings.Repeat("de", 1<<19) + "e4:name1:a12:piece lengthi16384e6:pieces20:" + strings.Repeat("a", 20) + "ee",
		"announce-list": "d13:announce-listl" + strings.Repeat("le", 1<<19) + "e" + info + "e",
	} {
		data := []byte(torrent)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Parse(data)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		if !errors.Is(err, bencode.ErrBudget) {
			t.Errorf("%s: %v, want over the memory budget", name, err)
		}
		if limit := uint64(bencode.DefaultMemoryFactor+2) * uint64(len(data)); alloc > limit {
			t.Errorf("%s: %d MB allocated parsing %d MB, want at most %d MB", name, alloc>>20, len(data)>>20, limit>>20)
		}
		t.Logf("%s: %d MB allocated parsing %d MB", name, alloc>>20, len(data)>>20)
	}
	// A torrent of 20,000 one-byte files with short names, an extreme of
	// real data, stays within it.
	var b strings.Builder
	b.WriteString("d4:infod5:filesl")
	const n = 20_000
	for i := range n {
		name := fmt.Sprint(i)
		fmt.Fprintf(&b, "d6:lengthi1e4:pathl%d:%see", len(name), name)
	}
	pieces := (n + 16383) / 16384
	fmt.Fprintf(&b, "e4:name1:a12:piece lengthi16384e6:pieces%d:%se", 20*pieces, strings.Repeat("a", 20*pieces))
	if m, err := Parse([]byte(b.String() + "e")); err != nil || len(m.Info.Files) != n {
		t.Errorf("%d small files: %v", n, err)
	}
}
