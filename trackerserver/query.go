package trackerserver

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// Limits on HTTP requests, checked before any parsing work.
const (
	// maxQueryLen bounds the query string of any request. A scrape of
	// DefaultMaxScrapeHashes hashes fully percent-encoded takes about
	// 7,400 bytes.
	maxQueryLen = 8192
	// maxParams bounds the parameters of one query.
	maxParams = 256
)

// event is an announce's event parameter.
type event uint8

const (
	eventNone event = iota
	eventStarted
	eventCompleted
	eventStopped
)

// announceParams is a parsed announce, from HTTP or UDP.
type announceParams struct {
	infoHash, peerID           [20]byte
	port                       uint16
	uploaded, downloaded, left int64
	event                      event
	numWant                    int // -1: not given
	compact, noPeerID          bool
	key                        uint32
	hasKey                     bool
}

// queryError is a malformed request; its text becomes the failure reason.
type queryError struct {
	field string
	msg   string
}

func (e *queryError) Error() string { return e.field + ": " + e.msg }

func qerr(field, format string, args ...any) error {
	return &queryError{field: field, msg: fmt.Sprintf(format, args...)}
}

// nextParam returns the first name/value pair of raw at or after off,
// percent-decoded, and the offset after it (-1 when no pair is left). '+'
// is kept literally: BitTorrent clients percent-encode every byte that is
// not unreserved, and reading '+' as a space would corrupt an info_hash
// from the few that do not. The pair is decoded into buf, reused from pair
// to pair by the callers: given a small array on their stack, they parse
// an announce without allocating.
func nextParam(raw []byte, off int, buf []byte) (name, value []byte, next int, err error) {
	for off < len(raw) {
		end := off
		for end < len(raw) && raw[end] != '&' {
			end++
		}
		part := raw[off:end]
		start := off
		off = end + 1
		if len(part) == 0 {
			continue
		}
		name, value = part, part[len(part):]
		for i := range part {
			if part[i] == '=' {
				name, value = part[:i], part[i+1:]
				break
			}
		}
		buf = buf[:0]
		if bytes.IndexByte(name, '%') >= 0 {
			if buf, err = unescape(buf, name, start); err != nil {
				return nil, nil, -1, err
			}
			name = buf
		}
		mark := len(buf)
		// Decoding appends after a decoded name, which stays valid.
		if buf, err = unescape(buf, value, start+len(part)-len(value)); err != nil {
			return nil, nil, -1, qerr(string(name), "%v", err)
		}
		return name, buf[mark:], off, nil
	}
	return nil, nil, -1, nil
}

// checkQuery applies the limits on a query before it is parsed.
func checkQuery(raw []byte) error {
	if len(raw) > maxQueryLen {
		return qerr("query", "%d bytes is longer than the limit of %d", len(raw), maxQueryLen)
	}
	return nil
}

// unescape appends the percent-decoding of s to dst; base is s's offset
// in the query, for error messages.
func unescape(dst, s []byte, base int) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			dst = append(dst, c)
			continue
		}
		if i+2 >= len(s) {
			return nil, qerr("query", "truncated percent escape at offset %d", base+i)
		}
		h, ok1 := unhex(s[i+1])
		l, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return nil, qerr("query", "invalid percent escape %q at offset %d", string(s[i:i+3]), base+i)
		}
		dst = append(dst, h<<4|l)
		i += 2
	}
	return dst, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseAnnounceQuery parses the query of an HTTP announce (BEP 3, 7, 23).
// Unknown parameters are ignored, as clients add their own; known ones
// are strict.
func parseAnnounceQuery(raw []byte) (announceParams, error) {
	p := announceParams{numWant: -1, compact: true}
	if err := checkQuery(raw); err != nil {
		return announceParams{}, err
	}
	var stack [128]byte
	seen := 0
	for off, n := 0, 1; ; n++ {
		name, v, next, err := nextParam(raw, off, stack[:0])
		if err != nil {
			return announceParams{}, err
		}
		if next < 0 {
			break
		}
		if n > maxParams {
			return announceParams{}, qerr("query", "more than %d parameters", maxParams)
		}
		if err := p.set(name, v, &seen); err != nil {
			return announceParams{}, err
		}
		off = next
	}
	switch {
	case seen&paramInfoHash == 0:
		return announceParams{}, qerr("info_hash", "missing")
	case seen&paramPeerID == 0:
		return announceParams{}, qerr("peer_id", "missing")
	case seen&paramPort == 0:
		return announceParams{}, qerr("port", "missing")
	}
	return p, nil
}

// Bits of the announce parameters seen, for the duplicate check.
const (
	paramInfoHash = 1 << iota
	paramPeerID
	paramPort
	paramUploaded
	paramDownloaded
	paramLeft
	paramEvent
	paramNumWant
	paramCompact
	paramNoPeerID
	paramKey
)

