// Package tracker is the client side of the BitTorrent tracker protocols:
// HTTP(S) announces and scrapes (BEP 3, 23, 7, 48) and the UDP tracker
// protocol (BEP 15, 41), plus an Announcer that keeps one torrent announced
// over a multi-tracker announce-list (BEP 12).
//
// Tracker responses come from untrusted hosts, so every parser here bounds
// its memory use and reports malformed input as an error naming the field
// or byte offset at fault.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Event tells the tracker why an announce happens outside the regular
// schedule (BEP 3). The zero value is a regular re-announce.
type Event int

// Announce events. Their numeric values are internal; the UDP protocol uses
// its own numbering.
const (
	None Event = iota
	Started
	Completed
	Stopped
)

// String returns the value of the HTTP "event" parameter; None is the empty
// string because a regular announce omits the parameter.
func (e Event) String() string {
	switch e {
	case Started:
		return "started"
	case Completed:
		return "completed"
	case Stopped:
		return "stopped"
	case None:
		return ""
	}
	return fmt.Sprintf("Event(%d)", int(e))
}

// AnnounceRequest is what a client tells a tracker about itself.
type AnnounceRequest struct {
	// InfoHash names the torrent; PeerID is this client's id for the
	// session. Both go on the wire as raw bytes.
	InfoHash, PeerID [20]byte
	// Port is where this client accepts peer connections.
	Port uint16
	// Byte counters of this session, as BEP 3 defines them.
	Uploaded, Downloaded, Left int64
	Event                      Event
	// NumWant is how many peers to ask for; -1 (any negative value) lets
	// the tracker choose.
	NumWant int
	// Key identifies this client across IP address changes (BEP 7); keep it
	// fixed for a torrent's session.
	Key uint32
	// TrackerID is the "tracker id" of a previous response from the same
	// tracker, which some trackers expect echoed back.
	TrackerID string
}

// Peer is one swarm member returned by a tracker.
type Peer struct {
	// Addr is the peer's listening address, never port 0 or unspecified.
	Addr netip.AddrPort
	// ID is the peer's peer id when the tracker sent one (dictionary model
	// only); the zero value means unknown.
	ID [20]byte
}

// AnnounceResponse is a successful tracker answer.
type AnnounceResponse struct {
	// Interval is the re-announce period; MinInterval, when nonzero, is the
	// shortest gap the tracker tolerates between announces.
	Interval, MinInterval time.Duration
	// Complete and Incomplete are the tracker's seeder and leecher counts;
	// zero when the tracker did not say.
	Complete, Incomplete int
	// Peers merges the compact IPv4, compact IPv6 (BEP 7) and dictionary
	// peer lists.
	Peers []Peer
	// TrackerID must be echoed in later announces to this tracker; Warning
	// is a message the tracker wants shown to the user.
	TrackerID, Warning string
	// ExternalIP is our address as the tracker sees it (BEP 24), if it
	// said.
	ExternalIP netip.Addr
}

// FailureError is a refusal from the tracker itself: the "failure reason"
// of an HTTP response or the message of a UDP error packet. It means the
// tracker is reachable but will not serve this request.
type FailureError struct {
	// Reason is the tracker's text, as sent.
	Reason string
}

// Error reports the tracker's reason verbatim so users see what the tracker
// operator wrote.
func (e *FailureError) Error() string {
	return "tracker failure: " + e.Reason
}

// ScrapeStats are a tracker's counters for one torrent (BEP 48).
type ScrapeStats struct {
	// Complete is the number of seeders, Downloaded the number of completed
	// downloads ever, Incomplete the number of leechers.
	Complete, Downloaded, Incomplete int
}

// Defaults for the Client's zero-valued fields.
const (
	DefaultHTTPTimeout      = 30 * time.Second
	DefaultUDPRetransmit    = 15 * time.Second
	DefaultUDPMaxAttempts   = 4
	DefaultMaxResponseBytes = 4 << 20
)

