// Package webseed downloads torrent data from plain HTTP servers, the web
// seeds of BEP 19 (url-list: the server holds the torrent's files, read
// with Range requests) and BEP 17 (httpseeds: a script answers per-piece
// queries). The engine treats a Source as one more seed that has every
// piece: it asks it for whole pieces or runs of pieces, verifies them by
// hash like data from any peer, and uses a Backoff per source to rest one
// that fails and to drop one that serves bad data.
//
// A Source keeps a few connections alive per server (Config.MaxConns),
// sends one request per file a region touches (in parallel when there are
// several), never reads more than it asked for, and checks every answer
// against the request (status, Content-Range, length), so that a
// misbehaving server costs at most one failed Fetch, never unbounded
// memory or a stuck goroutine.
package webseed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sowerbt/sower/storage"
)

// Kind is the protocol of a web seed, after the metainfo key it came from.
type Kind int

const (
	// URLList is a BEP 19 web seed ("url-list", magnet "ws="): an ordinary
	// HTTP server holding the torrent's files.
	URLList Kind = iota + 1
	// HTTPSeed is a BEP 17 web seed ("httpseeds"): a script answering
	// info_hash/piece/ranges queries.
	HTTPSeed
)

func (k Kind) String() string {
	switch k {
	case URLList:
		return "url-list"
	case HTTPSeed:
		return "httpseed"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Defaults for zero Config fields.
const (
	DefaultMaxConns     = 4
	DefaultMaxRedirects = 5
	DefaultTimeout      = 30 * time.Second
)

// smallFile bounds the files taken whole from a server that ignores Range:
// below it, fetching the whole file for part of it wastes less than a
// piece; above it, such a server is useless and ErrNoRange is returned.
const smallFile = 1 << 20

// errorBodyLimit bounds what is read of an error answer: enough to drain
// a short body and keep the connection, little enough to cost nothing.
const errorBodyLimit = 64 << 10

// Config tunes a Source. The zero value is usable.
type Config struct {
	// Client sends the requests. If nil, each Source has its own client
	// whose transport keeps at most MaxConns connections to the server
	// (and as many idle ones); Source.Close releases them. A given Client
	// is used as it is, except that redirects are bounded by MaxRedirects
	// when its CheckRedirect is nil.
	Client *http.Client
	// MaxConns bounds the requests in flight to this web seed, and so the
	// connections (default DefaultMaxConns).
	MaxConns int
	// MaxRedirects bounds the redirects followed per request (default
	// DefaultMaxRedirects; negative: none).
	MaxRedirects int
	// Timeout is how long a server may send nothing, before its answer's
	// headers or between reads of its body, before the request fails with
	// ErrTimeout (default DefaultTimeout). It bounds stalls rather than
	// whole requests, so a large run of pieces from a slow but steady
	// server still completes.
	Timeout time.Duration
	// Logger receives debug lines per request (default: discard).
	Logger *slog.Logger
}

// Source fetches data of one torrent from one web seed URL (BEP 19
// url-list or BEP 17 httpseeds). It is safe for concurrent use: the engine
// may run up to MaxConns Fetch calls at once, and more simply wait.
type Source struct {
	kind      Kind
	rawURL    string
	base      *url.URL
	layout    *storage.Layout
	fileURLs  []string // URLList: URL of each file; "" for padding files
	infoHash  [20]byte
	client    *http.Client
	transport *http.Transport // owned, nil if Config.Client was given
	sem       chan struct{}   // one token per request in flight
	timeout   time.Duration
	log       *slog.Logger
}

// New returns a Source for the web seed rawURL of a torrent whose info has
// the given name, files, piece length and total length. files are as the
// engine gives them to storage: for a multi-file torrent each path starts
// with the torrent's folder, which New replaces with name (the name in the
// metainfo, which is what the server has even if the local folder was
// renamed). Only http and https URLs are supported.
func New(kind Kind, rawURL string, name string, files []storage.File, multiFile bool,
	pieceLength, totalLength int64, infoHash [20]byte, cfg Config) (*Source, error) {
	if kind != URLList && kind != HTTPSeed {
		return nil, fmt.Errorf("webseed: unknown kind %d", int(kind))
	}
	if name == "" {
		return nil, errors.New("webseed: empty torrent name")
	}
	base, err := parseSeedURL(rawURL)
	if err != nil {
		return nil, err
	}
	if !multiFile && len(files) != 1 {
		return nil, fmt.Errorf("webseed: single-file torrent with %d files", len(files))
	}
	layout, err := storage.NewLayout(files, pieceLength)
	if err != nil {
		return nil, fmt.Errorf("webseed: %w", err)
	}
	if layout.TotalLength() != totalLength {
		return nil, fmt.Errorf("webseed: files add up to %d bytes, total length is %d", layout.TotalLength(), totalLength)
	}
	s := &Source{
		kind:     kind,
		rawURL:   rawURL,
		base:     base,
		layout:   layout,
		infoHash: infoHash,
		timeout:  cfg.Timeout,
		log:      cfg.Logger,
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("webseed", rawURL)
	if kind == URLList {
		s.fileURLs = make([]string, len(files))
		for i, f := range files {
			if f.Padding {
				continue
			}
			var rel []string
			if multiFile {
				_, inside, ok := strings.Cut(f.Path, "/")
				if !ok {
					return nil, fmt.Errorf("webseed: file %d path %q lacks the torrent's folder", i, f.Path)
				}
				rel = strings.Split(inside, "/")
			}
			if s.fileURLs[i], err = FileURL(rawURL, name, multiFile, rel); err != nil {
				return nil, fmt.Errorf("webseed: file %d: %w", i, err)
			}
		}
	}

	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	s.sem = make(chan struct{}, maxConns)
	maxRedirects := cfg.MaxRedirects
	if maxRedirects == 0 {
		maxRedirects = DefaultMaxRedirects
	}
	if cfg.Client != nil {
		c := *cfg.Client
		if c.CheckRedirect == nil {
			c.CheckRedirect = checkRedirect(maxRedirects)
		}
		s.client = &c
	} else {
		s.transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: s.timeout, KeepAlive: 30 * time.Second}).DialContext,
			MaxConnsPerHost:       maxConns,
			MaxIdleConnsPerHost:   maxConns,
			MaxIdleConns:          maxConns,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   s.timeout,
			ExpectContinueTimeout: time.Second,
			// Torrent data is compressed already, and a compressed answer
			// could not be checked against the range asked for.
			DisableCompression: true,
			ReadBufferSize:     64 << 10,
		}
		s.client = &http.Client{Transport: s.transport, CheckRedirect: checkRedirect(maxRedirects)}
	}
	return s, nil
}

