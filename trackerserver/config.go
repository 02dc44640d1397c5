package trackerserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// Access modes of a tracker.
const (
	// ModeOpen tracks any torrent announced to it.
	ModeOpen = "open"
	// ModeWhitelist tracks only torrents in the whitelist (file or
	// uploaded through the index page).
	ModeWhitelist = "whitelist"
	// ModePrivate requires a known passkey in the path
	// (/<passkey>/announce) and accounts traffic per user. It tracks only
	// registered torrents (uploaded or in the whitelist file) unless
	// Config.AllowUnregistered is set, and shows its torrent list to the
	// operator only.
	ModePrivate = "private"
)

// Defaults for the zero-valued fields of Config.
const (
	DefaultInterval           = 30 * time.Minute
	DefaultMinInterval        = time.Minute
	DefaultExpireFactor       = 2.0
	DefaultNumWant            = 50
	DefaultMaxNumWant         = 200
	DefaultMaxTorrents        = 1_000_000
	DefaultMaxPeersPerTorrent = 100_000
	DefaultMaxPeers           = 4_000_000
	DefaultFlushInterval      = 10 * time.Second
	DefaultMaxScrapeHashes    = 100
	// DefaultHeaderTimeout is the time a client has, from its first byte
	// (or from connecting, for the first request), to send a whole
	// request head.
	DefaultHeaderTimeout = 5 * time.Second
)

// defaultMaxConns derives the HTTP connection cap from the open-file
// limit: half of it, so that the database, UDP sockets and a burst of
// accepts still find descriptors, within [64, 16384].
func defaultMaxConns() int {
	n := fileLimit() / 2
	if n == 0 {
		n = 1024
	}
	return int(min(max(n, 64), 16384))
}

// Config is a tracker's configuration. The zero value of a field means its
// default; the zero Config is an open tracker with data kept only in memory.
// The JSON form (see ParseConfig) uses the json tags, durations as Go
// duration strings ("30m").
type Config struct {
	// DataDir holds the database; empty keeps everything in memory only,
	// which suits tests and ModeOpen trackers that need no history.
	DataDir string `json:"data"`
	// Mode is ModeOpen (empty), ModeWhitelist or ModePrivate.
	Mode string `json:"mode"`
	// WhitelistFile lists allowed info-hashes, 40 hex digits per line ('#'
	// starts a comment); it is re-read when its modification time changes.
	WhitelistFile string `json:"whitelist"`
	// AllowUnregistered makes a private tracker track any torrent that a
	// passkey holder announces, not only registered ones.
	AllowUnregistered bool `json:"allow_unregistered"`

	// Interval is the re-announce period told to clients; MinInterval the
	// shortest gap they should leave between announces.
	Interval    Duration `json:"interval"`
	MinInterval Duration `json:"min_interval"`
	// ExpireFactor: a peer is forgotten after ExpireFactor*Interval without
	// an announce.
	ExpireFactor float64 `json:"expire_factor"`
	// NumWant is the number of peers given when the client does not ask;
	// MaxNumWant caps what a client may ask for.
	NumWant    int `json:"numwant"`
	MaxNumWant int `json:"max_numwant"`

	// Caps that bound memory; see the package documentation.
	MaxTorrents        int `json:"max_torrents"`
	MaxPeersPerTorrent int `json:"max_peers_per_torrent"`
	MaxPeers           int `json:"max_peers"`
	// MaxScrapeHashes caps the info-hashes of one HTTP scrape.
	MaxScrapeHashes int `json:"max_scrape_hashes"`
	// FullScrape allows a scrape without info_hash, answering for every
	// torrent tracked.
	FullScrape bool `json:"full_scrape"`

	// RealIPHeader names a header (such as X-Forwarded-For or X-Real-IP)
	// holding the client's address, set by a reverse proxy. It is honoured
	// only for connections from TrustedProxies; with X-Forwarded-For the
	// last address is used, the one the trusted proxy appended.
	RealIPHeader string `json:"real_ip_header"`
	// TrustedProxies lists the proxies' networks; empty means loopback.
	TrustedProxies []netip.Prefix `json:"trusted_proxies"`

	// MaxConns caps the open HTTP connections; past it a new connection
	// closes the one idle longest. Zero derives it from the open-file
	// limit (half of it, between 64 and 16,384).
	MaxConns int `json:"max_conns"`
	// HeaderTimeout bounds the time to send a whole request head; a
	// connection that sends nothing is closed after it too.
	HeaderTimeout Duration `json:"header_timeout"`

	// FlushInterval is how often counters are written to the database.
	FlushInterval Duration `json:"flush_interval"`
	// Title is shown on the index page.
	Title string `json:"title"`

	// Store keeps swarms, download counts, passkeys and the whitelist
	// shared with other trackers (see package redisstore); nil keeps
	// swarms in this process's memory. The caller closes it after Close.
	Store SharedStore `json:"-"`

	// Now is the clock; nil means time.Now. Tests move it to expire peers.
	Now func() time.Time `json:"-"`
}

