package webseed

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"
)

// MaxRetryAfter caps the wait a server may ask for, so that a hostile or
// mistaken answer cannot park a source for ever.
const MaxRetryAfter = time.Hour

// errSyntax is wrapped by the parsers' errors, for tests and fuzzing.
var errSyntax = errors.New("syntax error")

// ContentRange is a parsed Content-Range header of a 206 answer: the bytes
// [First, Last] of a representation Size bytes long (-1: unknown, "*").
type ContentRange struct {
	First, Last, Size int64
}

// ParseContentRange parses a Content-Range header value of a single-range
// 206 answer (RFC 9110 section 14.4): "bytes FIRST-LAST/SIZE" or
// "bytes FIRST-LAST/*". Errors name the byte offset at fault.
func ParseContentRange(s string) (ContentRange, error) {
	const unit = "bytes "
	if len(s) < len(unit) || !strings.EqualFold(s[:len(unit)], unit) {
		return ContentRange{}, fmt.Errorf("content-range %q: offset 0: want %q: %w", s, unit, errSyntax)
	}
	pos := len(unit)
	var cr ContentRange
	var err error
	if cr.First, pos, err = parseDigits(s, pos); err != nil {
		return ContentRange{}, fmt.Errorf("content-range %q: first byte: %w", s, err)
	}
	if pos >= len(s) || s[pos] != '-' {
		return ContentRange{}, fmt.Errorf("content-range %q: offset %d: want '-': %w", s, pos, errSyntax)
	}
	if cr.Last, pos, err = parseDigits(s, pos+1); err != nil {
		return ContentRange{}, fmt.Errorf("content-range %q: last byte: %w", s, err)
	}
	if pos >= len(s) || s[pos] != '/' {
		return ContentRange{}, fmt.Errorf("content-range %q: offset %d: want '/': %w", s, pos, errSyntax)
	}
	pos++
	if pos < len(s) && s[pos] == '*' {
		cr.Size = -1
		pos++
	} else if cr.Size, pos, err = parseDigits(s, pos); err != nil {
		return ContentRange{}, fmt.Errorf("content-range %q: complete length: %w", s, err)
	}
	if pos != len(s) {
		return ContentRange{}, fmt.Errorf("content-range %q: offset %d: trailing data: %w", s, pos, errSyntax)
	}
	if cr.Last < cr.First {
		return ContentRange{}, fmt.Errorf("content-range %q: last byte %d before first %d: %w", s, cr.Last, cr.First, errSyntax)
	}
	if cr.Size >= 0 && cr.Last >= cr.Size {
		return ContentRange{}, fmt.Errorf("content-range %q: last byte %d not below length %d: %w", s, cr.Last, cr.Size, errSyntax)
	}
	return cr, nil
}

// parseDigits parses the non-negative decimal number at s[pos:] and
// returns it with the offset after it.
func parseDigits(s string, pos int) (int64, int, error) {
	start := pos
	var n int64
	for pos < len(s) && s[pos] >= '0' && s[pos] <= '9' {
		d := int64(s[pos] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, pos, fmt.Errorf("offset %d: number overflows: %w", start, errSyntax)
		}
		n = n*10 + d
		pos++
	}
	if pos == start {
		return 0, pos, fmt.Errorf("offset %d: want a digit: %w", pos, errSyntax)
	}
	return n, pos, nil
}

// ParseRetryAfter parses a wait: a BEP 17 busy body (an ASCII integer
// number of seconds, surrounding white space allowed) or an HTTP
// Retry-After header value, which may also be an HTTP date, read against
// now. The result is clamped to [0, MaxRetryAfter].
func ParseRetryAfter(s string, now time.Time) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("retry-after %q: empty: %w", s, errSyntax)
	}
	if t[0] >= '0' && t[0] <= '9' {
		var secs int64
		for i := 0; i < len(t); i++ {
			c := t[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("retry-after %q: offset %d: want a digit: %w", s, strings.Index(s, t)+i, errSyntax)
			}
			if secs <= int64(MaxRetryAfter/time.Second) { // saturate instead of overflowing
				secs = secs*10 + int64(c-'0')
			}
		}
		return min(time.Duration(secs)*time.Second, MaxRetryAfter), nil
	}
	when, err := http.ParseTime(t)
	if err != nil {
		return 0, fmt.Errorf("retry-after %q: neither seconds nor an HTTP date: %w", s, errSyntax)
	}
	return min(max(when.Sub(now), 0), MaxRetryAfter), nil
}
