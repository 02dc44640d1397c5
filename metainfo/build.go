package metainfo

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// BuildOptions say what goes into a torrent besides the data.
type BuildOptions struct {
	// Trackers are announce URLs. The first becomes "announce"; when there
	// are several, all are also listed in "announce-list", one per tier,
	// so clients try them in the given order (what mktorrent and
	// libtorrent do).
	Trackers []string
	// WebSeeds become the BEP 19 "url-list".
	WebSeeds []string
	// Private sets the BEP 27 private flag.
	Private bool
	// PieceLength in bytes; 0 picks AutoPieceLength(total).
	PieceLength int64
	Comment     string
	CreatedBy   string
	// DHTNodes are "host:port" bootstrap nodes written to "nodes" (BEP 5).
	DHTNodes []string
	// NoDate omits "creation date", making the output reproducible.
	NoDate bool
	// Workers is the number of hashing goroutines; 0 means GOMAXPROCS.
	Workers int
	// Logger receives warnings, such as skipped symbolic links; nil means
	// slog.Default().
	Logger *slog.Logger
}

const (
	minAutoPiece = 16 << 10
	maxAutoPiece = 16 << 20
	// targetPieces is the upper end of the 1000..2000 piece range that
	// AutoPieceLength aims for: few enough that the metainfo stays small,
	// many enough that peers can trade pieces early.
	targetPieces = 2000
	// readChunk is the unit of the reader: large enough that a read costs
	// little per byte, small enough that read-ahead stays cheap.
	readChunk = 4 << 20
	// maxChunks bounds the chunks in flight (read but not yet hashed), so
	// that Build needs at most maxChunks*readChunk (48 MiB) of buffers for
	// any total size and any piece length.
	maxChunks = 12
)

// AutoPieceLength picks a piece length for total bytes of data: the
// smallest power of two that gives at most 2000 pieces (hence 1000..2000
// pieces when not clamped), clamped to 16 KiB..16 MiB.
func AutoPieceLength(total int64) int64 {
	pl := int64(minAutoPiece)
	for pl < maxAutoPiece && (total+pl-1)/pl > targetPieces {
		pl *= 2
	}
	return pl
}

// srcFile is a file found on disk, in piece-space order.
type srcFile struct {
	abs  string
	rel  []string // path components below the root (nil for a single file)
	size int64
}

