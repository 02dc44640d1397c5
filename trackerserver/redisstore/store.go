package redisstore

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/sowerbt/sower/trackerserver"
)

// PasswordEnv names the environment variable that supplies the password
// when the store's URL has none.
const PasswordEnv = "SOWER_REDIS_PASSWORD"

// Key names; see the package documentation.
const (
	usersTag    = "u:{sower-users}:"
	namesKey    = usersTag + "names"
	wlAll       = "w:{sower-wl}:all"
	wlFile      = "w:{sower-wl}:file"
	wlFileNew   = "w:{sower-wl}:file-new"
	wlAdded     = "w:{sower-wl}:added"
	connIDKey   = "c:{sower}:connid"
	cacheTTL    = time.Minute // server-assisted: invalidated on change
	maxPasskey  = 128         // longer passkeys are unknown without a look-up
	dialTimeout = 2 * time.Second
	flushDelay  = 50 * time.Microsecond
)

// Store is a trackerserver.SharedStore on Redis or Valkey, standalone or
// Cluster. It is safe for concurrent use.
type Store struct {
	c        rueidis.Client
	cluster  bool
	announce *rueidis.Lua
	scrape   *rueidis.Lua
	addUser  *rueidis.Lua
	setKey   *rueidis.Lua
}

var _ trackerserver.SharedStore = (*Store)(nil)

// Options is what Open needs, parsed from the --store URLs by ParseURLs.
type Options struct {
	Addrs    []string // host:port of the server, or of Cluster seeds
	Cluster  bool
	TLS      bool
	Username string
	Password string
	DB       int
}

// ParseURLs reads the store's URLs: redis://[USER:PASSWORD@]HOST[:PORT][/DB]
// for one server, rediss:// for TLS, and for a Redis Cluster either
// redis+cluster:// (rediss+cluster://) or several URLs, each a seed node.
// The password comes from the URL or else from $SOWER_REDIS_PASSWORD
// (getenv is os.Getenv but for tests).
func ParseURLs(urls []string, getenv func(string) string) (Options, error) {
	var o Options
	if len(urls) == 0 {
		return o, errors.New("no store URL")
	}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			// url.Parse's error quotes the URL, password and all.
			return o, fmt.Errorf("store URL %d is not a valid URL (redis://[USER:PASSWORD@]HOST[:PORT][/DB])", i+1)
		}
		// Errors name the URL by its place: even a redacted URL can
		// show a password that did not parse as one.
		shown := strconv.Itoa(i + 1)
		var tlsOn, cluster bool
		switch u.Scheme {
		case "redis":
		case "rediss":
			tlsOn = true
		case "redis+cluster":
			cluster = true
		case "rediss+cluster":
			tlsOn, cluster = true, true
		default:
			return o, fmt.Errorf("store URL %s: unknown scheme: want redis, rediss, redis+cluster or rediss+cluster", shown)
		}
		if i > 0 && tlsOn != o.TLS {
			return o, fmt.Errorf("store URL %s: mixes TLS and plain connections with URL 1", shown)
		}
		o.TLS = tlsOn
		o.Cluster = o.Cluster || cluster || len(urls) > 1
		if u.RawQuery != "" || u.Fragment != "" {
			return o, fmt.Errorf("store URL %s: query or fragment not supported", shown)
		}
		if u.Hostname() == "" {
			return o, fmt.Errorf("store URL %s: no host", shown)
		}
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return o, fmt.Errorf("store URL %s: bad port", shown)
		}
		o.Addrs = append(o.Addrs, net.JoinHostPort(u.Hostname(), port))
		if p := strings.TrimPrefix(u.Path, "/"); p != "" {
			db, err := strconv.Atoi(p)
			if err != nil || db < 0 {
				return o, fmt.Errorf("store URL %s: the path must be a database number", shown)
			}
			o.DB = db
		}
		if u.User != nil {
			o.Username = u.User.Username()
			if pw, ok := u.User.Password(); ok {
				o.Password = pw
			}
		}
	}
	if o.Cluster && o.DB != 0 {
		return o, fmt.Errorf("store: a Redis Cluster has only database 0, not %d", o.DB)
	}
	if o.Password == "" && getenv != nil {
		o.Password = getenv(PasswordEnv)
	}
	return o, nil
}

