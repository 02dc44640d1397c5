package daemon

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mappedKiB sums the resident KiB of this process's maps of file path,
// from /proc/self/smaps.
func mappedKiB(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			in = len(f) >= 6 && f[5] == path
		case in && len(f) >= 2 && f[0] == "Rss:":
			v, _ := strconv.ParseInt(f[1], 10, 64)
			sum += v
		}
	}
	return sum
}

// TestStoreRelease checks that release takes the database's mapped pages
// out of the resident set, that the data read afterwards are intact, and
// that a store nobody used since is left alone.
func TestStoreRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sower.db")
	s, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	const n = 500
	meta := bytes.Repeat([]byte("m"), 300)
	for i := range n {
		r := record{ID: i + 1, InfoHash: fmt.Sprintf("%040x", i), Name: "file" + strconv.Itoa(i), DownloadDir: "/data"}
		if err := s.put(meta, &r); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.loadAll(); err != nil {
		t.Fatal(err)
	}
	before := mappedKiB(t, path)
	if before == 0 {
		t.Fatal("no resident pages of the database map after reading every record; is the map found?")
	}
	if err := s.release(); err != nil {
		t.Fatal(err)
	}
	after := mappedKiB(t, path)
	t.Logf("resident map of %d records: %d KiB before release, %d KiB after", n, before, after)
	if after != 0 {
		t.Errorf("%d KiB of the database map still resident after release (%d before)", after, before)
	}
	if s.used.Load() {
		t.Error("release left the store marked used")
	}
	recs, metas, err := s.loadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n || !bytes.Equal(metas[n-1], meta) || recs[n-1].Name != "file"+strconv.Itoa(n-1) {
		t.Fatalf("after release: %d records, last %+v", len(recs), recs[len(recs)-1])
	}
	if mappedKiB(t, path) == 0 {
		t.Error("reading every record again mapped no page")
	}
	if !s.used.Load() {
		t.Error("a read did not mark the store used")
	}
}