// Build hashes the file or folder at root and returns the torrent
// describing it. A regular file gives a single-file torrent; a folder gives
// a multi-file torrent named after the folder, with its files in the order
// of their paths compared component by component as bytes (the order of a
// sorted recursive walk). Empty folders are ignored; empty files are kept.
// Symbolic links inside the folder are not followed: each is skipped with a
// warning on opts.Logger. Devices, sockets and FIFOs are refused. The root
// itself may be a symbolic link, since the user named it.
//
// Files are read in order by one goroutine in large chunks with a bounded
// read-ahead, and pieces are hashed in parallel by opts.Workers goroutines,
// so memory stays under ~48 MiB whatever the size. progress, if not nil,
// is called from the calling goroutine a few times per second and once at
// the end with the bytes hashed so far and the total.
func Build(ctx context.Context, root string, opts BuildOptions, progress func(hashed, total int64)) (*MetaInfo, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	name, files, err := collect(root, log)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, f := range files {
		if f.size > math.MaxInt64-total {
			return nil, fmt.Errorf("%s: total size overflows", f.abs)
		}
		total += f.size
	}
	if total == 0 {
		return nil, fmt.Errorf("%s: nothing to share, all files are empty", root)
	}
	pl := opts.PieceLength
	switch {
	case pl == 0:
		pl = AutoPieceLength(total)
	case pl < 0 || pl > MaxPieceLength:
		return nil, fmt.Errorf("piece length %d out of range 1..%d", pl, MaxPieceLength)
	}
	m := &MetaInfo{Comment: opts.Comment, CreatedBy: opts.CreatedBy}
	if err := applyOptions(m, opts); err != nil {
		return nil, err
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	log.Debug("hashing", "root", root, "files", len(files), "bytes", total, "piece_length", pl, "workers", workers)
	start := time.Now()
	pieces, err := hashFiles(ctx, files, total, pl, workers, progress)
	if err != nil {
		return nil, err
	}
	log.Debug("hashed", "pieces", len(pieces), "elapsed", time.Since(start))
	m.Info = Info{Name: name, PieceLength: pl, Pieces: pieces, Private: opts.Private}
	if files[0].rel == nil {
		m.Info.Length = total
	} else {
		m.Info.Files = make([]File, len(files))
		for i, f := range files {
			m.Info.Files[i] = File{Path: f.rel, Length: f.size}
		}
	}
	if m.InfoBytes, err = encodeInfo(&m.Info); err != nil {
		return nil, err
	}
	m.InfoHash = sha1.Sum(m.InfoBytes)
	if !opts.NoDate {
		m.CreationDate = time.Now().UTC().Truncate(time.Second)
	}
	return m, nil
}

// applyOptions checks and copies the trackers, web seeds and nodes.
func applyOptions(m *MetaInfo, opts BuildOptions) error {
	for _, tr := range opts.Trackers {
		if err := checkURL(tr, "http", "https", "udp"); err != nil {
			return fmt.Errorf("tracker %q: %w", tr, err)
		}
	}
	if len(opts.Trackers) > 0 {
		m.Announce = opts.Trackers[0]
	}
	if len(opts.Trackers) > 1 {
		for _, tr := range opts.Trackers {
			m.AnnounceList = append(m.AnnounceList, []string{tr})
		}
	}
	for _, ws := range opts.WebSeeds {
		if err := checkURL(ws, "http", "https", "ftp"); err != nil {
			return fmt.Errorf("web seed %q: %w", ws, err)
		}
		m.URLList = append(m.URLList, ws)
	}
	for _, n := range opts.DHTNodes {
		host, port, err := net.SplitHostPort(n)
		if err != nil {
			return fmt.Errorf("DHT node %q: %w", n, err)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || host == "" {
			return fmt.Errorf("DHT node %q: want HOST:PORT with port 1..65535", n)
		}
		m.Nodes = append(m.Nodes, n)
	}
	return nil
}

func checkURL(s string, schemes ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	for _, sc := range schemes {
		if strings.EqualFold(u.Scheme, sc) {
			if u.Host == "" {
				return errors.New("no host")
			}
			return nil
		}
	}
	return fmt.Errorf("scheme must be one of %s", strings.Join(schemes, ", "))
}

// collect finds the files under root, in piece-space order.
func collect(root string, log *slog.Logger) (string, []srcFile, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", root, err)
	}
	name := filepath.Base(abs)
	if name == string(filepath.Separator) || name == "." {
		return "", nil, fmt.Errorf("%s: cannot name a torrent after a file system root", root)
	}
	if err := ValidatePath([]string{name}); err != nil {
		return "", nil, fmt.Errorf("%s: unusable as a torrent name: %w", root, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", nil, fmt.Errorf("read source: %w", err)
	}
	switch {
	case fi.Mode().IsRegular():
		return name, []srcFile{{abs: abs, size: fi.Size()}}, nil
	case fi.IsDir():
		var files []srcFile
		if err := walk(abs, nil, &files, log); err != nil {
			return "", nil, err
		}
		if len(files) == 0 {
			return "", nil, fmt.Errorf("%s: no files to share", root)
		}
		return name, files, nil
	}
	return "", nil, fmt.Errorf("%s: not a regular file or folder (%s)", root, fi.Mode().Type())
}

// walk appends the files below dir in sorted order. os.ReadDir sorts by
// name, so a depth-first walk yields paths ordered component by component.
func walk(dir string, rel []string, files *[]srcFile, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read folder: %w", err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		r := append(rel[:len(rel):len(rel)], e.Name())
		t := e.Type()
		switch {
		case t&os.ModeSymlink != 0:
			log.Warn("skipping symbolic link (links are not followed inside a folder)", "path", p)
			continue
		case t.IsDir():
			if err := walk(p, r, files, log); err != nil {
				return err
			}
			continue
		case !t.IsRegular():
			return fmt.Errorf("%s: special file (%s) cannot be shared", p, t)
		}
		if err := ValidatePath(r); err != nil {
			return fmt.Errorf("%s: unusable in a torrent: %w", p, err)
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("stat: %w", err)
		}
		*files = append(*files, srcFile{abs: p, rel: r, size: fi.Size()})
	}
	return nil
}

// chunk is a read buffer shared by the segments cut from it; the last
// worker to finish with it returns it to the pool.
type chunk struct {
	b    []byte
	refs atomic.Int32
}

// segment is the part of a chunk that belongs to one piece.
type segment struct {
	c     *chunk
	data  []byte
	piece int
	end   bool // the piece is complete after this segment
}

// hashFiles computes the piece hashes of the concatenated files. One reader
// goroutine fills chunks and cuts them at piece boundaries; piece p is
// hashed by worker p%workers, whose channel keeps a piece's segments in
// order, so pieces of any length hash in parallel with bounded memory.
func hashFiles(ctx context.Context, files []srcFile, total, pl int64, workers int, progress func(hashed, total int64)) ([][20]byte, error) {
	numPieces := total / pl
	if total%pl != 0 {
		numPieces++
	}
	if numPieces > math.MaxInt32 {
		return nil, fmt.Errorf("piece length %d gives too many pieces (%d)", pl, numPieces)
	}
	pieces := make([][20]byte, numPieces)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	chunkSize := int64(readChunk)
	if total < chunkSize {
		chunkSize = total
	}
	pool := make(chan *chunk, maxChunks)
	queues := make([]chan segment, workers)
	var hashed atomic.Int64
	var wg sync.WaitGroup
	for w := range queues {
		queues[w] = make(chan segment, 256)
		wg.Go(func() {
			h := sha1.New()
			for s := range queues[w] {
				if s.end && int64(len(s.data)) == pieceLen(s.piece, pl, total) {
					// The whole piece is in one segment.
					pieces[s.piece] = sha1.Sum(s.data)
				} else {
					h.Write(s.data)
					if s.end {
						h.Sum(pieces[s.piece][:0])
						h.Reset()
					}
				}
				hashed.Add(int64(len(s.data)))
				if s.c.refs.Add(-1) == 0 {
					pool <- s.c
				}
			}
		})
	}

	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		readErr = readPieces(ctx, files, pl, chunkSize, pool, queues)
	}()

	if progress != nil {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
	loop:
		for {
			select {
			case <-done:
				break loop
			case <-tick.C:
				progress(hashed.Load(), total)
			}
		}
	}
	<-done
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if progress != nil {
		progress(total, total)
	}
	return pieces, nil
}