// Open connects to the store. A standalone server that turns out to be a
// Cluster node, or a Cluster URL that reaches a standalone server, is an
// error rather than a tracker that half works.
func Open(ctx context.Context, o Options) (*Store, error) {
	opt := rueidis.ClientOption{
		InitAddress:       o.Addrs,
		Username:          o.Username,
		Password:          o.Password,
		SelectDB:          o.DB,
		ClientName:        "sower-tracker",
		ForceSingleClient: !o.Cluster,
		ShuffleInit:       true,
		Dialer:            net.Dialer{Timeout: dialTimeout, KeepAlive: time.Second},
		// Also the time after which an unanswered connection is deemed
		// dead and replaced, so keep it short.
		ConnWriteTimeout: 2 * time.Second,
		// A short pause after each write lets concurrent announces
		// gather into one write (and Redis read them in one read): the
		// system calls, not the commands, dominate both sides' CPU.
		MaxFlushDelay: flushDelay,
	}
	if o.TLS {
		host, _, _ := net.SplitHostPort(o.Addrs[0])
		opt.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	}
	c, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", strings.Join(o.Addrs, ","), err)
	}
	s := &Store{
		c:        c,
		cluster:  o.Cluster,
		announce: rueidis.NewLuaScript(announceLua),
		scrape:   rueidis.NewLuaScriptReadOnly(scrapeLua),
		addUser:  rueidis.NewLuaScript(addUserLua),
		setKey:   rueidis.NewLuaScript(setPasskeyLua),
	}
	if o.Cluster && c.Mode() != rueidis.ClientModeCluster {
		c.Close()
		return nil, fmt.Errorf("store %s: not a Redis Cluster (use redis:// for a single server)", strings.Join(o.Addrs, ","))
	}
	if !o.Cluster {
		err := c.Do(ctx, c.B().ClusterInfo().Build()).Error()
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("store %s: the server is a Redis Cluster node: use redis+cluster:// or give several --store seeds", o.Addrs[0])
		}
		if err := c.Do(ctx, c.B().Ping().Build()).Error(); err != nil {
			c.Close()
			return nil, fmt.Errorf("store %s: %w", o.Addrs[0], err)
		}
	}
	return s, nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.c.Close()
	return nil
}

// swarmKeys returns the key prefix of a swarm: t:{HEX}:.
func swarmPrefix(ih [20]byte) string {
	var b [3 + 40 + 2]byte
	copy(b[:], "t:{")
	hex.Encode(b[3:43], ih[:])
	copy(b[43:], "}:")
	return string(b[:])
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Announce records one announce in one script call.
func (s *Store) Announce(ctx context.Context, a *trackerserver.SharedAnnounce) (trackerserver.SharedReply, error) {
	var r trackerserver.SharedReply
	p := swarmPrefix(a.InfoHash)
	own, other := "4", "6"
	if len(a.Addr) == 18 {
		own, other = "6", "4"
	}
	acct := ""
	if a.Account {
		acct = "c"
		if a.Started {
			acct = "s"
		}
	}
	keys := []string{p + "s" + own, p + "l" + own, p + "s" + other, p + "l" + other, p + "d", p + "u"}
	args := []string{
		string(a.Addr),
		strconv.FormatInt(a.Now, 10), strconv.FormatInt(a.Cutoff, 10), strconv.FormatInt(max(a.TTL, 1), 10),
		flag(a.Seeder), flag(a.Stopped), flag(a.Completed),
		strconv.Itoa(a.NumWant), flag(a.OtherFamily), strconv.Itoa(a.MaxPeersPerFamily),
		acct, strconv.FormatInt(a.Uploaded, 10), strconv.FormatInt(a.Downloaded, 10),
	}
	res, err := s.announce.Exec(ctx, s.c, keys, args).ToArray()
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && strings.HasPrefix(re.Error(), "SWARMFULL") {
			return r, trackerserver.ErrStoreFull
		}
		return r, fmt.Errorf("announce: %w", err)
	}
	if len(res) != 5 {
		return r, fmt.Errorf("announce: script returned %d values, want 5", len(res))
	}
	var n [4]int64
	for i := range n {
		if n[i], err = res[i].AsInt64(); err != nil {
			return r, fmt.Errorf("announce: reply %d: %w", i, err)
		}
	}
	r.Seeders, r.Leechers, r.Up, r.Down = int(n[0]), int(n[1]), n[2], n[3]
	peers, err := res[4].ToArray()
	if err != nil {
		return r, fmt.Errorf("announce: peers: %w", err)
	}
	for _, m := range peers {
		pa, err := m.ToString()
		if err != nil {
			return r, fmt.Errorf("announce: peer: %w", err)
		}
		a.Peers = append(a.Peers, pa)
	}
	return r, nil
}