// checkRedirect bounds redirects and fails at once on a loop, rather than
// following it max times.
func checkRedirect(maxRedirects int) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		target := req.URL.String()
		for _, v := range via {
			if v.URL.String() == target {
				return fmt.Errorf("%w: back to %s after %d redirects", ErrRedirectLoop, target, len(via))
			}
		}
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: more than %d, last to %s", ErrTooManyRedirects, max(maxRedirects, 0), target)
		}
		return nil
	}
}

// URL returns the web seed's URL as given to New.
func (s *Source) URL() string { return s.rawURL }

// Kind returns the web seed's protocol.
func (s *Source) Kind() Kind { return s.kind }

// Close releases the idle connections of a Source's own client. Fetch
// calls still running are not interrupted (cancel their context).
func (s *Source) Close() {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
}

// part is one HTTP request of a Fetch.
type part struct {
	url      string
	rangeHdr string // Range header value; "" for none
	first    int64  // URLList: offset in the file of dst[0]
	fileLen  int64  // URLList: length of the file
	dst      []byte
}

// Fetch fills buf with the torrent's bytes [off, off+len(buf)), one piece
// or a run of pieces. For a BEP 19 seed it sends one Range request per
// file the region touches (padding files are zeros and not asked for); for
// BEP 17, one query per piece, with a range when only part of the piece is
// wanted. Requests run in parallel, at most MaxConns per Source. The data
// is not verified: a server may send wrong bytes and Fetch returns them,
// so the caller must check piece hashes and call Backoff.Poisoned.
//
// On error buf holds partial data. Errors are *RetryAfterError (busy: come
// back later), *HTTPError (such as 404), or wrap ErrNoRange,
// ErrBadContentRange, ErrShortBody, ErrLongBody, ErrTimeout,
// ErrRedirectLoop, ErrTooManyRedirects, a network error or ctx's error.
func (s *Source) Fetch(ctx context.Context, off int64, buf []byte) error {
	total := s.layout.TotalLength()
	if off < 0 || off > total || int64(len(buf)) > total-off {
		return fmt.Errorf("webseed: region [%d, %d) outside the torrent's %d bytes", off, off+int64(len(buf)), total)
	}
	if len(buf) == 0 {
		return nil
	}
	var parts []part
	if s.kind == URLList {
		parts = s.planFiles(off, buf)
	} else {
		parts = s.planPieces(off, buf)
	}
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return s.do(ctx, &parts[0])
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for range min(len(parts), cap(s.sem)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(parts) || ctx.Err() != nil {
					return
				}
				if err := s.do(ctx, &parts[i]); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel() // the Fetch has failed: stop the others
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("webseed: %w", ctx.Err())
	}
	return first
}

