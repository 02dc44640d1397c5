package storage

import "os"

// FileRegioner is implemented by storages that keep data in regular
// files, so an upload can go from the page cache to a socket (sendfile)
// without a copy through user space.
type FileRegioner interface {
	// FileRegion returns the file holding all of [off, off+n), with ok
	// false when the region is not one stretch of one stored file (it
	// crosses a file boundary, lies in padding or in an unwanted file, or
	// the file does not exist): read such a region with ReadAt. The
	// caller must Release the region and must not close its file.
	FileRegion(off, n int64) (r Region, ok bool)
}

// Region is a stretch of one open file, from FileRegion.
type Region struct {
	// File holds the data; it stays open until Release.
	File *os.File
	// Offset is where the region starts in File.
	Offset int64

	d *Dir
	h *handle
}

// Release gives the file back to the storage's handle cache.
func (r Region) Release() {
	if r.h != nil {
		r.d.release(r.h, false)
	}
}

var _ FileRegioner = (*Dir)(nil)

// FileRegion implements FileRegioner.
func (d *Dir) FileRegion(off, n int64) (Region, bool) {
	if off < 0 || n <= 0 || off+n > d.l.total {
		return Region{}, false
	}
	it := d.l.spans(off, n)
	s, ok := it.next()
	if !ok || s.Length != n || d.l.files[s.File].Padding || !d.isWanted(s.File) {
		return Region{}, false
	}
	h, err := d.acquire(s.File, false)
	if err != nil {
		return Region{}, false
	}
	return Region{File: h.f, Offset: s.Offset, d: d, h: h}, true
}
