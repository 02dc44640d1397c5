package tracker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sowerbt/sower/bencode"
)

// httpScrapeBatch limits the info hashes per HTTP scrape so the URL stays
// well under common server limits (each hash is up to 60 escaped bytes).
const httpScrapeBatch = 50

// maxWireCount bounds interval and peer counters; anything larger is
// nonsense that would overflow time.Duration or int on 32-bit platforms.
const maxWireCount = math.MaxInt32

// appendQuery returns base (minus any fragment) with query appended, keeping
// an existing query such as a passkey exactly as given.
func appendQuery(base, query string) string {
	if i := strings.IndexByte(base, '#'); i >= 0 {
		base = base[:i]
	}
	switch {
	case !strings.Contains(base, "?"):
		return base + "?" + query
	case strings.HasSuffix(base, "?"), strings.HasSuffix(base, "&"):
		return base + query
	}
	return base + "&" + query
}

// escapeBytes percent-encodes every byte outside RFC 3986's unreserved set.
// Info hashes and peer ids are raw bytes, not text, so url.QueryEscape's
// "+" for space is avoided to keep the encoding unambiguous.
func escapeBytes(b []byte) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	sb.Grow(3 * len(b))
	for _, c := range b {
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

// announceQuery encodes req as BEP 3 query parameters.
func announceQuery(req AnnounceRequest) string {
	var b strings.Builder
	b.WriteString("info_hash=")
	b.WriteString(escapeBytes(req.InfoHash[:]))
	b.WriteString("&peer_id=")
	b.WriteString(escapeBytes(req.PeerID[:]))
	fmt.Fprintf(&b, "&port=%d&uploaded=%d&downloaded=%d&left=%d&compact=1",
		req.Port, max(req.Uploaded, 0), max(req.Downloaded, 0), max(req.Left, 0))
	if req.Event != None {
		b.WriteString("&event=")
		b.WriteString(req.Event.String())
	}
	if req.NumWant >= 0 {
		b.WriteString("&numwant=")
		b.WriteString(strconv.Itoa(req.NumWant))
	}
	fmt.Fprintf(&b, "&key=%08x", req.Key)
	if req.TrackerID != "" {
		b.WriteString("&trackerid=")
		b.WriteString(url.QueryEscape(req.TrackerID))
	}
	return b.String()
}

// hostOf names a tracker in messages without its path or query, which
// often hold a private passkey.
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "tracker"
	}
	return u.Scheme + "://" + u.Host
}

func (c *Client) httpAnnounce(ctx context.Context, trackerURL string, req AnnounceRequest) (*AnnounceResponse, error) {
	body, err := c.httpGet(ctx, appendQuery(trackerURL, announceQuery(req)))
	if err != nil {
		return nil, fmt.Errorf("tracker: %s: announce: %w", hostOf(trackerURL), err)
	}
	resp, err := parseAnnounceResponse(body, c.logger())
	if err != nil {
		return nil, fmt.Errorf("tracker: %s: announce: %w", hostOf(trackerURL), err)
	}
	return resp, nil
}

func (c *Client) httpScrape(ctx context.Context, scrapeURL string, hashes [][20]byte) (map[[20]byte]ScrapeStats, error) {
	out := make(map[[20]byte]ScrapeStats, len(hashes))
	for len(hashes) > 0 {
		chunk := hashes[:min(len(hashes), httpScrapeBatch)]
		hashes = hashes[len(chunk):]
		var q strings.Builder
		for i, h := range chunk {
			if i > 0 {
				q.WriteByte('&')
			}
			q.WriteString("info_hash=")
			q.WriteString(escapeBytes(h[:]))
		}
		body, err := c.httpGet(ctx, appendQuery(scrapeURL, q.String()))
		if err != nil {
			return nil, fmt.Errorf("tracker: %s: scrape: %w", hostOf(scrapeURL), err)
		}
		files, err := parseScrapeResponse(body)
		if err != nil {
			return nil, fmt.Errorf("tracker: %s: scrape: %w", hostOf(scrapeURL), err)
		}
		for _, h := range chunk {
			if st, ok := files[h]; ok {
				out[h] = st
			}
		}
	}
	return out, nil
}

