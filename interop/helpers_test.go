package interop

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/internal/sowertest"
	"github.com/sowerbt/sower/internal/testpeers"
)

// binEnv carries the path of the sower binary built by TestMain to the
// tests, so that no package-level variable is needed.
const binEnv = "SOWER_INTEROP_BIN"

func TestMain(m *testing.M) {
	os.Exit(sowertest.Main(m, binEnv))
}

// startSower runs the sower binary that TestMain built (see
// sowertest.Start).
func startSower(t testing.TB, name string, args ...string) *sowertest.Proc {
	t.Helper()
	bin := sowertest.Bin(t, binEnv)
	return sowertest.Start(t, bin, name, args...)
}

// announcedRe matches sower's debug log of an announce that got through,
// after which a tracker hands its address to other peers.
var announcedRe = regexp.MustCompile(`msg="tracker: announced"`)

// seedDir makes a private copy of the data at src (a file, or a torrent's
// top folder) in a fresh folder laid out as a seeder expects: the folder
// holds the file or the top folder.
func seedDir(t testing.TB, src string) string {
	t.Helper()
	dir := t.TempDir()
	sowertest.CopyTree(t, src, filepath.Join(dir, filepath.Base(src)))
	return dir
}

// waitPeer waits (bounded by d) until a third-party peer holds the whole
// torrent.
func waitPeer(t testing.TB, p *testpeers.Peer, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
}

// allocatedBytes sums the disk blocks held by the regular files under root
// (0 if absent), to follow a download's progress on disk even when files
// are created sparse at full length.
func allocatedBytes(root string) int64 {
	var n int64
	_ = filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// completeRe matches the line `sower get` prints once the download is
// complete and verified.
var completeRe = regexp.MustCompile(`(?m)^\S+: complete in `)