// Scrape reads the counters of every hash in one pipelined batch (in a
// Cluster, one batch per node).
func (s *Store) Scrape(ctx context.Context, hashes [][20]byte, cutoff int64, out []trackerserver.SharedScrape) error {
	if len(hashes) == 0 {
		return nil
	}
	c := strconv.FormatInt(cutoff, 10)
	execs := make([]rueidis.Completed, len(hashes))
	for i, ih := range hashes {
		p := swarmPrefix(ih)
		execs[i] = s.c.B().EvalshaRo().Sha1(scrapeSHA).Numkeys(5).Key(p+"s4", p+"l4", p+"s6", p+"l6", p+"d").Arg(c).Build()
	}
	for i, res := range s.c.DoMulti(ctx, execs...) {
		vals, err := res.ToArray()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// First use on this node: Exec loads the script.
			p := swarmPrefix(hashes[i])
			vals, err = s.scrape.Exec(ctx, s.c, []string{p + "s4", p + "l4", p + "s6", p + "l6", p + "d"}, []string{c}).ToArray()
		}
		if err != nil {
			return fmt.Errorf("scrape: %w", err)
		}
		if len(vals) != 4 {
			return fmt.Errorf("scrape: script returned %d values, want 4", len(vals))
		}
		var n [4]int64
		for j := range n {
			if n[j], err = vals[j].AsInt64(); err != nil {
				return fmt.Errorf("scrape: reply %d: %w", j, err)
			}
		}
		out[i] = trackerserver.SharedScrape{Seeders: int(n[0]), Leechers: int(n[1]), Downloaded: uint64(max(n[2], 0)), Known: n[3] == 1}
	}
	return nil
}

// UserOf looks a passkey up in the client's cache, which Redis keeps
// current: a revoked passkey is dropped from every instance's cache when
// it changes.
func (s *Store) UserOf(ctx context.Context, passkey string) (string, error) {
	if passkey == "" || len(passkey) > maxPasskey {
		return "", nil
	}
	name, err := s.c.DoCache(ctx, s.c.B().Get().Key(usersTag+"k:"+passkey).Cache(), cacheTTL).ToString()
	if rueidis.IsRedisNil(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("passkey: %w", err)
	}
	return name, nil
}

// AddTraffic adds bytes to users' totals in one pipelined batch.
func (s *Store) AddTraffic(ctx context.Context, deltas map[string][2]int64) error {
	cmds := make([]rueidis.Completed, 0, 2*len(deltas))
	for name, d := range deltas {
		k := usersTag + "n:" + name
		cmds = append(cmds,
			s.c.B().Hincrby().Key(k).Field("uploaded").Increment(d[0]).Build(),
			s.c.B().Hincrby().Key(k).Field("downloaded").Increment(d[1]).Build())
	}
	for _, r := range s.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("user traffic: %w", err)
		}
	}
	return nil
}

// Listed looks an info-hash up in the shared whitelist, through the
// client's cache.
func (s *Store) Listed(ctx context.Context, ih [20]byte) (bool, error) {
	ok, err := s.c.DoCache(ctx, s.c.B().Sismember().Key(wlAll).Member(string(ih[:])).Cache(), cacheTTL).AsBool()
	if err != nil {
		return false, fmt.Errorf("whitelist: %w", err)
	}
	return ok, nil
}

// AddListed adds info-hashes (of uploaded torrents) to the whitelist.
func (s *Store) AddListed(ctx context.Context, hashes [][20]byte) error {
	if len(hashes) == 0 {
		return nil
	}
	ms := make([]string, len(hashes))
	for i, ih := range hashes {
		ms[i] = string(ih[:])
	}
	for _, r := range s.c.DoMulti(ctx,
		s.c.B().Sadd().Key(wlAdded).Member(ms...).Build(),
		s.c.B().Sadd().Key(wlAll).Member(ms...).Build()) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("whitelist: %w", err)
		}
	}
	return nil
}

// ReplaceFileList makes set the whitelist file's part of the shared
// whitelist: it is written aside, renamed into place and merged with the
// uploads' part, each step atomic, so that look-ups never see it half
// written. Instances given different files overwrite each other's: give
// every instance the same file, or only one.
func (s *Store) ReplaceFileList(ctx context.Context, set map[[20]byte]struct{}) error {
	cmds := []rueidis.Completed{s.c.B().Del().Key(wlFileNew).Build()}
	batch := make([]string, 0, 1000)
	flushBatch := func() {
		if len(batch) > 0 {
			cmds = append(cmds, s.c.B().Sadd().Key(wlFileNew).Member(batch...).Build())
			batch = make([]string, 0, 1000)
		}
	}
	for ih := range set {
		batch = append(batch, string(ih[:]))
		if len(batch) == cap(batch) {
			flushBatch()
		}
	}
	flushBatch()
	if len(set) > 0 {
		cmds = append(cmds, s.c.B().Rename().Key(wlFileNew).Newkey(wlFile).Build())
	} else {
		cmds = append(cmds, s.c.B().Del().Key(wlFile).Build())
	}
	cmds = append(cmds, s.c.B().Sunionstore().Destination(wlAll).Key(wlFile, wlAdded).Build())
	for _, r := range s.c.DoMulti(ctx, cmds...) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("whitelist: %w", err)
		}
	}
	return nil
}

