// Package magnet parses and formats BitTorrent magnet links (BEP 9), with
// peer addresses (x.pe) and the select-only extension of BEP 53, so a
// download can start from an info-hash before the metadata is known.
package magnet

import (
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Magnet is the content of a magnet link that matters to a BitTorrent
// client. Parse normalizes and validates every field; String writes them
// back in a canonical order.
type Magnet struct {
	// InfoHash is the v1 info-hash (xt=urn:btih:).
	InfoHash [20]byte
	// Name is the display name (dn) to show until the metadata arrives.
	Name string
	// Length is the exact total size in bytes (xl), or 0 if not given.
	Length int64
	// Trackers are the tracker URLs (tr) in link order, without
	// duplicates.
	Trackers []string
	// WebSeeds are the web seed URLs (ws) in link order, without
	// duplicates.
	WebSeeds []string
	// Peers are peer addresses (x.pe) as host:port, IPv6 literals in
	// brackets, without duplicates.
	Peers []string
	// SelectOnly lists the files to download (so, BEP 53); empty means all.
	SelectOnly []Range
}

// Range is an inclusive range of file indices.
type Range struct {
	First, Last int
}

// maxFileIndex bounds the file indices accepted in so=, far beyond any
// real torrent, so they fit an int everywhere.
const maxFileIndex = 1<<31 - 1

// Parse parses a magnet link. It requires a v1 info-hash, given as 40 hex
// or 32 base32 digits in either case, and ignores parameters it does not
// know, as links in the wild carry many. A v2 exact topic (urn:btmh:) is
// ignored next to a btih; without one the link is rejected, as only v1
// swarms are supported. Errors name the parameter and its byte offset in s.
func Parse(s string) (*Magnet, error) {
	const prefix = "magnet:?"
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return nil, errors.New(`magnet: not a magnet URI (want prefix "magnet:?")`)
	}
	p := parser{m: &Magnet{}, seen: map[string]bool{}}
	off := len(prefix)
	for param := range strings.SplitSeq(s[off:], "&") {
		if err := p.param(param, off); err != nil {
			return nil, err
		}
		off += len(param) + 1
	}
	if !p.haveBtih {
		switch {
		case p.haveBtmh:
			return nil, errors.New("magnet: v2-only magnet (urn:btmh without urn:btih) not supported")
		case p.otherXT != "":
			return nil, fmt.Errorf("magnet: xt %q is not a urn:btih topic", p.otherXT)
		}
		return nil, errors.New("magnet: missing xt parameter")
	}
	return p.m, nil
}

// parser holds the state of one Parse call.
type parser struct {
	m        *Magnet
	haveBtih bool
	haveBtmh bool
	otherXT  string          // first exact topic of an unsupported kind
	seen     map[string]bool // "tr\x00url" etc., to drop duplicates
}

// param handles one key=value pair found at byte offset off.
func (p *parser) param(param string, off int) error {
	if param == "" {
		return nil
	}
	rawKey, rawVal, _ := strings.Cut(param, "=")
	key, err := url.QueryUnescape(rawKey)
	if err != nil {
		return fmt.Errorf("magnet: parameter name at offset %d: %w", off, err)
	}
	key = strings.ToLower(key)
	if isXT(key) {
		key = "xt" // xt.1, xt.2, ... number several exact topics
	}
	switch key {
	case "xt", "dn", "xl", "tr", "ws", "x.pe", "so":
	default:
		return nil
	}
	v, err := url.QueryUnescape(rawVal)
	if err != nil {
		return fmt.Errorf("magnet: %s at offset %d: %w", key, off, err)
	}
	switch key {
	case "xt":
		return p.xt(v, off)
	case "dn":
		if p.m.Name == "" {
			p.m.Name = v
		}
	case "xl":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("magnet: xl at offset %d: %q is not a non-negative integer", off, v)
		}
		if p.m.Length == 0 {
			p.m.Length = n
		}
	case "tr", "ws":
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("magnet: %s at offset %d: %q is not an absolute URL", key, off, v)
		}
		if key == "tr" {
			p.m.Trackers = p.add(p.m.Trackers, key, v)
		} else {
			p.m.WebSeeds = p.add(p.m.WebSeeds, key, v)
		}
	case "x.pe":
		peer, err := parsePeer(v)
		if err != nil {
			return fmt.Errorf("magnet: x.pe at offset %d: %w", off, err)
		}
		p.m.Peers = p.add(p.m.Peers, key, peer)
	case "so":
		rs, err := parseSelectOnly(v)
		if err != nil {
			return fmt.Errorf("magnet: so at offset %d: %w", off, err)
		}
		p.m.SelectOnly = append(p.m.SelectOnly, rs...)
	}
	return nil
}

