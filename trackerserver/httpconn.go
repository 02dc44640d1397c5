package trackerserver

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sowerbt/sower/internal/rawsock"
)

// Announces and scrapes are almost all a tracker does, and net/http spends
// more on each (a header map, a request and response object, deadline and
// buffer churn) than the tracker spends answering. So connections are
// served here first: a request head is read into a per-connection buffer,
// and a plain GET of /announce or /scrape (also under /<passkey>/) is
// answered from it with one write. Anything else (the index page, uploads,
// metrics, HEAD, request bodies, odd paths or headers) hands the connection
// with its buffered bytes over to net/http, which serves it from then on.

// Limits of the announce path, as net/http's server is configured in Serve.
// The time allowed for a request head is Config.HeaderTimeout.
const (
	idleTimeout   = 60 * time.Second // between requests
	writeTimeout  = 30 * time.Second
	maxHeadLen    = 16 << 10 // longer heads go to net/http, which refuses them
	connBufLen    = 4096     // initial read buffer of a connection
	deadlineSlack = time.Second
)

// fastReq is the part of a request head that the announce path needs.
type fastReq struct {
	path, query []byte
	close       bool   // answer, then close the connection
	keepAlive10 bool   // HTTP/1.0 with Connection: keep-alive
	realIP      []byte // last value of Config.RealIPHeader
	hasRealIP   bool
}

// errHandOff is parseHead's verdict on a request the announce path does not
// serve: net/http gets the connection.
var errHandOff = errors.New("not an announce or scrape")

// headEnd returns the length of the request head at the start of b
// (through the empty line), or -1 if b does not hold all of it. Lines may
// end in CRLF or, as net/http also accepts, a bare LF.
func headEnd(b []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return -1
		}
		line := b[off : off+i]
		off += i + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			return off
		}
	}
}

// skipBlank returns how many CR and LF bytes start b: blank lines before a
// request are ignored, as net/http does.
func skipBlank(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// parseHead reads a complete request head for the announce path. It
// returns errHandOff for anything outside that path, so that net/http,
// with its own rules and error answers, deals with it.
func parseHead(head []byte, realIPHeader string) (fastReq, error) {
	var r fastReq
	nl := bytes.IndexByte(head, '\n')
	if nl < 0 {
		return r, errHandOff
	}
	line := bytes.TrimSuffix(head[:nl], []byte{'\r'})
	rest := head[nl+1:]
	target, ok := bytes.CutPrefix(line, []byte("GET "))
	if !ok {
		return r, errHandOff
	}
	sp := bytes.IndexByte(target, ' ')
	if sp < 0 {
		return r, errHandOff
	}
	proto := target[sp+1:]
	target = target[:sp]
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.close = true
	default:
		return r, errHandOff
	}
	r.path, r.query, _ = bytes.Cut(target, []byte{'?'})
	if fastRoute(r.path) == routeNone {
		return r, errHandOff
	}
	host := false
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			return r, errHandOff
		}
		line := bytes.TrimSuffix(rest[:nl], []byte{'\r'})
		rest = rest[nl+1:]
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 || !isToken(name) {
			return r, errHandOff // includes obsolete line folding
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Host"):
			host = true
		case asciiEqualFold(name, "Connection"):
			for tok := range bytes.SplitSeq(value, []byte{','}) {
				tok = bytes.TrimSpace(tok)
				switch {
				case asciiEqualFold(tok, "close"):
					r.close = true
					r.keepAlive10 = false
				case asciiEqualFold(tok, "keep-alive") && string(proto) == "HTTP/1.0":
					r.close = false
					r.keepAlive10 = true
				}
			}
		case asciiEqualFold(name, "Content-Length"):
			if string(value) != "0" {
				return r, errHandOff
			}
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return r, errHandOff
		}
		if realIPHeader != "" && asciiEqualFold(name, realIPHeader) {
			r.realIP, r.hasRealIP = value, true
		}
	}
	if !host && string(proto) == "HTTP/1.1" {
		return r, errHandOff // net/http answers 400
	}
	return r, nil
}

// Routes of the announce path.
const (
	routeNone = iota
	routeAnnounce
	routeScrape
)

