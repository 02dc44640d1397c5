package metainfo

import (
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// mapThreshold is the size from which a file is memory-mapped rather than
// read (where the platform allows): mapping saves the copy into a buffer,
// which is about a quarter of the CPU time of hashing, but costs two system
// calls per window, a poor deal for small files.
const mapThreshold = 1 << 20

// chunk is a stretch of the byte stream shared by the segments cut from it:
// either a prefix of its own read buffer or a mapped window of one file.
// The last worker done with it returns it to the pool, and the reader
// unmaps it before reuse.
type chunk struct {
	buf    []byte // read buffer, allocated on first use for reading
	data   []byte // the bytes to hash
	mapped bool   // data is a memory-mapped window of path
	path   string
	refs   atomic.Int32
}

func (c *chunk) unmap() {
	if c.mapped {
		unmapWindow(c.data)
		c.mapped, c.data = false, nil
	}
}

// segment is the part of a chunk that belongs to one piece.
type segment struct {
	c     *chunk
	data  []byte
	piece int
	end   bool // the piece is complete after this segment
}

// hashFiles computes the piece hashes of the concatenated files. One reader
// goroutine fills chunks (at most maxChunks in flight) and cuts them at
// piece boundaries; piece p is hashed by worker p%workers, whose channel
// keeps a piece's segments in order, so pieces of any length hash in
// parallel with bounded memory.
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

	var (
		errMu    sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}

	pool := make(chan *chunk, maxChunks)
	queues := make([]chan segment, workers)
	var hashed atomic.Int64
	var wg sync.WaitGroup
	for w := range queues {
		queues[w] = make(chan segment, 256)
		wg.Go(func() {
			// A mapped file truncated by another program faults on access;
			// turn that into an error instead of a crash.
			debug.SetPanicOnFault(true)
			h := sha1.New()
			failed := false
			for s := range queues[w] {
				if !failed {
					if err := hashSegment(h, s, &pieces[s.piece], pieceLen(s.piece, pl, total)); err != nil {
						failed = true
						fail(err)
					}
				}
				hashed.Add(int64(len(s.data)))
				if s.c.refs.Add(-1) == 0 {
					pool <- s.c
				}
			}
		})
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		if err := readPieces(ctx, files, pl, min(readChunk, total), pool, queues); err != nil {
			fail(err)
		}
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
	// Every chunk is back in the pool now; release the mapped ones.
	for len(pool) > 0 {
		(<-pool).unmap()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	if progress != nil {
		progress(total, total)
	}
	return pieces, nil
}

// hashSegment feeds one segment to the worker's hash and writes the digest
// when the piece is complete. A memory fault reading a mapped window (the
// file shrank under us) is returned as an error.
func hashSegment(h interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
	Reset()
}, s segment, out *[20]byte, pieceSize int64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); !ok {
				panic(r)
			}
			h.Reset()
			err = fmt.Errorf("%s: file changed while hashing (mapped read failed: %v)", s.c.path, r)
		}
	}()
	if s.end && int64(len(s.data)) == pieceSize {
		// The whole piece is in one segment.
		*out = sha1.Sum(s.data)
		return nil
	}
	h.Write(s.data)
	if s.end {
		h.Sum(out[:0])
		h.Reset()
	}
	return nil
}

// pieceLen is the length of piece p of a torrent of total bytes.
func pieceLen(p int, pl, total int64) int64 {
	return min(pl, total-int64(p)*pl)
}

// readPieces is the reader: it streams the files into chunks and hands the
// piece segments to the workers' queues. Every chunk it takes goes back to
// the pool, dispatched or not, so that hashFiles can release them all.
func readPieces(ctx context.Context, files []srcFile, pl, bufSize int64, pool chan *chunk, queues []chan segment) error {
	allocated := 0
	r := &sourceReader{files: files, bufSize: bufSize, useMap: mmapSupported}
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
				c = &chunk{}
				allocated++
			}
		} else {
			select {
			case c = <-pool:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.unmap()
		eof, err := r.next(c)
		if err != nil || len(c.data) == 0 {
			pool <- c
			if err != nil {
				return err
			}
			return ctx.Err()
		}
		segs = segs[:0]
		data := c.data
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
		if eof && inPiece > 0 {
			segs[len(segs)-1].end = true // the short last piece
		}
		c.refs.Store(int32(len(segs)))
		for i, s := range segs {
			select {
			case queues[s.piece%len(queues)] <- s:
			case <-ctx.Done():
				// Give back the references of the segments not sent.
				if c.refs.Add(-int32(len(segs)-i)) == 0 {
					pool <- c
				}
				return ctx.Err()
			}
		}
		if eof {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// sourceReader yields the files one after another as one stream, mapping
// large files window by window and reading small ones into buffers, and
// checks that each file still has the size it had when listed.
type sourceReader struct {
	files   []srcFile
	bufSize int64
	useMap  bool
	idx     int
	f       *os.File
	off     int64 // position in files[idx]
}

// next fills c with the next stretch of the stream; eof reports that the
// stream ends with it.
func (r *sourceReader) next(c *chunk) (eof bool, err error) {
	c.data = nil
	if r.skipEmpty() {
		return true, nil
	}
	if sf := r.files[r.idx]; r.useMap && sf.size >= mapThreshold {
		if err := r.open(); err != nil {
			return false, err
		}
		n := min(int64(readChunk), sf.size-r.off)
		b, err := mapWindow(r.f, r.off, int(n))
		if err == nil {
			c.data, c.mapped, c.path = b, true, sf.abs
			r.advance(n)
			return r.skipEmpty(), nil
		}
		// Some file systems cannot map files; read them instead.
		r.useMap = false
	}
	if c.buf == nil {
		c.buf = make([]byte, r.bufSize)
	}
	n := 0
	for n < len(c.buf) && !r.skipEmpty() {
		sf := r.files[r.idx]
		if n > 0 && r.useMap && sf.size >= mapThreshold {
			break // leave a large file to be mapped in the next chunk
		}
		if err := r.open(); err != nil {
			return false, err
		}
		want := min(int64(len(c.buf)-n), sf.size-r.off)
		m, err := r.f.ReadAt(c.buf[n:n+int(want)], r.off)
		n += m
		if err != nil {
			if err == io.EOF {
				return false, fmt.Errorf("%s: file shrank while hashing (expected %d bytes)", sf.abs, sf.size)
			}
			return false, fmt.Errorf("read for hashing: %w", err)
		}
		r.advance(int64(m))
	}
	c.data = c.buf[:n]
	return r.skipEmpty(), nil
}

// skipEmpty moves past empty files and reports whether the stream is over.
func (r *sourceReader) skipEmpty() bool {
	for r.f == nil && r.idx < len(r.files) && r.files[r.idx].size == 0 {
		r.idx++
	}
	return r.idx == len(r.files)
}

func (r *sourceReader) open() error {
	if r.f != nil {
		return nil
	}
	f, err := os.Open(r.files[r.idx].abs)
	if err != nil {
		return fmt.Errorf("open for hashing: %w", err)
	}
	r.f, r.off = f, 0
	return nil
}

// advance records n bytes of the current file consumed, moving to the next
// file at its end. A mapping outlives the closing of its file.
func (r *sourceReader) advance(n int64) {
	r.off += n
	if r.off == r.files[r.idx].size {
		r.close()
		r.idx++
		r.off = 0
	}
}

func (r *sourceReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