// Client talks to trackers over http://, https:// and udp:// URLs. The zero
// value is ready to use; a Client is safe for concurrent use and must not
// be copied after first use because it caches UDP connection IDs.
type Client struct {
	// HTTP performs HTTP(S) requests; nil means http.DefaultClient.
	HTTP *http.Client
	// UserAgent, when set, is sent with every HTTP request.
	UserAgent string
	// HTTPTimeout bounds each HTTP request, including reading the body,
	// whatever HTTP's own settings; zero means DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// MaxResponseBytes caps an HTTP response body; zero means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// UDPRetransmit is the base of the BEP 15 retransmission timeout
	// (base * 2^n after n timeouts); zero means DefaultUDPRetransmit.
	// Tests shorten it.
	UDPRetransmit time.Duration
	// UDPMaxAttempts caps the packets sent per UDP operation, so a dead
	// tracker costs base*(2^attempts-1) rather than the hours the spec's
	// n<=8 would allow; zero means DefaultUDPMaxAttempts.
	UDPMaxAttempts int
	// Logger receives debug messages about skipped peers and dropped
	// packets; nil discards them.
	Logger *slog.Logger

	mu      sync.Mutex
	connIDs map[string]udpConnID
	now     func() time.Time // clock for connection-ID expiry; nil is time.Now
}

// ErrUnsupportedScheme is returned for tracker URLs other than http, https
// and udp.
var ErrUnsupportedScheme = errors.New("tracker: unsupported URL scheme")

// Announce sends req to the tracker at trackerURL and returns its answer. A
// tracker refusal is returned as a *FailureError.
func (c *Client) Announce(ctx context.Context, trackerURL string, req AnnounceRequest) (*AnnounceResponse, error) {
	u, err := url.Parse(trackerURL)
	if err != nil {
		return nil, fmt.Errorf("tracker: announce URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		return c.httpAnnounce(ctx, trackerURL, req)
	case "udp":
		return c.udpAnnounce(ctx, u, req)
	}
	return nil, fmt.Errorf("%w %q in %q", ErrUnsupportedScheme, u.Scheme, trackerURL)
}

// Scrape asks the tracker whose announce URL is trackerURL for the counters
// of the given torrents. For HTTP the scrape URL is derived by ScrapeURL.
// Over HTTP, torrents the tracker does not know are absent from the result;
// UDP trackers cannot say so and report zero counters instead.
func (c *Client) Scrape(ctx context.Context, trackerURL string, hashes [][20]byte) (map[[20]byte]ScrapeStats, error) {
	u, err := url.Parse(trackerURL)
	if err != nil {
		return nil, fmt.Errorf("tracker: announce URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		su, err := ScrapeURL(trackerURL)
		if err != nil {
			return nil, err
		}
		return c.httpScrape(ctx, su, hashes)
	case "udp":
		return c.udpScrape(ctx, u, hashes)
	}
	return nil, fmt.Errorf("%w %q in %q", ErrUnsupportedScheme, u.Scheme, trackerURL)
}

// ErrNoScrape is returned by ScrapeURL when the announce URL does not
// follow the convention that makes a scrape URL derivable.
var ErrNoScrape = errors.New("tracker: announce URL has no scrape counterpart")

// ScrapeURL derives the HTTP scrape URL from an announce URL by the BEP 48
// convention: the last path component must begin with "announce", which
// becomes "scrape" ("/x/announce.php?k=v" -> "/x/scrape.php?k=v"). The rest
// of the URL, including any passkey in the path or query, is kept byte for
// byte. UDP URLs are returned unchanged because UDP scrapes go to the
// announce endpoint.
func ScrapeURL(announceURL string) (string, error) {
	u, err := url.Parse(announceURL)
	if err != nil {
		return "", fmt.Errorf("tracker: announce URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "udp":
		return announceURL, nil
	case "http", "https":
	default:
		return "", fmt.Errorf("%w %q in %q", ErrUnsupportedScheme, u.Scheme, announceURL)
	}
	// Work on the raw string so escaping and passkeys survive untouched.
	end := len(announceURL)
	if i := strings.IndexAny(announceURL, "?#"); i >= 0 {
		end = i
	}
	// The path starts at the first slash after "scheme://authority".
	authority := strings.Index(announceURL, "://")
	if authority < 0 || authority+3 > end {
		return "", fmt.Errorf("%w: %q", ErrNoScrape, announceURL)
	}
	pathStart := strings.IndexByte(announceURL[authority+3:end], '/')
	slash := strings.LastIndexByte(announceURL[:end], '/')
	if pathStart < 0 || !strings.HasPrefix(announceURL[slash+1:end], "announce") {
		return "", fmt.Errorf("%w: %q", ErrNoScrape, announceURL)
	}
	return announceURL[:slash+1] + "scrape" + announceURL[slash+1+len("announce"):], nil
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (c *Client) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}