// knownParam returns the name and bit of a known announce parameter (bit
// 0 for others). The name is a constant: converting the bytes would
// allocate, as error messages keep it.
func knownParam(b []byte) (string, int) {
	switch string(b) {
	case "info_hash":
		return "info_hash", paramInfoHash
	case "peer_id":
		return "peer_id", paramPeerID
	case "port":
		return "port", paramPort
	case "uploaded":
		return "uploaded", paramUploaded
	case "downloaded":
		return "downloaded", paramDownloaded
	case "left":
		return "left", paramLeft
	case "event":
		return "event", paramEvent
	case "numwant":
		return "numwant", paramNumWant
	case "compact":
		return "compact", paramCompact
	case "no_peer_id":
		return "no_peer_id", paramNoPeerID
	case "key":
		return "key", paramKey
	}
	return "", 0
}

// set applies one announce parameter; seen has a bit for every known
// parameter already given, so that none is given twice.
func (p *announceParams) set(nameB, v []byte, seen *int) error {
	name, bit := knownParam(nameB)
	if bit == 0 {
		return nil // clients add parameters of their own
	}
	if *seen&bit != 0 {
		return qerr(name, "given more than once")
	}
	*seen |= bit
	switch name {
	case "info_hash":
		if len(v) != 20 {
			return qerr(name, "%d bytes, want 20", len(v))
		}
		copy(p.infoHash[:], v)
	case "peer_id":
		if len(v) != 20 {
			return qerr(name, "%d bytes, want 20", len(v))
		}
		copy(p.peerID[:], v)
	case "port":
		n, err := parseUint(name, v, math.MaxUint16)
		if err != nil {
			return err
		}
		if n == 0 {
			return qerr(name, "0 is not a port peers can connect to")
		}
		p.port = uint16(n)
	case "uploaded":
		n, err := parseUint(name, v, math.MaxInt64)
		if err != nil {
			return err
		}
		p.uploaded = int64(n)
	case "downloaded":
		n, err := parseUint(name, v, math.MaxInt64)
		if err != nil {
			return err
		}
		p.downloaded = int64(n)
	case "left":
		n, err := parseUint(name, v, math.MaxInt64)
		if err != nil {
			return err
		}
		p.left = int64(n)
	case "event":
		switch string(v) {
		case "", "empty", "paused":
			p.event = eventNone
		case "started":
			p.event = eventStarted
		case "completed":
			p.event = eventCompleted
		case "stopped":
			p.event = eventStopped
		default:
			return qerr(name, "unknown event %q", truncate(v))
		}
	case "numwant":
		n, err := parseUint(name, v, math.MaxUint64)
		if err != nil {
			return err
		}
		// A huge numwant is not an error, only more than we give.
		p.numWant = int(min(n, math.MaxInt32))
	case "compact":
		b, err := parseBool(name, v)
		if err != nil {
			return err
		}
		p.compact = b
	case "no_peer_id":
		b, err := parseBool(name, v)
		if err != nil {
			return err
		}
		p.noPeerID = b
	case "key":
		// BEP 7 leaves the key's form open; clients send up to 8 hex
		// digits or a short string. Keep a 32-bit digest of it.
		if len(v) > 64 {
			return qerr(name, "%d bytes is longer than 64", len(v))
		}
		p.key, p.hasKey = fnv32(v), true
	}
	return nil
}

// parseScrapeQuery returns the info_hash parameters of a scrape (BEP 48),
// at most max of them.
func parseScrapeQuery(raw []byte, max int) ([][20]byte, error) {
	var hashes [][20]byte
	if err := checkQuery(raw); err != nil {
		return nil, err
	}
	var stack [64]byte
	for off, n := 0, 1; ; n++ {
		name, v, next, err := nextParam(raw, off, stack[:0])
		if err != nil {
			return nil, err
		}
		if next < 0 {
			break
		}
		if n > maxParams {
			return nil, qerr("query", "more than %d parameters", maxParams)
		}
		off = next
		if string(name) != "info_hash" {
			continue
		}
		if len(v) != 20 {
			return nil, qerr("info_hash", "%d bytes, want 20 (parameter %d)", len(v), len(hashes)+1)
		}
		if len(hashes) >= max {
			return nil, qerr("info_hash", "more than %d info-hashes in one scrape", max)
		}
		hashes = append(hashes, [20]byte(v))
	}
	return hashes, nil
}

// parseUint parses a decimal number no larger than max.
func parseUint(field string, v []byte, max uint64) (uint64, error) {
	if len(v) == 0 {
		return 0, qerr(field, "empty, want a number")
	}
	if v[0] == '-' {
		return 0, qerr(field, "negative value %q", truncate(v))
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			if max == math.MaxUint64 {
				return max, nil
			}
			return 0, qerr(field, "%q is larger than %d", truncate(v), max)
		}
		return 0, qerr(field, "%q is not a decimal number", truncate(v))
	}
	if n > max {
		return 0, qerr(field, "%d is larger than %d", n, max)
	}
	return n, nil
}

func parseBool(field string, v []byte) (bool, error) {
	switch string(v) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, qerr(field, "%q: want 0 or 1", truncate(v))
}

// truncate keeps error messages short whatever the client sent.
func truncate(v []byte) string {
	if len(v) > 32 {
		return string(v[:32]) + "..."
	}
	return string(v)
}

// fnv32 is FNV-1a, a cheap digest of a client's key string.
func fnv32(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}
