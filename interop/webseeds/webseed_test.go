package webseeds

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/sowertest"
	"github.com/sowerbt/sower/internal/testpeers"
)

// Bounds of the steps of a test. Generous: on a loaded 2-core machine the
// transfers here take seconds.
const (
	seedReadyWait = 90 * time.Second
	transferWait  = 2 * time.Minute
	// stallWait bounds waiting for a hung web seed to be given up on:
	// webseed.DefaultTimeout (30 s), which `sower get` cannot change,
	// plus a margin.
	stallWait = 90 * time.Second
)

// pieceLen is the piece length of the test torrents.
const pieceLen = 256 << 10

// data is the content of the tests: a single file and a folder whose
// files make pieces straddle file boundaries, with a small and an empty
// file between big ones and a name that needs percent-encoding in a URL.
// Both sit in one folder, root, which a web server can serve as is.
type data struct {
	root   string
	single string // root/single.bin, 16 MiB
	multi  string // root/multi, about 15 MiB in 5 files
}

// singleSize is the size of data.single: well above the 1 MiB a web seed
// client may take whole from a server that ignores Range.
const singleSize = 16 << 20

func makeData(t testing.TB) data {
	t.Helper()
	root := t.TempDir()
	d := data{root: root, single: filepath.Join(root, "single.bin"), multi: filepath.Join(root, "multi")}
	testpeers.RandomFile(t, d.single, singleSize)
	for _, f := range []struct {
		name string
		size int64
	}{
		{"a.bin", 5<<20 + 12345},
		{"small.txt", 1000},
		{"empty.dat", 0},
		{"sub dir/b c.bin", 7<<20 + 777},
		{"sub dir/deeper/c%d.bin", 3<<20 + 3},
	} {
		testpeers.RandomFile(t, filepath.Join(d.multi, filepath.FromSlash(f.name)), f.size)
	}
	return d
}

// treeSize is the total size of the regular files under path.
func treeSize(t testing.TB, path string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(path, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// createTorrent makes a .torrent of src with `sower create`, naming
// webSeed as its one url-list entry and no tracker.
func createTorrent(t testing.TB, src, webSeed string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(src)+".torrent")
	runSower(t, "create", "--quiet", "--no-date", "--piece-length", strconv.Itoa(pieceLen),
		"--webseed", webSeed, "-o", out, src)
	if info := runSower(t, "info", out); !strings.Contains(info, webSeed) {
		t.Fatalf("sower info does not show the web seed %s:\n%s", webSeed, info)
	}
	return out
}

// startGet starts `sower get` of torrent into a fresh folder, dialling
// peers, and returns the process and the folder. With seed it keeps
// running after completion (--seed), so that a test can wait for log lines
// about web seeds that are still being tried.
func startGet(t testing.TB, torrent string, seed bool, peers ...string) (*sowertest.Proc, string) {
	t.Helper()
	out := t.TempDir()
	args := []string{"get", "--no-dht", "--port", "0", "--quiet", "-o", out}
	if seed {
		args = append(args, "--seed")
	}
	for _, p := range peers {
		args = append(args, "--peer", p)
	}
	return startSower(t, "get", append(args, torrent)...), out
}

// startSowerSeed starts `sower seed` of torrent from a private copy of src
// and returns its address once it has checked its data and listens.
// uploadLimit ("" for none) slows it so that a web seed surely gets its
// turn.
func startSowerSeed(t testing.TB, torrent, src, uploadLimit string) string {
	t.Helper()
	port := strconv.Itoa(testpeers.FreePort(t))
	args := []string{"seed", "--no-dht", "--quiet", "--port", port}
	if uploadLimit != "" {
		args = append(args, "--upload-limit", uploadLimit)
	}
	p := startSower(t, "seed", append(args, torrent, holder(t, src))...)
	waitLog(t, p, seedReadyWait, regexp.MustCompile(`msg=started`))
	return "127.0.0.1:" + port
}

// startAria2Seed starts aria2c seeding torrent from a private copy of src
// and returns its address once it has checked its data.
func startAria2Seed(t testing.TB, torrent, src string) string {
	t.Helper()
	p := testpeers.Aria2Seed(t, torrent, holder(t, src))
	waitSeeder(t, p, seedReadyWait)
	return p.Addr()
}

// accessStatuses counts the HTTP statuses in an nginx access log
// (testpeers.NginxLogFormat, status second to last).
func accessStatuses(t testing.TB, path string) map[int]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[int]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		st, err := strconv.Atoi(fields[len(fields)-2])
		if err != nil {
			t.Fatalf("access log line %q: status: %v", sc.Text(), err)
		}
		counts[st]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return counts
}