// fastRoute tells the route of a path: /announce, /scrape, or either under
// a passkey made of letters, digits, '-' and '_' (paths that net/http would
// clean or unescape are left to it).
func fastRoute(path []byte) int {
	if len(path) == 0 || path[0] != '/' {
		return routeNone
	}
	p := path[1:]
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		if i == 0 {
			return routeNone
		}
		for _, c := range p[:i] {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return routeNone
			}
		}
		p = p[i+1:]
	}
	switch string(p) {
	case "announce":
		return routeAnnounce
	case "scrape":
		return routeScrape
	}
	return routeNone
}

// passkeyOf returns the passkey part of a routed path ("" for none).
func passkeyOf(path []byte) []byte {
	p := path[1:]
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return nil
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// handOffListener feeds connections that the announce path passes on to
// net/http's Serve.
type handOffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newHandOffListener(addr net.Addr) *handOffListener {
	return &handOffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handOffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handOffListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *handOffListener) Addr() net.Addr { return l.addr }

// pass gives c to net/http; false if it is shutting down.
func (l *handOffListener) pass(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

// bufferedConn is a connection whose first bytes were already read.
type bufferedConn struct {
	net.Conn
	pending []byte
	lim     *limitedConn // its place under Config.MaxConns
}

func (c *bufferedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// httpFront accepts the connections of one listener and serves them on
// the announce path, handing others to net/http through handOff.
type httpFront struct {
	s       *Server
	ln      net.Listener
	handOff *handOffListener

	mu    sync.Mutex
	conns map[net.Conn]struct{} // on the announce path now
	done  atomic.Bool           // shutting down
	wg    sync.WaitGroup
}

// serve accepts until the listener is closed.
func (f *httpFront) serve() error {
	var delay time.Duration
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off as
			// net/http does, until shutdown closes the listener.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			f.s.log.Warn("tracker: accept", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		accepted := time.Now()
		lim := f.s.conns.admit(c)
		if lim == nil {
			c.Close()
			continue
		}
		if !f.track(c) {
			f.s.conns.release(lim)
			c.Close()
			return nil
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.serveConn(c, lim, accepted)
		}()
	}
}

func (f *httpFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done.Load() {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *httpFront) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// shutdown stops accepting, wakes connections waiting for a request (each
// finishes the request it is answering, if any) and waits for them.
func (f *httpFront) shutdown() {
	f.ln.Close()
	f.mu.Lock()
	f.done.Store(true)
	for c := range f.conns {
		c.SetReadDeadline(time.Unix(1, 0))
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// connState is one connection on the announce path.
type connState struct {
	c               net.Conn
	lim             *limitedConn
	remote          netip.Addr
	buf             []byte
	r, w            int // unread bytes are buf[r:w]
	out             []byte
	readDL, writeDL time.Time // deadlines last set
	// headDL is when the request head being received must be complete:
	// set once, when its first byte arrives (or at accept for the first
	// request), never pushed back by later bytes; zero between requests.
	headDL      time.Time
	headTimeout time.Duration
	dateSec     int64
	date        []byte
}

func (f *httpFront) serveConn(c net.Conn, lim *limitedConn, accepted time.Time) {
	handedOff := false
	defer func() {
		f.untrack(c)
		if !handedOff {
			f.s.conns.release(lim)
			c.Close()
		}
	}()
	// Raw system calls on the announce path: see package rawsock. They
	// save CPU per announce and most of the runtime monitor's wake-ups.
	hto := time.Duration(f.s.cfg.HeaderTimeout)
	cs := &connState{c: rawsock.Wrap(c), lim: lim, buf: make([]byte, connBufLen), headTimeout: hto, headDL: accepted.Add(hto)}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		cs.remote = ap.Addr()
	}
	sc := &scratch{}
	for {
		cs.r += skipBlank(cs.buf[cs.r:cs.w])
		n := -1
		if cs.r < cs.w {
			n = headEnd(cs.buf[cs.r:cs.w])
		}
		if n < 0 {
			if !cs.fill(&f.done) {
				if cs.w-cs.r > maxHeadLen {
					handedOff = f.handOffConn(cs)
				}
				return
			}
			continue
		}
		head := cs.buf[cs.r : cs.r+n]
		req, err := parseHead(head, f.s.cfg.RealIPHeader)
		if err != nil {
			handedOff = f.handOffConn(cs)
			return
		}
		if !f.s.conns.busy(lim) {
			return // evicted as the head came in
		}
		cs.r += n
		cs.headDL = time.Time{}
		now := time.Now()
		var body []byte
		switch fastRoute(req.path) {
		case routeAnnounce:
			ip, ipErr := f.s.clientIPFrom(cs.remote, string(req.realIP), req.hasRealIP)
			if !cs.remote.IsValid() {
				ipErr = errors.New("cannot tell the client's address")
			}
			body = f.s.announceBody(sc, req.query, passkeyOf(req.path), ip, ipErr)
		case routeScrape:
			body = f.s.scrapeBody(sc, req.query, passkeyOf(req.path))
		}
		closing := f.done.Load()
		if !cs.respond(now, body, req, closing) || req.close || closing {
			return
		}
		f.s.conns.idle(lim)
	}
}

// fill reads more of the next request, first making room in the buffer.
// It reports false when the connection is done: closed, timed out, shut
// down, or holding a head longer than maxHeadLen.
func (cs *connState) fill(shutdown *atomic.Bool) bool {
	if cs.r == cs.w {
		cs.r, cs.w = 0, 0
	}
	if cs.w == len(cs.buf) {
		if cs.r > 0 {
			cs.w = copy(cs.buf, cs.buf[cs.r:cs.w])
			cs.r = 0
		} else if len(cs.buf) <= maxHeadLen {
			nb := make([]byte, 2*len(cs.buf))
			cs.w = copy(nb, cs.buf[:cs.w])
			cs.buf = nb
		} else {
			return false
		}
	}
	now := time.Now()
	if cs.headDL.IsZero() && cs.r < cs.w {
		cs.headDL = now.Add(cs.headTimeout) // a new head has begun
	}
	dl := cs.headDL
	if dl.IsZero() {
		dl = now.Add(idleTimeout)
	}
	// Setting a deadline costs a timer update: keep one that is at most
	// deadlineSlack early, but never one that is later than wanted.
	if cs.readDL.After(dl) || cs.readDL.Before(dl.Add(-deadlineSlack)) {
		if cs.c.SetReadDeadline(dl) != nil {
			return false
		}
		cs.readDL = dl
	}
	// Checked after setting the deadline: shutdown sets its own (in the
	// past) after raising the flag, so one of the two stops this read.
	if shutdown.Load() {
		return false
	}
	n, err := cs.c.Read(cs.buf[cs.w:])
	cs.w += n
	return err == nil || n > 0
}

// respond writes a 200 answer with a bencoded body, as writeBencode does
// through net/http.
func (cs *connState) respond(now time.Time, body []byte, req fastReq, closing bool) bool {
	if sec := now.Unix(); sec != cs.dateSec || cs.date == nil {
		cs.dateSec = sec
		cs.date = now.UTC().AppendFormat(cs.date[:0], http.TimeFormat)
	}
	b := append(cs.out[:0], "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n"...)
	switch {
	case req.close || closing:
		b = append(b, "Connection: close\r\n"...)
	case req.keepAlive10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nContent-Type: text/plain\r\nDate: "...)
	b = append(b, cs.date...)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	if cap(b) <= 64<<10 {
		cs.out = b
	}
	dl := now.Add(writeTimeout)
	if cs.writeDL.Before(dl.Add(-deadlineSlack)) {
		if cs.c.SetWriteDeadline(dl) != nil {
			return false
		}
		cs.writeDL = dl
	}
	_, err := cs.c.Write(b)
	return err == nil
}

// handOffConn passes the connection, with what was read of it, to
// net/http. It reports whether net/http took it.
func (f *httpFront) handOffConn(cs *connState) bool {
	if cs.c.SetDeadline(time.Time{}) != nil {
		return false
	}
	pending := bytes.Clone(cs.buf[cs.r:cs.w])
	return f.handOff.pass(&bufferedConn{Conn: cs.c, pending: pending, lim: cs.lim})
}