// httpGet fetches fullURL within the client's timeout and size limit. A
// non-200 status is an error carrying the start of the body, or the
// tracker's failure reason when the body has one.
func (c *Client) httpGet(ctx context.Context, fullURL string) ([]byte, error) {
	timeout := c.HTTPTimeout
	if timeout <= 0 {
		timeout = DefaultHTTPTimeout
	}
	limit := c.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fullURL, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	resp, err := hc.Do(req)
	if err != nil {
		// url.Error repeats the full URL, passkey and all; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading body (HTTP status %d): %w", resp.StatusCode, err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response body exceeds %d bytes", limit)
	}
	if resp.StatusCode != http.StatusOK {
		if _, perr := parseAnnounceResponse(body, c.logger()); perr != nil {
			var fe *FailureError
			if errors.As(perr, &fe) {
				return nil, fmt.Errorf("HTTP status %d: %w", resp.StatusCode, fe)
			}
		}
		return nil, fmt.Errorf("HTTP status %d: body %q", resp.StatusCode, snippet(body, 200))
	}
	return body, nil
}

// snippet returns at most n bytes of b for error messages.
func snippet(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// ParseAnnounceResponse decodes a bencoded HTTP announce response. A
// "failure reason" is returned as a *FailureError. It is strict about types
// and value ranges but accepts what deployed trackers send: unsorted
// dictionary keys, trailing whitespace, a missing "peers" key, and peers
// given by hostname (skipped, since resolving them is not the tracker
// client's job).
func ParseAnnounceResponse(body []byte) (*AnnounceResponse, error) {
	return parseAnnounceResponse(body, slog.New(slog.DiscardHandler))
}

func parseAnnounceResponse(body []byte, log *slog.Logger) (*AnnounceResponse, error) {
	d, err := decodeDict(body)
	if err != nil {
		return nil, err
	}
	if reason, ok, err := stringField(d, "failure reason"); err != nil {
		return nil, err
	} else if ok {
		return nil, &FailureError{Reason: reason}
	}
	r := &AnnounceResponse{}
	interval, ok, err := intField(d, "interval", 0, maxWireCount)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New(`response lacks required key "interval"`)
	}
	r.Interval = secondsDuration(interval)
	minInterval, _, err := intField(d, "min interval", 0, maxWireCount)
	if err != nil {
		return nil, err
	}
	r.MinInterval = secondsDuration(minInterval)
	complete, _, err := intField(d, "complete", 0, maxWireCount)
	if err != nil {
		return nil, err
	}
	incomplete, _, err := intField(d, "incomplete", 0, maxWireCount)
	if err != nil {
		return nil, err
	}
	r.Complete, r.Incomplete = int(complete), int(incomplete)
	if r.TrackerID, _, err = stringField(d, "tracker id"); err != nil {
		return nil, err
	}
	if r.Warning, _, err = stringField(d, "warning message"); err != nil {
		return nil, err
	}
	// BEP 24: our address as the tracker sees it, 4 or 16 bytes. Anything
	// else is ignored: the key is advisory.
	if ip, ok, _ := stringField(d, "external ip"); ok {
		if a, ok := netip.AddrFromSlice([]byte(ip)); ok {
			r.ExternalIP = a.Unmap()
		}
	}
	switch p := d["peers"].(type) {
	case nil:
		// Absent: some trackers send only peers6, or nothing when alone.
	case string:
		if r.Peers, err = parseCompactPeers(r.Peers, []byte(p), compactV4, `"peers"`, log); err != nil {
			return nil, err
		}
	case []any:
		if r.Peers, err = parseDictPeers(r.Peers, p, log); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf(`key "peers" is %s, want string or list`, typeName(p))
	}
	switch p := d["peers6"].(type) {
	case nil:
	case string:
		if r.Peers, err = parseCompactPeers(r.Peers, []byte(p), compactV6, `"peers6"`, log); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf(`key "peers6" is %s, want string`, typeName(p))
	}
	r.Peers = dedupePeers(r.Peers)
	return r, nil
}