// TestWebSeedAlone has nginx serve a single-file and a multi-file
// torrent's data, and `sower get` download each from the web seed alone,
// with no peers at all.
func TestWebSeedAlone(t *testing.T) {
	d := makeData(t)
	srv := testpeers.StartNginx(t, d.root)
	// The group returns once its parallel subtests are done.
	t.Run("group", func(t *testing.T) {
		for _, tc := range []struct {
			name, src, url string
		}{
			{"single-file-url", d.single, srv.URL + "single.bin"},
			// A URL ending in "/" for a single-file torrent: the name is appended.
			{"single-folder-url", d.single, srv.URL},
			{"multi", d.multi, srv.URL},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				torrent := createTorrent(t, tc.src, tc.url)
				get, out := startGet(t, torrent, false)
				get.ExitOK(t, transferWait)
				testpeers.SameTree(t, tc.src, filepath.Join(out, filepath.Base(tc.src)))
				c := parseCompletion(t, get.Output(t))
				total := treeSize(t, tc.src)
				if c.web != c.downloaded || c.downloaded < total {
					t.Errorf("completion line: downloaded %d bytes, %d from web seeds; want all %d from web seeds", c.downloaded, c.web, total)
				}
				if c.hashFailures != 0 {
					t.Errorf("completion line: %d hash failures from a correct web seed", c.hashFailures)
				}
			})
		}
	})
	st := accessStatuses(t, srv.AccessLog)
	if st[206] == 0 {
		t.Errorf("no 206 answers in nginx's access log (%v): Range not used", st)
	}
	for code, n := range st {
		if code != 206 && code != 200 {
			t.Errorf("nginx answered %d %d times (%v)", code, n, st)
		}
	}
}

// TestWebSeedWithPeers downloads from a web seed, a Sower seed and an aria2
// seed at once. nginx is rate-limited per connection so that the peers get
// their share; the completion line must show bytes from both kinds of
// sources.
func TestWebSeedWithPeers(t *testing.T) {
	d := makeData(t)
	srv := testpeers.StartNginx(t, d.root, "limit_rate 2m;")
	torrent := createTorrent(t, d.single, srv.URL+"single.bin")
	sowerPeer := startSowerSeed(t, torrent, d.single, "")
	aria2Peer := startAria2Seed(t, torrent, d.single)

	get, out := startGet(t, torrent, false, sowerPeer, aria2Peer)
	get.ExitOK(t, transferWait)
	testpeers.SameTree(t, d.single, filepath.Join(out, "single.bin"))
	c := parseCompletion(t, get.Output(t))
	t.Logf("downloaded %d bytes, %d from the web seed", c.downloaded, c.web)
	if c.web <= 0 || c.web >= singleSize {
		t.Errorf("web seed bytes %d, want more than 0 and less than %d", c.web, singleSize)
	}
	if c.downloaded-c.web <= 0 {
		t.Errorf("no bytes from peers: downloaded %d, %d from web seeds", c.downloaded, c.web)
	}
	if accessStatuses(t, srv.AccessLog)[206] == 0 {
		t.Error("nginx served no 206 answer")
	}
}

// badCase is a web seed that misbehaves in one way.
type badCase struct {
	name string
	// setup starts the bad web seed for the test data and returns the
	// source folder of the torrent and its web seed URL.
	setup func(t *testing.T, d data) (src, url string)
	// peer starts the other source of the download and returns its
	// address.
	peer func(t *testing.T, torrent, src string) string
	// logParts must all appear on one line of sower's log.
	logParts []string
	// wait bounds the wait for that line after completion.
	wait time.Duration
	// check, if set, checks the completion line.
	check func(t *testing.T, c completion)
}

