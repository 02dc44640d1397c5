package webseed

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors, matched with errors.Is. The engine backs a source off on
// any error; these let it tell a broken server from a slow or busy one.
var (
	// ErrNoRange means the server ignored the Range header and answered
	// 200 with a whole file that was too large to take instead: such a
	// server cannot serve a torrent efficiently.
	ErrNoRange = errors.New("webseed: server ignores Range requests")
	// ErrBadContentRange means a 206 answer lacked a Content-Range header,
	// or its range or total length differ from what was asked for.
	ErrBadContentRange = errors.New("webseed: Content-Range does not match the request")
	// ErrShortBody means the answer held fewer bytes than asked for.
	ErrShortBody = errors.New("webseed: body shorter than the range requested")
	// ErrLongBody means the answer held, or announced, more bytes than
	// asked for.
	ErrLongBody = errors.New("webseed: body longer than the range requested")
	// ErrTimeout means the server sent nothing for Config.Timeout, before
	// or during the answer.
	ErrTimeout = errors.New("webseed: server stalled")
	// ErrRedirectLoop means a redirect led back to a URL already visited.
	ErrRedirectLoop = errors.New("webseed: redirect loop")
	// ErrTooManyRedirects means more than Config.MaxRedirects redirects
	// were followed for one request.
	ErrTooManyRedirects = errors.New("webseed: too many redirects")
)

// HTTPError is an answer with a status the protocol does not expect, such
// as 404 for a file missing on the server.
type HTTPError struct {
	// URL is the URL asked for (before redirects).
	URL string
	// Status is the HTTP status code.
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("webseed: %s: HTTP %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// RetryAfterError is a busy answer that says when to come back: a BEP 17
// 503 with the number of seconds as its body, or an HTTP 503 or 429 with a
// Retry-After header. BEP 19 says a busy server must not be discarded, so
// the engine should wait After and try the source again.
type RetryAfterError struct {
	// URL is the URL asked for (before redirects).
	URL string
	// Status is the HTTP status code.
	Status int
	// After is how long the server asked the client to wait, at most
	// MaxRetryAfter.
	After time.Duration
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("webseed: %s: busy (HTTP %d), retry after %v", e.URL, e.Status, e.After)
}