// isXT reports "xt.N", the numbered form of xt.
func isXT(key string) bool {
	n, ok := strings.CutPrefix(key, "xt.")
	if !ok || n == "" {
		return false
	}
	for _, c := range []byte(n) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// add appends v to list unless the same key had it already.
func (p *parser) add(list []string, key, v string) []string {
	k := key + "\x00" + v
	if p.seen[k] {
		return list
	}
	p.seen[k] = true
	return append(list, v)
}

// xt handles one exact topic.
func (p *parser) xt(v string, off int) error {
	lower := strings.ToLower(v)
	switch {
	case strings.HasPrefix(lower, "urn:btih:"):
		h, err := decodeHash(v[len("urn:btih:"):])
		if err != nil {
			return fmt.Errorf("magnet: xt at offset %d: %w", off, err)
		}
		if p.haveBtih && h != p.m.InfoHash {
			return fmt.Errorf("magnet: xt at offset %d: btih %x conflicts with earlier btih %x", off, h, p.m.InfoHash)
		}
		p.m.InfoHash = h
		p.haveBtih = true
	case strings.HasPrefix(lower, "urn:btmh:"):
		p.haveBtmh = true
	default:
		if p.otherXT == "" {
			p.otherXT = v
		}
	}
	return nil
}

// decodeHash decodes a btih info-hash in hex or base32.
func decodeHash(s string) ([20]byte, error) {
	var h [20]byte
	switch len(s) {
	case 40:
		for i := 0; i < len(s); i++ {
			if !isHex(s[i]) {
				return h, fmt.Errorf("btih hex hash has invalid character %s at position %d", charAt(s, i), i)
			}
		}
		hex.Decode(h[:], []byte(s))
	case 32:
		b, err := base32.StdEncoding.DecodeString(strings.ToUpper(s))
		if err != nil {
			var ce base32.CorruptInputError
			if errors.As(err, &ce) && int(ce) < len(s) {
				return h, fmt.Errorf("btih base32 hash has invalid character %s at position %d", charAt(s, int(ce)), int(ce))
			}
			return h, fmt.Errorf("btih base32 hash: %w", err)
		}
		copy(h[:], b)
	default:
		return h, fmt.Errorf("btih hash is %d characters long, want 40 (hex) or 32 (base32)", len(s))
	}
	return h, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// charAt quotes the character starting at byte i of s for an error.
func charAt(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError {
		return fmt.Sprintf("%q", s[i])
	}
	return strconv.QuoteRune(r)
}

// parsePeer validates a peer address and returns it in canonical form.
func parsePeer(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port (IPv6 as [addr]:port)", v)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("%q: port %q is not in 1-65535", v, port)
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return "", fmt.Errorf("%q: address %q has a zone", v, host)
		}
		host = addr.String()
	} else if strings.Contains(host, ":") || !validHostname(host) {
		return "", fmt.Errorf("%q: bad host %q", v, host)
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}

// validHostname checks DNS name syntax: dot-separated labels of letters,
// digits and inner hyphens.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// parseSelectOnly parses a BEP 53 list such as "0,2,4-6".
func parseSelectOnly(v string) ([]Range, error) {
	var rs []Range
	for i, item := range strings.Split(v, ",") {
		a, b, isRange := strings.Cut(item, "-")
		first, err := fileIndex(a)
		if err != nil {
			return nil, fmt.Errorf("item %d %q: %w", i, item, err)
		}
		last := first
		if isRange {
			if last, err = fileIndex(b); err != nil {
				return nil, fmt.Errorf("item %d %q: %w", i, item, err)
			}
			if first > last {
				return nil, fmt.Errorf("item %d %q: range starts after it ends", i, item)
			}
		}
		rs = append(rs, Range{First: first, Last: last})
	}
	return rs, nil
}

// fileIndex parses one non-negative decimal file index.
func fileIndex(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing file index")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("file index %q is not a decimal number", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxFileIndex {
		return 0, fmt.Errorf("file index %q exceeds %d", s, maxFileIndex)
	}
	return int(n), nil
}

// Selected reports whether file i is to be downloaded: every file is when
// the link has no select-only list.
func (m *Magnet) Selected(i int) bool {
	if len(m.SelectOnly) == 0 {
		return true
	}
	for _, r := range m.SelectOnly {
		if i >= r.First && i <= r.Last {
			return true
		}
	}
	return false
}

// String formats m as a magnet link with a lowercase hex info-hash, which
// Parse reads back to an equal Magnet.
func (m *Magnet) String() string {
	var b strings.Builder
	b.WriteString("magnet:?xt=urn:btih:")
	b.WriteString(hex.EncodeToString(m.InfoHash[:]))
	if m.Name != "" {
		b.WriteString("&dn=")
		b.WriteString(escape(m.Name))
	}
	if m.Length > 0 {
		b.WriteString("&xl=")
		b.WriteString(strconv.FormatInt(m.Length, 10))
	}
	for _, list := range []struct {
		key  string
		vals []string
	}{{"tr", m.Trackers}, {"ws", m.WebSeeds}, {"x.pe", m.Peers}} {
		for _, v := range list.vals {
			b.WriteString("&" + list.key + "=")
			b.WriteString(escape(v))
		}
	}
	for i, r := range m.SelectOnly {
		if i == 0 {
			b.WriteString("&so=")
		} else {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.First))
		if r.Last != r.First {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.Last))
		}
	}
	return b.String()
}

// escape percent-encodes a query value. Unlike url.QueryEscape it leaves
// the characters RFC 3986 allows in a query as they are, so tracker URLs
// stay readable; '+' is encoded because readers take it for a space.
func escape(s string) string {
	const upperhex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._~:/?@!$'()*,;", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperhex[c>>4])
		b.WriteByte(upperhex[c&15])
	}
	return b.String()
}