// corruptCopy copies the data under src into a fresh folder with one byte
// of every piece flipped, so that whatever a web seed serves from it
// fails the hash check.
func corruptCopy(t *testing.T, src string) string {
	t.Helper()
	dir := holder(t, src)
	path := filepath.Join(dir, filepath.Base(src))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := pieceLen / 2; off < len(b); off += pieceLen {
		b[off] ^= 0xff
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBadWebSeed runs a download whose web seed misbehaves, with a Sower or
// an aria2 seed as the other source: the download must complete,
// byte-identical, and sower must log a line naming the problem.
func TestBadWebSeed(t *testing.T) {
	d := makeData(t)
	sowerSeed := func(t *testing.T, torrent, src string) string {
		return startSowerSeed(t, torrent, src, "")
	}
	// A slow Sower seed leaves the web seed time to deliver its bad data.
	slowSowerSeed := func(t *testing.T, torrent, src string) string {
		return startSowerSeed(t, torrent, src, "4M")
	}
	aria2Seed := func(t *testing.T, torrent, src string) string {
		return startAria2Seed(t, torrent, src)
	}
	cases := []badCase{
		{
			name: "corrupted-file",
			setup: func(t *testing.T, d data) (string, string) {
				srv := testpeers.StartNginx(t, corruptCopy(t, d.single))
				return d.single, srv.URL + "single.bin"
			},
			peer:     slowSowerSeed,
			logParts: []string{"dropping web seed for bad data", "single.bin"},
			wait:     transferWait,
			check: func(t *testing.T, c completion) {
				if c.hashFailures == 0 {
					t.Errorf("completion line counts no hash failures from the corrupted web seed")
				}
			},
		},
		{
			name: "missing-file-404",
			setup: func(t *testing.T, d data) (string, string) {
				root := holder(t, d.multi)
				// The first file: a web seed's first runs start there.
				if err := os.Remove(filepath.Join(root, "multi", "a.bin")); err != nil {
					t.Fatal(err)
				}
				srv := testpeers.StartNginx(t, root)
				return d.multi, srv.URL
			},
			peer:     aria2Seed,
			logParts: []string{"web seed failed", "a.bin", "404"},
			wait:     transferWait,
		},
		{
			name: "range-ignored",
			setup: func(t *testing.T, d data) (string, string) {
				srv := testpeers.StartNginx(t, d.root, "max_ranges 0;")
				return d.single, srv.URL + "single.bin"
			},
			peer:     sowerSeed,
			logParts: []string{"web seed failed", "single.bin", "ignores Range"},
			wait:     transferWait,
		},
		{
			name: "redirect-loop",
			setup: func(t *testing.T, d data) (string, string) {
				srv := testpeers.StartNginx(t, d.root, "location = /loop { return 302 /loop; }")
				return d.single, srv.URL + "loop"
			},
			peer:     aria2Seed,
			logParts: []string{"web seed failed", "/loop", "redirect loop"},
			wait:     transferWait,
		},
		{
			name: "hangs",
			setup: func(t *testing.T, d data) (string, string) {
				h := startHangServer(t)
				t.Cleanup(func() {
					if h.Accepted() == 0 {
						t.Error("sower never connected to the hanging web seed")
					}
				})
				return d.single, h.URL() + "single.bin"
			},
			peer:     aria2Seed,
			logParts: []string{"web seed failed", "single.bin", "stalled"},
			wait:     stallWait,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src, url := tc.setup(t, d)
			torrent := createTorrent(t, src, url)
			peer := tc.peer(t, torrent, src)
			// --seed keeps sower running after completion, so that a web
			// seed request still in flight then can end and be logged.
			get, out := startGet(t, torrent, true, peer)
			waitLog(t, get, transferWait, completeRe)
			testpeers.SameTree(t, src, filepath.Join(out, filepath.Base(src)))
			c := parseCompletion(t, get.Output(t))
			t.Logf("downloaded %d bytes, %d from the web seed, %d wasted, %d hash failures", c.downloaded, c.web, c.wasted, c.hashFailures)

			deadline := time.Now().Add(tc.wait)
			for !sowertest.HasLine(get.Output(t), tc.logParts...) {
				if time.Now().After(deadline) {
					t.Fatalf("no log line with all of %q within %v of completion", tc.logParts, tc.wait)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
			interrupt(t, get, 30*time.Second)
		})
	}
}