// planFiles splits a region into one Range request per file.
func (s *Source) planFiles(off int64, buf []byte) []part {
	spans := s.layout.Spans(off, int64(len(buf)))
	parts := make([]part, 0, len(spans))
	pos := int64(0)
	for _, sp := range spans {
		dst := buf[pos : pos+sp.Length]
		pos += sp.Length
		f := s.layout.File(sp.File)
		if f.Padding {
			clear(dst)
			continue
		}
		parts = append(parts, part{
			url:      s.fileURLs[sp.File],
			rangeHdr: "bytes=" + strconv.FormatInt(sp.Offset, 10) + "-" + strconv.FormatInt(sp.Offset+sp.Length-1, 10),
			first:    sp.Offset,
			fileLen:  f.Length,
			dst:      dst,
		})
	}
	return parts
}

// planPieces splits a region into one BEP 17 query per piece.
func (s *Source) planPieces(off int64, buf []byte) []part {
	pl := s.layout.PieceLength()
	var parts []part
	for pos := int64(0); pos < int64(len(buf)); {
		g := off + pos
		piece := g / pl
		in := g - piece*pl
		size := s.layout.PieceSize(int(piece))
		n := min(size-in, int64(len(buf))-pos)
		var ranges [][2]int64
		if in != 0 || n != size {
			ranges = [][2]int64{{in, in + n - 1}}
		}
		parts = append(parts, part{url: httpSeedURL(s.base, s.infoHash, piece, ranges), dst: buf[pos : pos+n]})
		pos += n
	}
	return parts
}

// do sends one request and fills p.dst from its answer.
func (s *Source) do(ctx context.Context, p *part) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("webseed: %s: %w", p.url, ctx.Err())
	}
	defer func() { <-s.sem }()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(s.timeout, func() { cancel(ErrTimeout) })
	defer stall.Stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return fmt.Errorf("webseed: %w", err)
	}
	if p.rangeHdr != "" {
		req.Header.Set("Range", p.rangeHdr)
	}
	// Set explicitly so that a caller's Client cannot negotiate gzip.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := s.client.Do(req)
	if err != nil {
		return s.requestError(ctx, p, err)
	}
	defer resp.Body.Close()
	stall.Reset(s.timeout)
	s.log.Debug("web seed answer", "url", p.url, "range", p.rangeHdr, "status", resp.StatusCode,
		"content_range", resp.Header.Get("Content-Range"), "content_length", resp.ContentLength)

	switch {
	case resp.StatusCode == http.StatusPartialContent && s.kind == URLList:
		if err := s.checkContentRange(p, resp); err != nil {
			drain(resp.Body)
			return err
		}
		return s.readBody(ctx, p, resp.Body, stall, p.dst, true)
	case resp.StatusCode == http.StatusOK && s.kind == URLList:
		return s.wholeFile(ctx, p, resp, stall)
	case resp.StatusCode == http.StatusOK:
		if err := checkLength(p, "piece answer", resp.ContentLength, int64(len(p.dst))); err != nil {
			drain(resp.Body)
			return err
		}
		return s.readBody(ctx, p, resp.Body, stall, p.dst, true)
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
		return s.busy(p, resp)
	}
	drain(resp.Body)
	return &HTTPError{URL: p.url, Status: resp.StatusCode}
}

// requestError turns a failed request into the package's errors.
func (s *Source) requestError(ctx context.Context, p *part, err error) error {
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return fmt.Errorf("webseed: %s: nothing received for %v: %w", p.url, s.timeout, ErrTimeout)
	}
	return fmt.Errorf("webseed: %w", err)
}

// checkContentRange checks that a 206 answer is for exactly the bytes and
// the file asked for.
func (s *Source) checkContentRange(p *part, resp *http.Response) error {
	h := resp.Header.Get("Content-Range")
	if h == "" {
		return fmt.Errorf("webseed: %s: 206 answer without Content-Range: %w", p.url, ErrBadContentRange)
	}
	cr, err := ParseContentRange(h)
	if err != nil {
		return fmt.Errorf("webseed: %s: %w: %w", p.url, ErrBadContentRange, err)
	}
	last := p.first + int64(len(p.dst)) - 1
	if cr.First != p.first || cr.Last != last {
		return fmt.Errorf("webseed: %s: got bytes %d-%d, asked for %d-%d: %w", p.url, cr.First, cr.Last, p.first, last, ErrBadContentRange)
	}
	if cr.Size >= 0 && cr.Size != p.fileLen {
		return fmt.Errorf("webseed: %s: file is %d bytes on the server, %d in the torrent: %w", p.url, cr.Size, p.fileLen, ErrBadContentRange)
	}
	return checkLength(p, "206 answer", resp.ContentLength, int64(len(p.dst)))
}

