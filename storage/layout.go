package storage

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// File is one file of a torrent as the engine hands it over. Path is
// slash-separated and relative to the download folder; for a multi-file
// torrent it starts with the torrent's name folder.
type File struct {
	Path   string
	Length int64
	// Padding marks a BEP 47 pad file: it only aligns the next file to a
	// piece boundary, is never created on disk and reads as zeros.
	Padding bool
}

// Layout maps the torrent's single byte space (all files concatenated, as
// BEP 3 hashes it) onto files and pieces. It is immutable and safe for
// concurrent use.
type Layout struct {
	files       []File
	ends        []int64 // ends[i] is one past the last byte of file i
	pieceLength int64
	total       int64
	numPieces   int
}

// NewLayout validates files and builds the mapping. Every non-padding path
// goes through ValidatePath, and two files may not claim the same path or
// use one another as a directory, because either would make one file's
// data overwrite another's.
func NewLayout(files []File, pieceLength int64) (*Layout, error) {
	if pieceLength <= 0 {
		return nil, fmt.Errorf("storage: piece length %d is not positive", pieceLength)
	}
	if pieceLength > math.MaxInt32 {
		return nil, fmt.Errorf("storage: piece length %d is too large", pieceLength)
	}
	if len(files) == 0 {
		return nil, errors.New("storage: torrent has no files")
	}
	l := &Layout{
		files:       make([]File, len(files)),
		ends:        make([]int64, len(files)),
		pieceLength: pieceLength,
	}
	copy(l.files, files)
	taken := make(map[string]int, len(files)) // path -> file index
	dirs := make(map[string]int, len(files))  // directory -> first file under it
	var total int64
	for i, f := range files {
		if f.Length < 0 {
			return nil, fmt.Errorf("storage: file %d (%q): negative length %d", i, f.Path, f.Length)
		}
		if f.Length > math.MaxInt64-total {
			return nil, fmt.Errorf("storage: file %d (%q): total length overflows", i, f.Path)
		}
		total += f.Length
		l.ends[i] = total
		if f.Padding {
			continue
		}
		if err := ValidatePath(f.Path); err != nil {
			return nil, fmt.Errorf("file %d: %w", i, err)
		}
		if j, ok := taken[f.Path]; ok {
			return nil, fmt.Errorf("%w: file %d path %q duplicates file %d", ErrBadPath, i, f.Path, j)
		}
		if j, ok := dirs[f.Path]; ok {
			return nil, fmt.Errorf("%w: file %d path %q is a directory of file %d", ErrBadPath, i, f.Path, j)
		}
		for k := 0; ; {
			j := strings.IndexByte(f.Path[k:], '/')
			if j < 0 {
				break
			}
			k += j
			dir := f.Path[:k]
			k++
			if j, ok := taken[dir]; ok {
				return nil, fmt.Errorf("%w: file %d path %q is under file %d %q", ErrBadPath, i, f.Path, j, dir)
			}
			if _, ok := dirs[dir]; !ok {
				dirs[dir] = i
			}
		}
		taken[f.Path] = i
	}
	l.total = total
	n := total / pieceLength
	if total%pieceLength != 0 {
		n++
	}
	if n > math.MaxInt32 {
		return nil, fmt.Errorf("storage: %d pieces is too many", n)
	}
	l.numPieces = int(n)
	return l, nil
}

// NumPieces is the number of pieces, the last of which may be short.
func (l *Layout) NumPieces() int { return l.numPieces }

// PieceLength is the nominal piece length from the metainfo.
func (l *Layout) PieceLength() int64 { return l.pieceLength }

// PieceSize is the length of piece i: PieceLength for all but the last
// piece, which holds the remainder. It is 0 for an out-of-range index.
func (l *Layout) PieceSize(i int) int64 {
	if i < 0 || i >= l.numPieces {
		return 0
	}
	if i == l.numPieces-1 {
		return l.total - int64(i)*l.pieceLength
	}
	return l.pieceLength
}

