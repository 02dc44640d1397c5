package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/sowerbt/sower/metainfo"
)

// errLocalTorrent is the one answer torrent-add gives for a "filename" it
// cannot use: whatever went wrong (no such path, no permission, a folder,
// a FIFO or device, too large, not a .torrent), the caller, who may be
// any web page the user visits, learns nothing about the daemon host's
// files. The daemon's log has the reason.
var errLocalTorrent = fmt.Errorf("torrent-add: \"filename\" must name a readable .torrent file (a regular file of at most %d bytes) on the daemon's host", metainfo.MaxFileSize)

// readLocalTorrent reads a .torrent named by a path on the daemon's host.
// Only a regular file is read, and never past the metainfo limit: a FIFO
// or a device is refused before it is opened (opening a FIFO blocks until
// a writer comes; reading one, or /dev/zero, never ends), the file is
// opened without blocking in case the path was swapped meanwhile, and the
// open file must be the regular file that was checked.
func readLocalTorrent(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, st.Mode().Type())
	}
	if st.Size() > metainfo.MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte limit", path, st.Size(), metainfo.MaxFileSize)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fst, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fst.Mode().IsRegular() || !os.SameFile(st, fst) {
		return nil, fmt.Errorf("%s changed while it was opened", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, metainfo.MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > metainfo.MaxFileSize {
		return nil, errors.New(path + ": grew over the size limit while it was read")
	}
	return data, nil
}
