package metainfo

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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
	// maxChunks bounds the chunks in flight (read or mapped but not yet
	// hashed), so that Build holds at most maxChunks*readChunk (48 MiB) of
	// data for any total size and any piece length.
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
// Files are streamed in order by one goroutine in 4 MiB chunks with a
// bounded read-ahead (on Linux, files of 1 MiB or more are memory-mapped
// window by window, saving a copy), and pieces are hashed in parallel by
// opts.Workers goroutines, so at most 48 MiB of data is held whatever the
// size. progress, if not nil,
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
