package storage

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// Vectored is implemented by storages that move a list of buffers, laid
// end to end in the byte space, in one call: Dir does it with one preadv
// or pwritev per file instead of a system call per buffer. The engine
// keeps a piece as the 16 KiB blocks it arrived in and serves adjacent
// blocks together, so this saves a copy or a system call per block.
type Vectored interface {
	// ReadVecAt fills bufs in order from the bytes at off, as ReadAt
	// would fill their concatenation.
	ReadVecAt(bufs [][]byte, off int64) (int, error)
	// WriteVecAt writes bufs in order at off, as WriteAt would write
	// their concatenation.
	WriteVecAt(bufs [][]byte, off int64) (int, error)
}

// ReadVec reads bufs at off from s, in one call when s is Vectored and
// with one ReadAt per buffer otherwise.
func ReadVec(s Storage, bufs [][]byte, off int64) (int, error) {
	if v, ok := s.(Vectored); ok {
		return v.ReadVecAt(bufs, off)
	}
	return eachBuf(s.ReadAt, bufs, off)
}

// WriteVec writes bufs at off to s, in one call when s is Vectored.
// Otherwise it joins them and makes one WriteAt, so that a storage sees
// a piece written whole, as it would without WriteVec.
func WriteVec(s Storage, bufs [][]byte, off int64) (int, error) {
	if v, ok := s.(Vectored); ok {
		return v.WriteVecAt(bufs, off)
	}
	return s.WriteAt(bytes.Join(bufs, nil), off)
}

// eachBuf applies a ReadAt or WriteAt to each buffer in turn.
func eachBuf(f func([]byte, int64) (int, error), bufs [][]byte, off int64) (int, error) {
	done := 0
	for _, b := range bufs {
		n, err := f(b, off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// maxIov is the most buffers one preadv or pwritev takes (IOV_MAX).
const maxIov = 1024

// maxWrite is the most bytes Dir gives the kernel in one write. The
// kernel backs a buffered write with page-cache folios as large as the
// write, and large folios need high-order free memory. On a virtual
// machine whose guest returns free memory to the host (free page
// reporting), that is mostly memory the host took back, and each page of
// it costs a host fault when first touched, while smaller folios come
// from the smaller free blocks the kernel has left over, which the host
// has not taken. So smaller writes are cheaper as long as such blocks
// last (afterwards see Options.DropBehind); with plenty of cheap memory
// the two sizes cost the same.
const maxWrite = 256 << 10

// capBytes returns the leading buffers of bufs that hold at most limit
// bytes, or the first limit bytes of the first buffer if it alone holds
// more.
func capBytes(bufs [][]byte, limit int) [][]byte {
	n := 0
	for i, b := range bufs {
		if n+len(b) > limit {
			if i == 0 {
				return [][]byte{b[:limit]}
			}
			return bufs[:i]
		}
		n += len(b)
	}
	return bufs
}

// writeChunked writes p to f at off in calls of at most maxWrite bytes.
func writeChunked(f *os.File, p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		n, err := f.WriteAt(p[done:min(len(p), done+maxWrite)], off+int64(done))
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func vecLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// ReadVecAt implements Vectored. A region inside one stored file is read
// with preadv; any other (crossing files, padding, unwanted files) goes
// buffer by buffer through ReadAt.
func (d *Dir) ReadVecAt(bufs [][]byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d", off)
	}
	total := vecLen(bufs)
	file, foff, ok := d.oneFile(off, total)
	if !ok {
		return eachBuf(d.ReadAt, bufs, off)
	}
	h, err := d.acquire(file, false)
	if err != nil {
		return 0, err
	}
	n, err := readv(h.f, bufs, foff)
	d.release(h, false)
	if err == io.EOF {
		err = fmt.Errorf("%w: file %q ends at %d, before its length %d", ErrMissing, d.l.files[file].Path, foff+int64(n), d.l.files[file].Length)
	}
	if err != nil {
		return n, fmt.Errorf("storage: reading %q: %w", d.l.files[file].Path, err)
	}
	return n, nil
}

// WriteVecAt implements Vectored: pwritev inside one stored file, WriteAt
// per buffer otherwise.
func (d *Dir) WriteVecAt(bufs [][]byte, off int64) (int, error) {
	total := vecLen(bufs)
	if err := checkWrite(d.l, off, total); err != nil {
		return 0, err
	}
	file, foff, ok := d.oneFile(off, total)
	if !ok {
		return eachBuf(d.WriteAt, bufs, off)
	}
	h, err := d.acquire(file, true)
	if err != nil {
		return 0, err
	}
	var n int
	d.alloc.reserve(h.f, foff, int64(total))
	h.wmu.Lock()
	cpu := cpuOf(d.behind.timing(), func() { n, err = writev(h.f, bufs, foff) })
	h.wmu.Unlock()
	d.afterWrite(h, foff, n, cpu)
	d.release(h, n > 0)
	if err != nil {
		return n, writeError("writing", d.osPath(d.l.files[file].Path), err)
	}
	return n, nil
}

// oneFile reports whether [off, off+n) lies in a single wanted, stored
// (not padding) file, and where in it.
func (d *Dir) oneFile(off int64, n int) (file int, foff int64, ok bool) {
	if n == 0 {
		return 0, 0, false
	}
	it := d.l.spans(off, int64(n))
	s, ok := it.next()
	if !ok || s.Length != int64(n) || d.l.files[s.File].Padding || !d.isWanted(s.File) {
		return 0, 0, false
	}
	return s.File, s.Offset, true
}
