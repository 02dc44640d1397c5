package trackerserver

import (
	"fmt"
	"math"
	"strconv"
	"strings"
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

// forEachParam splits a raw query into percent-decoded name/value pairs.
// '+' is kept literally: BitTorrent clients percent-encode every byte
// that is not unreserved, and reading '+' as a space would corrupt an
// info_hash from the few that do not. dst is scratch space for decoded
// values, reused across calls of fn; fn must copy what it keeps.
func forEachParam(raw string, fn func(name string, value []byte) error) error {
	if len(raw) > maxQueryLen {
		return qerr("query", "%d bytes is longer than the limit of %d", len(raw), maxQueryLen)
	}
	// Decoded text is never longer than its encoding, so one buffer the
	// size of the query holds every value without reallocating.
	buf := make([]byte, 0, len(raw))
	n := 0
	for off := 0; off < len(raw); {
		end := off
		for end < len(raw) && raw[end] != '&' {
			end++
		}
		part := raw[off:end]
		start := off
		off = end + 1
		if part == "" {
			continue
		}
		n++
		if n > maxParams {
			return qerr("query", "more than %d parameters", maxParams)
		}
		name, value := part, ""
		for i := 0; i < len(part); i++ {
			if part[i] == '=' {
				name, value = part[:i], part[i+1:]
				break
			}
		}
		if strings.IndexByte(name, '%') >= 0 {
			dn, err := unescape(buf[len(buf):], name, start)
			if err != nil {
				return err
			}
			name = string(dn)
		}
		mark := len(buf)
		dv, err := unescape(buf[mark:mark], value, start+len(name)+1)
		if err != nil {
			return qerr(name, "%v", err)
		}
		buf = buf[:mark+len(dv)]
		if err := fn(name, dv); err != nil {
			return err
		}
	}
	return nil
}

// unescape appends the percent-decoding of s to dst; base is s's offset
// in the query, for error messages.
func unescape(dst []byte, s string, base int) ([]byte, error) {
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
			return nil, qerr("query", "invalid percent escape %q at offset %d", s[i:i+3], base+i)
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
func parseAnnounceQuery(raw string) (announceParams, error) {
	p := announceParams{numWant: -1, compact: true}
	var haveHash, havePeer, havePort bool
	seen := 0
	err := forEachParam(raw, func(name string, v []byte) error {
		bit := 0
		switch name {
		case "info_hash":
			bit = 1
			if len(v) != 20 {
				return qerr(name, "%d bytes, want 20", len(v))
			}
			copy(p.infoHash[:], v)
			haveHash = true
		case "peer_id":
			bit = 2
			if len(v) != 20 {
				return qerr(name, "%d bytes, want 20", len(v))
			}
			copy(p.peerID[:], v)
			havePeer = true
		case "port":
			bit = 4
			n, err := parseUint(name, v, math.MaxUint16)
			if err != nil {
				return err
			}
			if n == 0 {
				return qerr(name, "0 is not a port peers can connect to")
			}
			p.port = uint16(n)
			havePort = true
		case "uploaded":
			bit = 8
			n, err := parseUint(name, v, math.MaxInt64)
			if err != nil {
				return err
			}
			p.uploaded = int64(n)
		case "downloaded":
			bit = 16
			n, err := parseUint(name, v, math.MaxInt64)
			if err != nil {
				return err
			}
			p.downloaded = int64(n)
		case "left":
			bit = 32
			n, err := parseUint(name, v, math.MaxInt64)
			if err != nil {
				return err
			}
			p.left = int64(n)
		case "event":
			bit = 64
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
			bit = 128
			n, err := parseUint(name, v, math.MaxUint64)
			if err != nil {
				return err
			}
			// A huge numwant is not an error, only more than we give.
			p.numWant = int(min(n, math.MaxInt32))
		case "compact":
			bit = 256
			b, err := parseBool(name, v)
			if err != nil {
				return err
			}
			p.compact = b
		case "no_peer_id":
			bit = 512
			b, err := parseBool(name, v)
			if err != nil {
				return err
			}
			p.noPeerID = b
		case "key":
			bit = 1024
			// BEP 7 leaves the key's form open; clients send up to 8 hex
			// digits or a short string. Keep a 32-bit digest of it.
			if len(v) > 64 {
				return qerr(name, "%d bytes is longer than 64", len(v))
			}
			p.key, p.hasKey = fnv32(v), true
		default:
			return nil
		}
		if seen&bit != 0 {
			return qerr(name, "given more than once")
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return announceParams{}, err
	}
	switch {
	case !haveHash:
		return announceParams{}, qerr("info_hash", "missing")
	case !havePeer:
		return announceParams{}, qerr("peer_id", "missing")
	case !havePort:
		return announceParams{}, qerr("port", "missing")
	}
	return p, nil
}

// parseScrapeQuery returns the info_hash parameters of a scrape (BEP 48),
// at most max of them.
func parseScrapeQuery(raw string, max int) ([][20]byte, error) {
	var hashes [][20]byte
	err := forEachParam(raw, func(name string, v []byte) error {
		if name != "info_hash" {
			return nil
		}
		if len(v) != 20 {
			return qerr(name, "%d bytes, want 20 (parameter %d)", len(v), len(hashes)+1)
		}
		if len(hashes) >= max {
			return qerr(name, "more than %d info-hashes in one scrape", max)
		}
		hashes = append(hashes, [20]byte(v))
		return nil
	})
	if err != nil {
		return nil, err
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
