package storage

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options tune OpenDir.
type Options struct {
	// Wanted selects files, one flag per file; nil wants all. Unwanted
	// files are never created. Bytes of a piece that fall in an unwanted
	// file go to the parts file instead, so a piece shared with a wanted
	// file can still be verified and served.
	Wanted []bool
	// PartsPath is where the parts file lives, as an OS path. The default
	// is ".<name>.parts" in the download folder, where <name> is the first
	// component of the first file's path (the torrent's name). The file is
	// created only when an unwanted byte is first written.
	PartsPath string
	// MaxOpenFiles bounds the file handles kept open (default 64). The
	// parts file takes one more, and the bound can be exceeded briefly
	// while more files than that are in use by concurrent calls.
	MaxOpenFiles int
	// EarlyWriteback starts the disk write of written data every 32 MiB,
	// so that a later Sync waits only for the last stretch. Set it when
	// the caller will Sync (checkpoints, a download that must be durable
	// before it exits). Otherwise it only moves the block layer's work
	// into the download's critical path.
	EarlyWriteback bool
	// DropBehind lets a download that fills fresh page cache at a high
	// price write its data to disk as it comes and, once it is there,
	// drop it from the page cache, so the kernel refills the pages it just
	// freed (about dropLag bytes stay cached, as with dd's oflag=nocache).
	// Fresh pages are expensive on a VM whose host takes back the guest's
	// free memory: each costs a host fault when first touched. Where
	// fresh pages are cheap, dropping behind costs more than it saves (it
	// does now the disk writes the kernel would otherwise do later). So
	// the writes are timed (CPU per byte of the write
	// calls, over dropLag bytes at a time) and the Dir starts to drop
	// behind once they cost more than dropCost; until then it leaves the
	// page cache alone.
	DropBehind bool
}

// DefaultMaxOpenFiles is the handle bound when Options.MaxOpenFiles is 0.
const DefaultMaxOpenFiles = 64

// Dir stores a torrent in a folder on disk. Files are created on first
// write and immediately extended to full length, so later writes never
// grow them and unwritten regions stay sparse holes. All access goes
// through an os.Root, so neither ".." nor symlinks can lead outside the
// folder. Dir is safe for concurrent use; reads and writes use pread and
// pwrite on shared handles, and only the handle cache is locked.
type Dir struct {
	l       *Layout
	root    *os.Root
	dir     string // the folder, absolute where it can be made so, for messages
	wanted  []bool
	maxOpen int
	early   bool // Options.EarlyWriteback
	behind  dropper
	alloc   allocator
	parts   *partsFile

	// mu guards the open-file cache: handles, lru, dirty and closed. It is
	// held only for map and list updates, never during I/O.
	mu      sync.Mutex
	handles map[int]*handle
	lru     list.List // of *handle, most recently used first
	dirty   []bool    // per file: written since the last Sync
	closed  bool

	// unflushed counts bytes written since writeback was last started,
	// and writebacks how many times it was started; guarded by mu.
	unflushed  int64
	writebacks int
}

// writebackEvery is how many written bytes start an early writeback of
// the file being written (see startWriteback). Small enough that the
// final Sync waits for little, large enough that the hint costs nothing.
const writebackEvery = 32 << 20

// handle is a cached open file. It is closed only when no call uses it
// (refs == 0); one replaced or evicted while in use is doomed and closed by
// its last user.
type handle struct {
	// wmu serializes writes to the file. The kernel does too (a buffered
	// write holds the inode lock), but a writer waiting there spins on
	// the CPU for as long as the other copies its data; waiting here
	// parks only the goroutine.
	wmu      sync.Mutex
	f        *os.File
	file     int
	writable bool
	refs     int
	doomed   bool
	elem     *list.Element
}

var _ Storage = (*Dir)(nil)
var _ DataProber = (*Dir)(nil)

