package webseed

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// escapeBytes percent-encodes every byte of s but the RFC 3986 unreserved
// ones, for path segments and the BEP 17 info_hash. url.PathEscape would
// leave "+", ";", "=" and the like, which some servers (S3 among them) read
// differently from the file name that holds them.
func escapeBytes(s string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// parseSeedURL parses a url-list or httpseeds entry; only HTTP(S) is
// supported (BEP 19 lets a client ignore the other schemes).
func parseSeedURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("webseed: URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webseed: URL %q: scheme %q is not http or https", raw, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("webseed: URL %q: no host", raw)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

// withPath returns base with the escaped segments appended to its path,
// keeping its query. base's own path is kept as the server sent it
// (escaped), so that an odd but valid encoding in the torrent survives.
func withPath(base *url.URL, segments []string) (string, error) {
	p := base.EscapedPath()
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	for i, s := range segments {
		if i > 0 {
			p += "/"
		}
		p += escapeBytes(s)
	}
	u := *base
	dec, err := url.PathUnescape(p)
	if err != nil {
		return "", fmt.Errorf("webseed: URL %q: path %q: %w", base, p, err)
	}
	u.Path, u.RawPath = dec, p
	return u.String(), nil
}

// FileURL returns the URL of one file of a torrent under a BEP 19 url-list
// entry: for a single-file torrent the entry itself, or the entry plus the
// torrent's name if it ends in "/"; for a multi-file torrent the entry as a
// folder plus the name and the file's path within the torrent (path
// without the name), each segment percent-encoded.
func FileURL(rawURL, name string, multiFile bool, path []string) (string, error) {
	base, err := parseSeedURL(rawURL)
	if err != nil {
		return "", err
	}
	if !multiFile {
		if strings.HasSuffix(base.EscapedPath(), "/") {
			return withPath(base, []string{name})
		}
		return base.String(), nil
	}
	if len(path) == 0 {
		return "", fmt.Errorf("webseed: file of a multi-file torrent has an empty path")
	}
	return withPath(base, append([]string{name}, path...))
}

// httpSeedURL returns the BEP 17 request URL for piece, with the ranges
// (inclusive, relative to the piece) or none for the whole piece.
func httpSeedURL(base *url.URL, infoHash [20]byte, piece int64, ranges [][2]int64) string {
	var q strings.Builder
	q.WriteString("info_hash=")
	q.WriteString(escapeBytes(string(infoHash[:])))
	q.WriteString("&piece=")
	q.WriteString(strconv.FormatInt(piece, 10))
	for i, r := range ranges {
		if i == 0 {
			q.WriteString("&ranges=")
		} else {
			q.WriteByte(',')
		}
		q.WriteString(strconv.FormatInt(r[0], 10))
		q.WriteByte('-')
		q.WriteString(strconv.FormatInt(r[1], 10))
	}
	u := *base
	if u.RawQuery != "" {
		u.RawQuery += "&" + q.String()
	} else {
		u.RawQuery = q.String()
	}
	return u.String()
}
