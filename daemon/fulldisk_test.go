package daemon

import (
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sowerbt/sower/bitfield"
	"github.com/sowerbt/sower/storage"
)

// fullDisk fails writes with ENOSPC once more than allow pieces were
// written, while full is set.
type fullDisk struct {
	storage.Storage
	full    *atomic.Bool
	written *atomic.Int32
	allow   int32
}

func (f *fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() && f.written.Load() >= f.allow {
		return 0, &pathError{syscall.ENOSPC}
	}
	f.written.Add(1)
	return f.Storage.WriteAt(p, off)
}

type pathError struct{ err error }

func (e *pathError) Error() string { return "write data.bin: " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }

func TestFullDiskErrorAndResume(t *testing.T) {
	f := newFixture(t, 1<<20, 32<<10)
	s := seeder(t, f)
	var full atomic.Bool
	var written atomic.Int32
	full.Store(true)
	d, err := Open(Config{DataDir: t.TempDir(), PeerAddr: "127.0.0.1:0", NoDHT: true, RetryAfter: time.Hour, CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.wrapStorage = func(st storage.Storage) storage.Storage {
		return &fullDisk{Storage: st, full: &full, written: &written, allow: 10}
	}
	r := runDaemon(t, d)
	out := t.TempDir()
	add(t, r.Daemon, f, out)
	r.AddPeers(f.ih, s.peerAddr())
	var st Status
	waitFor(t, 60*time.Second, "error state", func() bool {
		st = stateOf(t, r.Daemon, f.ih)
		return st.State == "error"
	})
	if !strings.Contains(st.Error, "no space left on device") || !strings.Contains(st.Error, out) {
		t.Fatalf("error %q does not say the disk is full in %s", st.Error, out)
	}
	det, _ := r.Detail(f.ih)
	have, _ := bitfield.FromBytes(det.Have, st.PieceCount)
	// Of the 10 pieces written, those whose verification the engine had
	// recorded before the run stopped are kept.
	kept := have.Count()
	if kept == 0 || kept > 10 {
		t.Fatalf("%d pieces verified before the disk filled, want 1-10 of the 10 written", kept)
	}
	// Space is back: a start resumes from the checkpoint and completes.
	full.Store(false)
	if err := r.Start(f.ih); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "completion", func() bool { return stateOf(t, r.Daemon, f.ih).State == "seeding" })
	sameFile(t, filepath.Join(out, f.name), f.data)
	if n := int(written.Load()); n != 10+st.PieceCount-kept {
		t.Fatalf("%d piece writes; want 10 before the disk filled and %d after: verified pieces were fetched again", n, st.PieceCount-kept)
	}
}