// ConnIDSeed returns the seed of the UDP connection ids, storing proposal
// if there is none.
func (s *Store) ConnIDSeed(ctx context.Context, proposal [32]byte) ([32]byte, error) {
	var seed [32]byte
	v, err := s.c.Do(ctx, s.c.B().Set().Key(connIDKey).Value(string(proposal[:])).Nx().Get().Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return proposal, nil // it was not set: ours is now
	}
	if err != nil {
		return seed, fmt.Errorf("connection id seed: %w", err)
	}
	if len(v) != len(seed) {
		return seed, fmt.Errorf("connection id seed: %s holds %d bytes, want %d", connIDKey, len(v), len(seed))
	}
	copy(seed[:], v)
	return seed, nil
}

// AddUser creates a user with a fresh passkey.
func (s *Store) AddUser(ctx context.Context, name string) (trackerserver.User, error) {
	if err := trackerserver.CheckUserName(name); err != nil {
		return trackerserver.User{}, err
	}
	u := trackerserver.User{Name: name, Passkey: trackerserver.NewPasskey(), Created: time.Now().UTC().Truncate(time.Second)}
	err := s.addUser.Exec(ctx, s.c,
		[]string{usersTag + "n:" + name, usersTag + "k:" + u.Passkey, namesKey},
		[]string{name, u.Passkey, u.Created.Format(time.RFC3339)}).Error()
	if err != nil {
		if strings.HasPrefix(err.Error(), "EXISTS") {
			return trackerserver.User{}, fmt.Errorf("user %q already exists (rotate its passkey instead)", name)
		}
		return trackerserver.User{}, fmt.Errorf("add user: %w", err)
	}
	return u, nil
}

// RotateUser gives a user a new passkey; the old one stops working on
// every instance.
func (s *Store) RotateUser(ctx context.Context, name string) (trackerserver.User, error) {
	return s.setPasskey(ctx, name, trackerserver.NewPasskey())
}

// RevokeUser removes a user's passkey, keeping the user and its totals.
func (s *Store) RevokeUser(ctx context.Context, name string) (trackerserver.User, error) {
	return s.setPasskey(ctx, name, "")
}

func (s *Store) setPasskey(ctx context.Context, name, next string) (trackerserver.User, error) {
	for range 5 { // retried only when another change raced this one
		u, err := s.user(ctx, name)
		if err != nil {
			return u, err
		}
		if next == "" && u.Passkey == "" {
			return u, fmt.Errorf("user %q has no passkey to revoke", name)
		}
		newKey := namesKey
		if next != "" {
			newKey = usersTag + "k:" + next
		}
		err = s.setKey.Exec(ctx, s.c,
			[]string{usersTag + "n:" + name, usersTag + "k:" + u.Passkey, newKey},
			[]string{name, u.Passkey, next}).Error()
		if err != nil && strings.HasPrefix(err.Error(), "CHANGED") {
			continue
		}
		if err != nil {
			return u, fmt.Errorf("user %q: %w", name, err)
		}
		u.Passkey = next
		return u, nil
	}
	return trackerserver.User{}, fmt.Errorf("user %q: changed concurrently, try again", name)
}

// user reads one user.
func (s *Store) user(ctx context.Context, name string) (trackerserver.User, error) {
	m, err := s.c.Do(ctx, s.c.B().Hgetall().Key(usersTag+"n:"+name).Build()).AsStrMap()
	if err != nil {
		return trackerserver.User{}, fmt.Errorf("user %q: %w", name, err)
	}
	if len(m) == 0 {
		return trackerserver.User{}, fmt.Errorf("no user %q", name)
	}
	return userFrom(name, m), nil
}

func userFrom(name string, m map[string]string) trackerserver.User {
	u := trackerserver.User{Name: name, Passkey: m["passkey"]}
	u.Created, _ = time.Parse(time.RFC3339, m["created"])
	u.Uploaded, _ = strconv.ParseInt(m["uploaded"], 10, 64)
	u.Downloaded, _ = strconv.ParseInt(m["downloaded"], 10, 64)
	return u
}

// Users returns every user, sorted by name.
func (s *Store) Users(ctx context.Context) ([]trackerserver.User, error) {
	names, err := s.c.Do(ctx, s.c.B().Smembers().Key(namesKey).Build()).AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, nil
	}
	cmds := make([]rueidis.Completed, len(names))
	for i, n := range names {
		cmds[i] = s.c.B().Hgetall().Key(usersTag + "n:" + n).Build()
	}
	us := make([]trackerserver.User, 0, len(names))
	for i, r := range s.c.DoMulti(ctx, cmds...) {
		m, err := r.AsStrMap()
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", names[i], err)
		}
		us = append(us, userFrom(names[i], m))
	}
	return us, nil
}