// PieceOffset is where piece i starts in the torrent's byte space.
func (l *Layout) PieceOffset(i int) int64 { return int64(i) * l.pieceLength }

// TotalLength is the size of the byte space, padding included.
func (l *Layout) TotalLength() int64 { return l.total }

// Files returns a copy of the file list, so callers cannot change the
// layout under a Storage that uses it.
func (l *Layout) Files() []File {
	out := make([]File, len(l.files))
	copy(out, l.files)
	return out
}

// NumFiles is len(Files()) without the copy.
func (l *Layout) NumFiles() int { return len(l.files) }

// File returns file i without copying the whole list.
func (l *Layout) File(i int) File { return l.files[i] }

// FileOffset is the start of file i in the torrent's byte space.
func (l *Layout) FileOffset(i int) int64 { return l.ends[i] - l.files[i].Length }

// FilePieces returns the half-open range [first, end) of pieces holding
// bytes of file i; it is empty for a zero-length file. The engine uses it to
// turn a per-file selection into wanted pieces.
func (l *Layout) FilePieces(i int) (first, end int) {
	f := l.files[i]
	if f.Length == 0 {
		return 0, 0
	}
	start := l.ends[i] - f.Length
	return int(start / l.pieceLength), int((l.ends[i] + l.pieceLength - 1) / l.pieceLength)
}

// Span is the part of one file inside a region of the byte space. Offset is
// relative to the start of the file.
type Span struct {
	File           int
	Offset, Length int64
}

// Spans returns the file pieces of [off, off+n), in order, skipping
// zero-length files. The region is clipped to the byte space. It allocates;
// AppendSpans lets hot paths reuse a slice.
func (l *Layout) Spans(off, n int64) []Span {
	return l.AppendSpans(nil, off, n)
}

// AppendSpans appends the spans of [off, off+n) to dst and returns it.
func (l *Layout) AppendSpans(dst []Span, off, n int64) []Span {
	it := l.spans(off, n)
	for {
		s, ok := it.next()
		if !ok {
			return dst
		}
		dst = append(dst, s)
	}
}

// PieceFiles returns the indices of the first and last file holding bytes
// of piece i. Zero-length files strictly between them fall in the range;
// zero-length files at its edges do not. It returns (-1, -1) for an
// out-of-range or empty piece.
func (l *Layout) PieceFiles(piece int) (first, last int) {
	size := l.PieceSize(piece)
	if size == 0 {
		return -1, -1
	}
	start := l.PieceOffset(piece)
	return l.fileAt(start), l.fileAt(start + size - 1)
}

// fileAt returns the non-empty file holding byte off, which must be in
// [0, total). It is the first file whose end lies past off.
func (l *Layout) fileAt(off int64) int {
	lo, hi := 0, len(l.ends)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.ends[m] > off {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// spanIter walks the spans of a region without allocating; the read and
// write paths use it once per call.
type spanIter struct {
	l    *Layout
	file int
	off  int64 // next global offset to visit
	end  int64
}

func (l *Layout) spans(off, n int64) spanIter {
	if off < 0 {
		n += off
		off = 0
	}
	end := off
	if n > 0 && off < l.total {
		end = off + min(n, l.total-off)
	}
	it := spanIter{l: l, off: off, end: end}
	if off < end {
		it.file = l.fileAt(off)
	}
	return it
}

func (it *spanIter) next() (Span, bool) {
	if it.off >= it.end {
		return Span{}, false
	}
	l := it.l
	for l.ends[it.file] <= it.off { // skip zero-length files
		it.file++
	}
	i := it.file
	start := l.ends[i] - l.files[i].Length
	n := min(l.ends[i], it.end) - it.off
	s := Span{File: i, Offset: it.off - start, Length: n}
	it.off += n
	it.file++
	return s, true
}