// Duration is a time.Duration written as a Go duration string in JSON.
type Duration time.Duration

// UnmarshalJSON accepts a duration string such as "30m" or "90s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// ParseConfig decodes a JSON configuration file. Unknown keys are errors,
// so a misspelt setting is not silently ignored.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("tracker config: %w", err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("tracker config: data after the JSON object at offset %d", dec.InputOffset())
	}
	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("tracker config: %w", err)
	}
	return c, nil
}

// validate rejects settings that cannot work, naming the field.
func (c *Config) validate() error {
	switch c.Mode {
	case "", ModeOpen, ModeWhitelist, ModePrivate:
	default:
		return fmt.Errorf("mode %q: want %q, %q or %q", c.Mode, ModeOpen, ModeWhitelist, ModePrivate)
	}
	if c.Mode == ModeWhitelist && c.WhitelistFile == "" && c.DataDir == "" && c.Store == nil {
		return fmt.Errorf("mode %q needs a whitelist file, a data directory for uploaded torrents or a shared store", c.Mode)
	}
	if c.Mode == ModePrivate && c.DataDir == "" && c.Store == nil {
		return fmt.Errorf("mode %q needs a data directory or a shared store for the passkeys", c.Mode)
	}
	if c.FullScrape && c.Store != nil {
		return fmt.Errorf("full_scrape is not available with a shared store: it would scan every swarm of the store")
	}
	for name, v := range map[string]int64{
		"interval": int64(c.Interval), "min_interval": int64(c.MinInterval), "flush_interval": int64(c.FlushInterval),
		"numwant": int64(c.NumWant), "max_numwant": int64(c.MaxNumWant), "max_torrents": int64(c.MaxTorrents),
		"max_peers_per_torrent": int64(c.MaxPeersPerTorrent), "max_peers": int64(c.MaxPeers),
		"max_scrape_hashes": int64(c.MaxScrapeHashes), "max_conns": int64(c.MaxConns),
		"header_timeout": int64(c.HeaderTimeout),
	} {
		if v < 0 {
			return fmt.Errorf("%s: negative value %d", name, v)
		}
	}
	if c.Interval != 0 && c.Interval < Duration(time.Second) {
		return fmt.Errorf("interval %v: must be at least 1s", time.Duration(c.Interval))
	}
	if c.ExpireFactor < 0 || (c.ExpireFactor > 0 && c.ExpireFactor < 1) || c.ExpireFactor > 100 {
		return fmt.Errorf("expire_factor %v: must be between 1 and 100", c.ExpireFactor)
	}
	if c.Interval != 0 && c.MinInterval > c.Interval {
		return fmt.Errorf("min_interval %v is longer than interval %v", time.Duration(c.MinInterval), time.Duration(c.Interval))
	}
	return nil
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeOpen
	}
	if c.Interval == 0 {
		c.Interval = Duration(DefaultInterval)
	}
	if c.MinInterval == 0 {
		c.MinInterval = Duration(min(DefaultMinInterval, time.Duration(c.Interval)))
	}
	if c.ExpireFactor == 0 {
		c.ExpireFactor = DefaultExpireFactor
	}
	if c.MaxNumWant == 0 {
		c.MaxNumWant = DefaultMaxNumWant
	}
	if c.NumWant == 0 {
		c.NumWant = min(DefaultNumWant, c.MaxNumWant)
	}
	if c.MaxTorrents == 0 {
		c.MaxTorrents = DefaultMaxTorrents
	}
	if c.MaxPeersPerTorrent == 0 {
		c.MaxPeersPerTorrent = DefaultMaxPeersPerTorrent
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	}
	if c.MaxScrapeHashes == 0 {
		c.MaxScrapeHashes = DefaultMaxScrapeHashes
	}
	if c.MaxConns == 0 {
		c.MaxConns = defaultMaxConns()
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = Duration(DefaultHeaderTimeout)
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = Duration(DefaultFlushInterval)
	}
	if len(c.TrustedProxies) == 0 {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if c.Title == "" {
		c.Title = "Sower tracker"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