// pieceLen is the length of piece p of a torrent of total bytes.
func pieceLen(p int, pl, total int64) int64 {
	return min(pl, total-int64(p)*pl)
}

// readPieces is the reader: it streams the files into chunks and hands the
// piece segments to the workers' queues.
func readPieces(ctx context.Context, files []srcFile, pl, chunkSize int64, pool chan *chunk, queues []chan segment) error {
	allocated := 0
	r := &multiReader{files: files}
	defer r.close()
	piece := 0
	var inPiece int64 // bytes of the current piece already dispatched
	segs := make([]segment, 0, 64)
	for {
		var c *chunk
		if allocated < maxChunks {
			select {
			case c = <-pool:
			default:
				c = &chunk{b: make([]byte, chunkSize)}
				allocated++
			}
		} else {
			select {
			case c = <-pool:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		n, err := r.fill(c.b)
		if err != nil && err != io.EOF {
			return err
		}
		if n == 0 {
			return ctx.Err()
		}
		segs = segs[:0]
		data := c.b[:n]
		for len(data) > 0 {
			take := min(int64(len(data)), pl-inPiece)
			inPiece += take
			s := segment{c: c, data: data[:take], piece: piece, end: inPiece == pl}
			data = data[take:]
			if s.end {
				piece++
				inPiece = 0
			}
			segs = append(segs, s)
		}
		if err == io.EOF && inPiece > 0 {
			segs[len(segs)-1].end = true // the short last piece
		}
		c.refs.Store(int32(len(segs)))
		for _, s := range segs {
			select {
			case queues[s.piece%len(queues)] <- s:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// multiReader reads the files one after another as one stream, checking
// that each still has the size it had when listed.
type multiReader struct {
	files []srcFile
	idx   int
	f     *os.File
	left  int64 // bytes still expected from f
}

// fill reads until p is full or the files are exhausted (io.EOF).
func (r *multiReader) fill(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.f == nil {
			for r.idx < len(r.files) && r.files[r.idx].size == 0 {
				r.idx++
			}
			if r.idx == len(r.files) {
				return n, io.EOF
			}
			sf := r.files[r.idx]
			f, err := os.Open(sf.abs)
			if err != nil {
				return n, fmt.Errorf("open for hashing: %w", err)
			}
			r.f, r.left = f, sf.size
		}
		want := min(int64(len(p)-n), r.left)
		m, err := io.ReadFull(r.f, p[n:n+int(want)])
		n += m
		r.left -= int64(m)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return n, fmt.Errorf("%s: file shrank while hashing (expected %d bytes)", r.files[r.idx].abs, r.files[r.idx].size)
			}
			return n, fmt.Errorf("read %s: %w", r.files[r.idx].abs, err)
		}
		if r.left == 0 {
			r.f.Close()
			r.f = nil
			r.idx++
		}
	}
	if r.f == nil {
		// Report the end as soon as the last byte is read, so the caller
		// can mark the final piece.
		for r.idx < len(r.files) && r.files[r.idx].size == 0 {
			r.idx++
		}
		if r.idx == len(r.files) {
			return n, io.EOF
		}
	}
	return n, nil
}

func (r *multiReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
