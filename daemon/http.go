package daemon

import (
	"compress/gzip"
	"crypto/subtle"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// sessionHeader is Transmission's anti-CSRF token header: a request
// without the current token gets 409 and the token, which a script (or
// our web UI) repeats and a cross-site form cannot read.
const sessionHeader = "X-Transmission-Session-Id"

// maxBody bounds an RPC request: enough for a base64 .torrent at the
// metainfo size limit, no more.
const maxBody = (64<<20)*4/3 + 1<<20

// Handler serves the RPC, Sower's API, the web UI and metrics, to
// requests whose Host header it answers to (see hostAllowList).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	rpc := d.csrf(http.HandlerFunc(d.serveRPC))
	mux.Handle("/transmission/rpc", rpc)
	mux.Handle("/transmission/rpc/", rpc)
	mux.Handle("/api/", d.csrf(d.apiHandler()))
	mux.Handle("GET /metrics", d.metrics.handler())
	mux.Handle("/", webHandler())
	return d.checkHost(d.auth(d.gzipped(mux)))
}

// auth demands basic auth when credentials are set.
func (d *Daemon) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.cred.set() {
			u, p, ok := r.BasicAuth()
			okUser := subtle.ConstantTimeCompare([]byte(u), []byte(d.username)) == 1
			okPass := d.cred.matches(p)
			if !ok || !okUser || !okPass {
				w.Header().Set("WWW-Authenticate", `Basic realm="sower"`)
				http.Error(w, "401: authentication required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// csrf refuses cross-site requests (an Origin that is not this host) and
// requests without the session token. GETs of the JSON API carry no
// token requirement: they change nothing and a cross-site page cannot
// read their answers.
func (d *Daemon) csrf(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != "null" {
			u, err := url.Parse(o)
			if err != nil || !sameHost(u.Host, r.Host) {
				http.Error(w, "403: cross-site request refused", http.StatusForbidden)
				return
			}
		}
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.Header.Get(sessionHeader)), []byte(d.sessionID)) != 1 {
			w.Header().Set(sessionHeader, d.sessionID)
			http.Error(w, "409: missing or stale "+sessionHeader+"; repeat the request with the header of this reply", http.StatusConflict)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func sameHost(a, b string) bool {
	ha, pa, err := net.SplitHostPort(a)
	if err != nil {
		ha, pa = a, ""
	}
	hb, pb, err := net.SplitHostPort(b)
	if err != nil {
		hb, pb = b, ""
	}
	return strings.EqualFold(ha, hb) && pa == pb
}

// gzipped compresses answers for clients that ask (transmission-remote
// does), except metrics, which promhttp compresses itself. It uses the
// fastest level, and reuses compressors: a default-level writer costs
// more CPU, and its allocation more memory, than a poller's whole list.
func (d *Daemon) gzipped(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" || !acceptsGzip(r.Header.Get("Accept-Encoding")) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		gz, _ := d.gzPool.Get().(*gzip.Writer)
		if gz == nil {
			gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		} else {
			gz.Reset(w)
		}
		defer func() {
			gz.Close()
			gz.Reset(io.Discard) // drop the reference to w
			d.gzPool.Put(gz)
		}()
		next.ServeHTTP(&gzipWriter{ResponseWriter: w, w: gz}, r)
	})
}

func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}

type gzipWriter struct {
	http.ResponseWriter
	w io.Writer
}

func (g *gzipWriter) WriteHeader(code int) {
	g.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(code)
}

func (g *gzipWriter) Write(p []byte) (int, error) { return g.w.Write(p) }

// Flush lets server-sent events through the compressor.
func (g *gzipWriter) Flush() {
	if f, ok := g.w.(interface{ Flush() error }); ok {
		f.Flush()
	}
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