// OpenDir opens (creating if needed) the download folder dir for layout l.
// Zero-length wanted files are created right away, since no write would
// ever create them; all other files appear on first write.
func OpenDir(dir string, l *Layout, opts Options) (*Dir, error) {
	if opts.Wanted != nil && len(opts.Wanted) != l.NumFiles() {
		return nil, fmt.Errorf("storage: %d wanted flags for %d files", len(opts.Wanted), l.NumFiles())
	}
	if opts.MaxOpenFiles < 0 {
		return nil, fmt.Errorf("storage: negative MaxOpenFiles %d", opts.MaxOpenFiles)
	}
	if opts.MaxOpenFiles == 0 {
		opts.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: creating download folder: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: opening download folder: %w", err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	d := &Dir{
		l:       l,
		root:    root,
		dir:     dir,
		maxOpen: opts.MaxOpenFiles,
		early:   opts.EarlyWriteback,
		behind:  dropper{on: opts.DropBehind, maxCost: dropCost},
		handles: make(map[int]*handle),
		dirty:   make([]bool, l.NumFiles()),
	}
	if opts.Wanted != nil {
		d.wanted = append([]bool(nil), opts.Wanted...)
	}
	d.parts, err = d.newParts(dir, opts.PartsPath)
	if err != nil {
		root.Close()
		return nil, err
	}
	for i, f := range l.files {
		if f.Length != 0 || f.Padding || !d.isWanted(i) {
			continue
		}
		f, _, err := d.open(i, true)
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			root.Close()
			return nil, err
		}
	}
	return d, nil
}

func (d *Dir) newParts(dir, partsPath string) (*partsFile, error) {
	p := &partsFile{l: d.l}
	if partsPath != "" {
		p.name = partsPath
		p.open = func(create bool) (*os.File, error) {
			flag := os.O_RDWR
			if create {
				flag |= os.O_CREATE
			}
			return os.OpenFile(partsPath, flag, 0o644)
		}
		return p, nil
	}
	name := ""
	for _, f := range d.l.files {
		if !f.Padding {
			name, _, _ = strings.Cut(f.Path, "/")
			break
		}
	}
	if name == "" {
		name = "torrent" // only padding files: nothing is ever stored
	}
	name = "." + name + ".parts"
	for i, f := range d.l.files {
		if !f.Padding && (f.Path == name || strings.HasPrefix(f.Path, name+"/")) {
			return nil, fmt.Errorf("storage: file %d path %q collides with the parts file", i, f.Path)
		}
	}
	p.name = filepath.Join(dir, name)
	p.open = func(create bool) (*os.File, error) {
		flag := os.O_RDWR
		if create {
			flag |= os.O_CREATE
		}
		return d.root.OpenFile(name, flag, 0o644)
	}
	return p, nil
}

func (d *Dir) isWanted(i int) bool { return d.wanted == nil || d.wanted[i] }

// open opens file i. For writing it creates the file and its folders and
// extends it to full length; for reading a missing file is ErrMissing, and
// a file that cannot be opened for writing (read-only seed) is opened
// read-only. Errors of the write side name the file's OS path and the
// cause (see writeError), as a full disk or read-only folder is reported
// to the user from them.
func (d *Dir) open(i int, write bool) (fh *os.File, writable bool, err error) {
	f := d.l.files[i]
	name := filepath.FromSlash(f.Path)
	if write {
		if dir := path.Dir(f.Path); dir != "." {
			if err := d.root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
				return nil, false, writeError("creating the folder of", d.osPath(f.Path), err)
			}
		}
	}
	// Refuse FIFOs and devices before opening: opening a FIFO blocks.
	st, err := d.root.Stat(name)
	switch {
	case err == nil && st.Mode().IsRegular():
	case errors.Is(err, fs.ErrNotExist) && !write:
		return nil, false, fmt.Errorf("%w: file %q does not exist", ErrMissing, f.Path)
	case err == nil && !st.Mode().IsRegular():
		return nil, false, fmt.Errorf("storage: %q is not a regular file (%v)", f.Path, st.Mode().Type())
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("storage: %w", err)
	}
	flag := os.O_RDWR
	if write {
		flag |= os.O_CREATE
	}
	writable = true
	fh, err = d.root.OpenFile(name, flag, 0o644)
	if err != nil && !write && (errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)) {
		writable = false
		fh, err = d.root.OpenFile(name, os.O_RDONLY, 0)
	}
	if errors.Is(err, fs.ErrNotExist) && !write {
		return nil, false, fmt.Errorf("%w: file %q does not exist", ErrMissing, f.Path)
	}
	if err != nil && write {
		return nil, false, writeError("creating", d.osPath(f.Path), err)
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: %w", err)
	}
	if write {
		st, err := fh.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = fmt.Errorf("not a regular file (%v)", st.Mode().Type())
		}
		if err == nil && st.Size() < f.Length {
			err = fh.Truncate(f.Length)
		}
		if err != nil {
			fh.Close()
			return nil, false, writeError("preparing", d.osPath(f.Path), err)
		}
	}
	return fh, writable, nil
}

// osPath is where the file with torrent path p lives.
func (d *Dir) osPath(p string) string { return filepath.Join(d.dir, filepath.FromSlash(p)) }