// checkLength compares an announced Content-Length (-1: none) to the bytes
// wanted.
func checkLength(p *part, what string, announced, want int64) error {
	switch {
	case announced < 0 || announced == want:
		return nil
	case announced < want:
		return fmt.Errorf("webseed: %s: %s: Content-Length %d, want %d: %w", p.url, what, announced, want, ErrShortBody)
	default:
		return fmt.Errorf("webseed: %s: %s: Content-Length %d, want %d: %w", p.url, what, announced, want, ErrLongBody)
	}
}

// wholeFile handles a 200 answer to a Range request: the server sent the
// whole file. It is taken when the part starts at the file's start and
// the file is small or wanted whole; otherwise it fails with ErrNoRange.
func (s *Source) wholeFile(ctx context.Context, p *part, resp *http.Response, stall *time.Timer) error {
	if err := checkLength(p, "whole file sent for a Range request", resp.ContentLength, p.fileLen); err != nil {
		drain(resp.Body)
		return err
	}
	want := int64(len(p.dst))
	if p.first != 0 || (want != p.fileLen && p.fileLen > smallFile) {
		// Not drained: the rest of a large file is not worth reading.
		return fmt.Errorf("webseed: %s: asked for bytes %d-%d, got 200 with the whole %d-byte file: %w",
			p.url, p.first, p.first+want-1, p.fileLen, ErrNoRange)
	}
	s.log.Debug("web seed ignores Range; taking the whole file", "url", p.url, "file_length", p.fileLen)
	if err := s.readBody(ctx, p, resp.Body, stall, p.dst, want == p.fileLen); err != nil {
		return err
	}
	if want < p.fileLen {
		// At most smallFile: drain it to keep the connection.
		if _, err := io.CopyN(io.Discard, resp.Body, p.fileLen-want); err != nil {
			s.log.Debug("web seed: rest of whole file not drained", "url", p.url, "err", err)
		}
	}
	return nil
}

// busy turns a 503 or 429 answer into a *RetryAfterError when it says how
// long to wait (a BEP 17 body, or a Retry-After header), else an
// *HTTPError.
func (s *Source) busy(p *part, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	drain(resp.Body)
	now := time.Now()
	if s.kind == HTTPSeed && resp.StatusCode == http.StatusServiceUnavailable {
		if d, err := ParseRetryAfter(string(body), now); err == nil {
			return &RetryAfterError{URL: p.url, Status: resp.StatusCode, After: d}
		}
	}
	if h := resp.Header.Get("Retry-After"); h != "" {
		if d, err := ParseRetryAfter(h, now); err == nil {
			return &RetryAfterError{URL: p.url, Status: resp.StatusCode, After: d}
		}
	}
	return &HTTPError{URL: p.url, Status: resp.StatusCode}
}

// readBody reads exactly len(dst) bytes. With checkEnd it then makes sure
// the body ends there, reading at most one byte more: that also lets the
// transport reuse the connection.
func (s *Source) readBody(ctx context.Context, p *part, body io.Reader, stall *time.Timer, dst []byte, checkEnd bool) error {
	got := 0
	for got < len(dst) {
		n, err := body.Read(dst[got:])
		got += n
		if n > 0 {
			stall.Reset(s.timeout)
		}
		if err == io.EOF {
			if got < len(dst) {
				return fmt.Errorf("webseed: %s: body ended after %d of %d bytes: %w", p.url, got, len(dst), ErrShortBody)
			}
			return nil
		}
		if err != nil {
			if errors.Is(context.Cause(ctx), ErrTimeout) {
				return fmt.Errorf("webseed: %s: stalled after %d of %d bytes for %v: %w", p.url, got, len(dst), s.timeout, ErrTimeout)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("webseed: %s: body cut after %d of %d bytes: %w", p.url, got, len(dst), ErrShortBody)
			}
			return fmt.Errorf("webseed: %s: after %d of %d bytes: %w", p.url, got, len(dst), err)
		}
	}
	if !checkEnd {
		return nil
	}
	var one [1]byte
	for {
		n, err := body.Read(one[:])
		if n > 0 {
			return fmt.Errorf("webseed: %s: body goes on past %d bytes: %w", p.url, len(dst), ErrLongBody)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(context.Cause(ctx), ErrTimeout) {
				return fmt.Errorf("webseed: %s: stalled after all %d bytes, before the end: %w", p.url, len(dst), ErrTimeout)
			}
			return fmt.Errorf("webseed: %s: after all %d bytes: %w", p.url, len(dst), err)
		}
	}
}

// drain reads what is left of a short answer, so that its connection can
// be reused; a long one is cut off (the connection is then closed).
func drain(body io.Reader) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, errorBodyLimit))
}