// parseDictPeers decodes the original BEP 3 peer list of dictionaries.
func parseDictPeers(dst []Peer, list []any, log *slog.Logger) ([]Peer, error) {
	for i, item := range list {
		d, ok := item.(map[string]any)
		if !ok {
			return dst, fmt.Errorf("peers[%d] is %s, want dictionary", i, typeName(item))
		}
		ip, ok, err := stringField(d, "ip")
		if err != nil {
			return dst, fmt.Errorf("peers[%d]: %w", i, err)
		}
		if !ok {
			return dst, fmt.Errorf(`peers[%d] lacks key "ip"`, i)
		}
		port, ok, err := intField(d, "port", 0, math.MaxUint16)
		if err != nil {
			return dst, fmt.Errorf("peers[%d]: %w", i, err)
		}
		if !ok {
			return dst, fmt.Errorf(`peers[%d] lacks key "port"`, i)
		}
		var p Peer
		id, ok, err := stringField(d, "peer id")
		if err != nil {
			return dst, fmt.Errorf("peers[%d]: %w", i, err)
		}
		if ok {
			if len(id) != len(p.ID) {
				return dst, fmt.Errorf(`peers[%d]: "peer id" is %d bytes, want %d`, i, len(id), len(p.ID))
			}
			copy(p.ID[:], id)
		}
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			log.Debug("tracker: skipping peer whose ip is not an IP literal", "index", i, "ip", ip)
			continue
		}
		// A zone names one of the tracker's interfaces, meaningless here.
		addr = addr.WithZone("").Unmap()
		if port == 0 || addr.IsUnspecified() {
			log.Debug("tracker: skipping undialable peer", "index", i, "ip", ip, "port", port)
			continue
		}
		p.Addr = netip.AddrPortFrom(addr, uint16(port))
		dst = append(dst, p)
	}
	return dst, nil
}

// parseScrapeResponse decodes a BEP 48 scrape response.
func parseScrapeResponse(body []byte) (map[[20]byte]ScrapeStats, error) {
	d, err := decodeDict(body)
	if err != nil {
		return nil, err
	}
	if reason, ok, err := stringField(d, "failure reason"); err != nil {
		return nil, err
	} else if ok {
		return nil, &FailureError{Reason: reason}
	}
	files, ok := d["files"].(map[string]any)
	if !ok {
		if d["files"] == nil {
			return nil, errors.New(`response lacks required key "files"`)
		}
		return nil, fmt.Errorf(`key "files" is %s, want dictionary`, typeName(d["files"]))
	}
	out := make(map[[20]byte]ScrapeStats, len(files))
	for k, v := range files {
		if len(k) != 20 {
			return nil, fmt.Errorf("files: key %q is %d bytes, want a 20-byte info hash", snippet([]byte(k), 40), len(k))
		}
		fd, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("files[%x] is %s, want dictionary", k, typeName(v))
		}
		var st ScrapeStats
		for _, f := range []struct {
			key string
			dst *int
		}{{"complete", &st.Complete}, {"downloaded", &st.Downloaded}, {"incomplete", &st.Incomplete}} {
			n, _, err := intField(fd, f.key, 0, maxWireCount)
			if err != nil {
				return nil, fmt.Errorf("files[%x]: %w", k, err)
			}
			*f.dst = int(n)
		}
		out[[20]byte([]byte(k))] = st
	}
	return out, nil
}

// decodeDict decodes a tracker response that must be a dictionary. Keys
// may be unsorted and trailing whitespace is ignored, because widely
// deployed trackers produce both.
func decodeDict(body []byte) (map[string]any, error) {
	body = bytes.TrimRight(body, " \t\r\n")
	if len(body) == 0 {
		return nil, errors.New("empty response body")
	}
	var v any
	if err := (bencode.DecodeOptions{AllowUnsortedKeys: true}).Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("decoding bencoded response (starts %q): %w", snippet(body, 40), err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("response is %s, want dictionary", typeName(v))
	}
	return d, nil
}

// intField reads an optional integer key, enforcing lo <= value <= hi.
func intField(d map[string]any, key string, lo, hi int64) (int64, bool, error) {
	v, ok := d[key]
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(int64)
	if !ok {
		return 0, false, fmt.Errorf("key %q is %s, want integer", key, typeName(v))
	}
	if n < lo || n > hi {
		return 0, false, fmt.Errorf("key %q value %d out of range [%d, %d]", key, n, lo, hi)
	}
	return n, true, nil
}

// stringField reads an optional string key.
func stringField(d map[string]any, key string) (string, bool, error) {
	v, ok := d[key]
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, fmt.Errorf("key %q is %s, want string", key, typeName(v))
	}
	return s, true, nil
}

func typeName(v any) string {
	switch v.(type) {
	case int64:
		return "an integer"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "a dictionary"
	case nil:
		return "missing"
	}
	return fmt.Sprintf("a %T", v)
}

func secondsDuration(s int64) time.Duration {
	return time.Duration(s) * time.Second
}