// writeError reports a failed write-side operation on the file at path:
// "storage: writing /data/x/y: no space left on device". The cause is the
// bare system error (a full disk, a read-only file system, a permission),
// not an os.PathError repeating a relative path; errors.Is still finds it.
func writeError(op, path string, err error) error {
	var pe *fs.PathError
	var se *os.SyscallError
	switch {
	case errors.As(err, &pe):
		err = pe.Err
	case errors.As(err, &se):
		err = se.Err
	}
	return fmt.Errorf("storage: %s %s: %w", op, path, err)
}

// acquire returns a handle for file i, writable if write is set, from the
// cache or freshly opened. The caller must release it.
func (d *Dir) acquire(i int, write bool) (*handle, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, ErrClosed
	}
	if h := d.handles[i]; h != nil && (h.writable || !write) {
		h.refs++
		d.lru.MoveToFront(h.elem)
		d.mu.Unlock()
		return h, nil
	}
	d.mu.Unlock()

	// Open without the lock so that one slow open does not stall all I/O.
	f, writable, err := d.open(i, write)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		f.Close()
		return nil, ErrClosed
	}
	if h := d.handles[i]; h != nil && (h.writable || !write) {
		// Another call opened it meanwhile; keep theirs.
		h.refs++
		d.lru.MoveToFront(h.elem)
		d.mu.Unlock()
		f.Close()
		return h, nil
	}
	var toClose []*os.File
	if old := d.handles[i]; old != nil {
		toClose = d.drop(old, toClose)
	}
	h := &handle{f: f, file: i, writable: writable, refs: 1}
	h.elem = d.lru.PushFront(h)
	d.handles[i] = h
	for e := d.lru.Back(); e != nil && len(d.handles) > d.maxOpen; {
		prev := e.Prev()
		if old := e.Value.(*handle); old.refs == 0 {
			toClose = d.drop(old, toClose)
		}
		e = prev
	}
	d.mu.Unlock()
	for _, f := range toClose {
		f.Close() // read side or already-counted writes: nothing to report
	}
	return h, nil
}

// drop removes h from the cache; the caller holds d.mu. An unused handle is
// appended to toClose; one in use is doomed.
func (d *Dir) drop(h *handle, toClose []*os.File) []*os.File {
	delete(d.handles, h.file)
	d.lru.Remove(h.elem)
	if h.refs == 0 {
		return append(toClose, h.f)
	}
	h.doomed = true
	return toClose
}

// wroteBytes adds n to the unflushed count and reports whether it passed
// writebackEvery, restarting the count if so.
func (d *Dir) wroteBytes(n int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.unflushed += n
	if d.unflushed < writebackEvery {
		return false
	}
	d.unflushed = 0
	d.writebacks++
	return true
}

// afterWrite is called with n bytes just written at off in h's file,
// and the CPU time the write took if the dropper asked for it. Once the
// dropper drops behind, it starts their disk write and drops the ranges
// more than dropLag behind from the page cache; until then (or without
// DropBehind), EarlyWriteback starts the whole file's disk write every
// writebackEvery bytes.
func (d *Dir) afterWrite(h *handle, off int64, n int, cpu time.Duration) {
	if n <= 0 {
		return
	}
	if d.behind.on {
		old, dropping := d.behind.wrote(fileRange{file: h.file, off: off, n: int64(n)}, cpu)
		if dropping {
			startWriteback(h.f, off, int64(n))
			for _, r := range old {
				d.uncache(r)
			}
			return
		}
	}
	if d.early && d.wroteBytes(int64(n)) {
		startWriteback(h.f, 0, 0)
	}
}

// release returns a handle from acquire; wrote marks the file for Sync.
func (d *Dir) release(h *handle, wrote bool) {
	d.mu.Lock()
	h.refs--
	if wrote {
		d.dirty[h.file] = true
	}
	closeIt := h.doomed && h.refs == 0
	d.mu.Unlock()
	if closeIt {
		h.f.Close()
	}
}

