package trackerserver

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Limits of the web pages.
const (
	// maxUpload bounds an upload request; metainfo refuses larger
	// torrents anyway.
	maxUpload = 16 << 20
	// maxListed bounds the rows of the index page, which shows the most
	// active torrents first; searching finds the others.
	maxListed = 500
)

func (s *Server) webRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /upload", s.handleUploadForm)
	mux.HandleFunc("POST /upload", s.handleUpload)
	mux.HandleFunc("GET /dl/{hash}/{name}", s.handleDownload)
}

// row is one torrent on the index page.
type row struct {
	Hash, Name, Description, Link string
	Size                          string
	Seeders, Leechers             int
	Completed                     uint64
	LastActive                    string
}

type indexPage struct {
	Title, Query string
	Rows         []row
	Total, Shown int
	Uploads      bool
	Mode         string
	Peers        int64
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	// A private tracker's list of info-hashes is its members' business.
	if s.cfg.Mode == ModePrivate && !s.operator(w, r) {
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		q = q[:200]
	}
	all := s.Torrents()
	needle := strings.ToLower(q)
	var rows []TorrentStats
	for _, t := range all {
		name := hex.EncodeToString(t.InfoHash[:])
		if t.Uploaded != nil {
			name = t.Uploaded.Name + " " + name
		}
		if needle == "" || strings.Contains(strings.ToLower(name), needle) {
			rows = append(rows, t)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if pa, pb := a.Seeders+a.Leechers, b.Seeders+b.Leechers; pa != pb {
			return pa > pb
		}
		if !a.LastActive.Equal(b.LastActive) {
			return a.LastActive.After(b.LastActive)
		}
		return string(a.InfoHash[:]) < string(b.InfoHash[:])
	})
	page := indexPage{Title: s.cfg.Title, Query: q, Total: len(rows), Uploads: s.admin != "", Mode: s.cfg.Mode, Peers: s.table.peers()}
	now := s.cfg.Now()
	for _, t := range rows[:min(len(rows), maxListed)] {
		h := hex.EncodeToString(t.InfoHash[:])
		rw := row{Hash: h, Seeders: t.Seeders, Leechers: t.Leechers, Completed: t.Completed, LastActive: "never"}
		if !t.LastActive.IsZero() {
			rw.LastActive = ago(now.Sub(t.LastActive))
		}
		if u := t.Uploaded; u != nil {
			rw.Name, rw.Description, rw.Size = u.Name, u.Description, humanSize(u.Size)
			rw.Link = "/dl/" + h + "/" + url.PathEscape(u.Name+".torrent")
		}
		page.Rows = append(page.Rows, rw)
	}
	page.Shown = len(page.Rows)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexTmpl.Execute(w, page); err != nil {
		s.log.Debug("tracker: index page", "err", err)
	}
}

// ago renders a duration the way people read activity times.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), -1
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, "KMGTP"[i])
}