// ReadAt implements Storage. Padding reads as zeros, sparse holes read as
// zeros, and a missing or too short file is ErrMissing. Bytes of unwanted
// files come from the parts file.
func (d *Dir) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("storage: read at negative offset %d", off)
	}
	done := 0
	it := d.l.spans(off, int64(len(p)))
	for {
		s, ok := it.next()
		if !ok {
			break
		}
		dst := p[done : done+int(s.Length)]
		switch {
		case d.l.files[s.File].Padding:
			clear(dst)
		case !d.isWanted(s.File):
			n, err := d.parts.readAt(dst, d.l.FileOffset(s.File)+s.Offset)
			if err != nil {
				return done + n, err
			}
		default:
			h, err := d.acquire(s.File, false)
			if err != nil {
				return done, err
			}
			n, err := h.f.ReadAt(dst, s.Offset)
			d.release(h, false)
			if err == io.EOF {
				err = fmt.Errorf("%w: file %q ends at %d, before its length %d", ErrMissing, d.l.files[s.File].Path, s.Offset+int64(n), d.l.files[s.File].Length)
			}
			if err != nil {
				return done + n, fmt.Errorf("storage: reading %q: %w", d.l.files[s.File].Path, err)
			}
		}
		done += len(dst)
	}
	if done < len(p) {
		return done, io.EOF
	}
	return done, nil
}

// WriteAt implements Storage. Bytes in padding files are dropped, bytes in
// unwanted files go to the parts file.
func (d *Dir) WriteAt(p []byte, off int64) (int, error) {
	if err := checkWrite(d.l, off, len(p)); err != nil {
		return 0, err
	}
	done := 0
	it := d.l.spans(off, int64(len(p)))
	for {
		s, ok := it.next()
		if !ok {
			return done, nil
		}
		src := p[done : done+int(s.Length)]
		switch {
		case d.l.files[s.File].Padding:
		case !d.isWanted(s.File):
			n, err := d.parts.writeAt(src, d.l.FileOffset(s.File)+s.Offset)
			if err != nil {
				return done + n, err
			}
		default:
			h, err := d.acquire(s.File, true)
			if err != nil {
				return done, err
			}
			var n int
			d.alloc.reserve(h.f, s.Offset, int64(len(src)))
			h.wmu.Lock()
			cpu := cpuOf(d.behind.timing(), func() { n, err = writeChunked(h.f, src, s.Offset) })
			h.wmu.Unlock()
			d.afterWrite(h, s.Offset, n, cpu)
			d.release(h, n > 0)
			if err != nil {
				return done + n, writeError("writing", d.osPath(d.l.files[s.File].Path), err)
			}
		}
		done += len(src)
	}
}

// HasData implements DataProber. A missing file, a sparse hole (where the
// OS can report holes), padding and an unwanted file without a parts slot
// hold no data.
func (d *Dir) HasData(off, n int64) (bool, error) {
	it := d.l.spans(off, n)
	for {
		s, ok := it.next()
		if !ok {
			return false, nil
		}
		switch {
		case d.l.files[s.File].Padding:
		case !d.isWanted(s.File):
			g := d.l.FileOffset(s.File) + s.Offset
			has, err := d.parts.hasAny(int(g/d.l.pieceLength), int((g+s.Length-1)/d.l.pieceLength))
			if has || err != nil {
				return has, err
			}
		default:
			h, err := d.acquire(s.File, false)
			if errors.Is(err, ErrMissing) {
				continue
			}
			if err != nil {
				return false, err
			}
			has := dataIn(h.f, s.Offset, s.Length)
			d.release(h, false)
			if has {
				return true, nil
			}
		}
	}
}

// Sync implements Storage: it flushes every file written since the last
// Sync, including ones whose handles were evicted meanwhile, and the parts
// file.
func (d *Dir) Sync() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	var files []int
	for i, dirty := range d.dirty {
		if dirty {
			files = append(files, i)
			d.dirty[i] = false
		}
	}
	d.mu.Unlock()
	var errs []error
	for _, i := range files {
		h, err := d.acquire(i, false)
		if err == nil {
			err = h.f.Sync()
			d.release(h, err != nil) // keep it dirty so a later Sync retries
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("storage: syncing %q: %w", d.l.files[i].Path, err))
		}
	}
	if err := d.parts.sync(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Close implements Storage. Handles still in use by other calls are closed
// too; the OS keeps their descriptors valid until those calls return.
func (d *Dir) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var errs []error
	for _, h := range d.handles {
		if err := h.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("storage: closing %q: %w", d.l.files[h.file].Path, err))
		}
	}
	clear(d.handles)
	d.lru.Init()
	d.mu.Unlock()
	if err := d.parts.close(); err != nil {
		errs = append(errs, fmt.Errorf("storage: closing parts file: %w", err))
	}
	if err := d.root.Close(); err != nil {
		errs = append(errs, fmt.Errorf("storage: closing download folder: %w", err))
	}
	return errors.Join(errs...)
}