// operator checks HTTP basic authentication against the admin token and
// asks the browser for it when missing.
func (s *Server) operator(w http.ResponseWriter, r *http.Request) bool {
	if s.admin == "" {
		http.Error(w, "uploads need a tracker started with a data directory", http.StatusNotFound)
		return false
	}
	_, pw, ok := r.BasicAuth()
	if ok && subtle.ConstantTimeCompare([]byte(pw), []byte(s.admin)) == 1 {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="tracker operator", charset="UTF-8"`)
	http.Error(w, "operator password (the tracker's admin token) required", http.StatusUnauthorized)
	return false
}

func (s *Server) handleUploadForm(w http.ResponseWriter, r *http.Request) {
	if !s.operator(w, r) {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	uploadTmpl.Execute(w, struct{ Title, Error string }{s.cfg.Title, ""})
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if !s.operator(w, r) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	fail := func(code int, err error) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(code)
		uploadTmpl.Execute(w, struct{ Title, Error string }{s.cfg.Title, err.Error()})
	}
	if err := r.ParseMultipartForm(maxUpload); err != nil {
		fail(http.StatusBadRequest, fmt.Errorf("upload form: %w", err))
		return
	}
	defer r.MultipartForm.RemoveAll()
	f, _, err := r.FormFile("torrent")
	if err != nil {
		fail(http.StatusBadRequest, errors.New("choose a .torrent file to upload"))
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUpload+1))
	if err != nil {
		fail(http.StatusBadRequest, fmt.Errorf("read upload: %w", err))
		return
	}
	ti, err := s.AddTorrent(data, strings.TrimSpace(r.FormValue("description")))
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	http.Redirect(w, r, "/?q="+url.QueryEscape(ti.InfoHash), http.StatusSeeOther)
}

// AddTorrent stores an uploaded .torrent, lists it on the index page and
// allows it in whitelist mode.
func (s *Server) AddTorrent(data []byte, description string) (TorrentInfo, error) {
	if s.store == nil {
		return TorrentInfo{}, errors.New("tracker has no database for uploads")
	}
	ti, err := s.store.AddTorrent(data, description)
	if err != nil {
		return TorrentInfo{}, err
	}
	ih, _ := hex.DecodeString(ti.InfoHash)
	if s.shared != nil {
		err := s.storeCall("whitelist", func(ctx context.Context) error { return s.shared.AddListed(ctx, [][20]byte{[20]byte(ih)}) })
		if err != nil {
			return TorrentInfo{}, fmt.Errorf("uploaded torrent saved, but not whitelisted on the shared store: %w", err)
		}
	}
	s.uploadedMu.Lock()
	s.uploaded[[20]byte(ih)] = ti
	s.uploadedMu.Unlock()
	s.log.Info("tracker: torrent uploaded", "name", ti.Name, "info_hash", ti.InfoHash)
	return ti, nil
}

func (s *Server) handleDownload(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Mode == ModePrivate && !s.operator(w, r) {
		return
	}
	h, err := hex.DecodeString(r.PathValue("hash"))
	if err != nil || len(h) != 20 || s.store == nil {
		http.NotFound(w, r)
		return
	}
	data := s.store.TorrentFile([20]byte(h))
	if data == nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-bittorrent")
	w.Header().Set("Content-Disposition", "attachment")
	w.Write(data)
}

const pageHead = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
header{background:#24553a;color:#fff;padding:1rem 2rem;display:flex;align-items:center;gap:2rem;flex-wrap:wrap}
header h1{margin:0;font-size:1.4rem}header a{color:#d6f5e0}
main{padding:1.5rem 2rem;max-width:1200px}
form.search input[type=search]{padding:.45rem .6rem;width:22rem;max-width:70vw;border:1px solid #bcc3cd;border-radius:4px}
button,input[type=submit]{padding:.45rem 1rem;border:0;border-radius:4px;background:#2f7a4d;color:#fff;cursor:pointer}
table{border-collapse:collapse;width:100%;background:#fff;margin-top:1rem;box-shadow:0 1px 2px #0002}
th,td{padding:.5rem .75rem;text-align:left;border-bottom:1px solid #e5e8ec;vertical-align:top}
th{background:#eef1f4;font-weight:600;font-size:.9rem}td.n{text-align:right;font-variant-numeric:tabular-nums}
.hash{font-family:ui-monospace,monospace;font-size:.8rem;color:#68707c}.desc{color:#4a525e;font-size:.9rem;white-space:pre-line}
.muted{color:#68707c}.err{background:#fde8e8;border:1px solid #e0a0a0;padding:.6rem;border-radius:4px}
label{display:block;margin:.8rem 0 .3rem;font-weight:600}textarea{width:32rem;max-width:90vw;height:6rem}
</style></head><body>
<header><h1><a href="/" style="color:#fff;text-decoration:none">{{.Title}}</a></h1>`

var indexTmpl = template.Must(template.New("index").Parse(pageHead + `
<form class="search" method="get" action="/"><input type="search" name="q" value="{{.Query}}" placeholder="Search by name or info-hash" aria-label="Search">
<button type="submit">Search</button></form>
{{if .Uploads}}<a href="/upload">Upload a torrent</a>{{end}}</header>
<main>
<p class="muted">{{.Mode}} tracker · {{.Peers}} peers · showing {{.Shown}} of {{.Total}} torrents{{if .Query}} matching “{{.Query}}”{{end}}</p>
<table><thead><tr><th>Torrent</th><th>Size</th><th>Seeders</th><th>Leechers</th><th>Completed</th><th>Last activity</th></tr></thead><tbody>
{{range .Rows}}<tr><td>{{if .Name}}{{if .Link}}<a href="{{.Link}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}<br>{{end}}<span class="hash">{{.Hash}}</span>{{if .Description}}<div class="desc">{{.Description}}</div>{{end}}</td>
<td class="n">{{.Size}}</td><td class="n">{{.Seeders}}</td><td class="n">{{.Leechers}}</td><td class="n">{{.Completed}}</td><td>{{.LastActive}}</td></tr>
{{else}}<tr><td colspan="6" class="muted">No torrents{{if .Query}} match this search{{else}} yet{{end}}.</td></tr>{{end}}
</tbody></table></main></body></html>
`))

var uploadTmpl = template.Must(template.New("upload").Parse(pageHead + `
<a href="/">Back to the list</a></header>
<main><h2>Upload a torrent</h2>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
<form method="post" action="/upload" enctype="multipart/form-data">
<label for="torrent">.torrent file</label><input type="file" id="torrent" name="torrent" accept=".torrent,application/x-bittorrent" required>
<label for="description">Description</label><textarea id="description" name="description" maxlength="4096"></textarea>
<p><input type="submit" value="Upload"></p></form></main></body></html>
`))
