package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sowerbt/sower/engine"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
	"github.com/sowerbt/sower/storage"
)

// Config sets up a Daemon. Zero values take the documented defaults.
type Config struct {
	// DataDir holds the state database (sower.db); it is created if needed.
	DataDir string
	// DownloadDir is the default folder for new torrents on first start;
	// afterwards the stored session setting wins. Default DataDir/downloads.
	DownloadDir string
	// PeerAddr is where peers connect, e.g. ":6881" (":0" picks a port);
	// the DHT uses the same port over UDP.
	PeerAddr string
	// Encryption, if set, is the peer connection encryption policy
	// ("off", "prefer" or "require", see session.Encryption), stored in
	// the settings; if empty the stored setting (default prefer) holds.
	Encryption string
	// NoDHT turns the DHT off; DHTBootstrap lists HOST:PORT of nodes to
	// join it through (default the public routers). The node's id and
	// routing table are kept in the state database across restarts.
	NoDHT        bool
	DHTBootstrap []string
	// AnnounceFloor is the shortest re-announce interval whatever a
	// tracker says; default session.DefaultAnnounceFloor (tests shorten it).
	AnnounceFloor time.Duration
	// RPCAddr, if set, is where Run serves Handler (RPC, web UI, metrics).
	RPCAddr string
	// RPCHosts are host names, besides localhost, IP addresses and the
	// host of RPCAddr, that Handler answers to (the Host header); any
	// other name is refused, against DNS rebinding.
	RPCHosts []string
	// Username and Password, if set, protect the RPC and web UI with
	// basic auth. On a non-loopback RPCAddr without them, a password is
	// generated at the first start and handed to ShowPassword, so the
	// daemon is never open by accident; only its hash is stored.
	Username, Password string
	// ShowPassword shows a generated password (see Password) to whoever
	// started the daemon, once: it is the only time it exists in clear.
	// It should not write it to a log. If it is nil or fails, no password
	// is generated and Open fails.
	ShowPassword func(user, password string) error
	// CheckpointInterval is how often verified pieces are made durable;
	// default 5 s.
	CheckpointInterval time.Duration
	// RetryAfter is how long a torrent stays in the error state (a full
	// disk, an unwritable folder) before it is tried again; default 30 s.
	RetryAfter time.Duration
	// FetchTimeout bounds the download of a .torrent given by URL; default 30 s.
	FetchTimeout time.Duration
	// ParkAfter is how long a seed stays without peers before it is
	// parked (no engine, no goroutine; see DefaultParkAfter, the
	// default); negative never parks.
	ParkAfter time.Duration
	// HTTPClient fetches .torrent URLs; default a client with FetchTimeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Settings are the session's tunables, changed at run time through the
// RPC (session-set) and stored across restarts.
type Settings struct {
	DownloadDir string `json:"download_dir"`
	// Rate limits in bytes per second; 0 means unlimited.
	SpeedLimitDown int64 `json:"speed_limit_down"`
	SpeedLimitUp   int64 `json:"speed_limit_up"`
	// The alternative limits apply when AltSpeedEnabled is set, or during
	// the daily window [AltBegin, AltEnd) (minutes after local midnight)
	// when AltTimeEnabled is set.
	AltSpeedDown    int64 `json:"alt_speed_down"`
	AltSpeedUp      int64 `json:"alt_speed_up"`
	AltSpeedEnabled bool  `json:"alt_speed_enabled"`
	AltTimeEnabled  bool  `json:"alt_time_enabled"`
	AltBegin        int   `json:"alt_begin"`
	AltEnd          int   `json:"alt_end"`
	// Queue limits on torrents running at once; 0 means unlimited.
	DownloadQueueSize int `json:"download_queue_size"`
	SeedQueueSize     int `json:"seed_queue_size"`
	// Seeding stops at this ratio or after this many minutes; 0 = never.
	SeedRatioLimit  float64 `json:"seed_ratio_limit"`
	SeedTimeMinutes int     `json:"seed_time_minutes"`
	// PeersPerTorrent is the connection limit of each torrent.
	PeersPerTorrent int `json:"peers_per_torrent"`
	// Encryption is the peer connection encryption policy: "off",
	// "prefer" or "require" (see session.Encryption); "" means prefer.
	// A change applies to connections made from then on.
	Encryption string `json:"encryption,omitempty"`
	// GeneratedPasswordHash is the hash (see credential) of the RPC
	// password the daemon generated, when it had to make one up.
	GeneratedPasswordHash string `json:"generated_password_hash,omitempty"`
}

// encryption is the Encryption setting as the session's policy.
func (s *Settings) encryption() (session.Encryption, error) {
	if s.Encryption == "" {
		return session.EncryptionPrefer, nil
	}
	return session.ParseEncryption(s.Encryption)
}

func defaultSettings(downloadDir string) Settings {
	return Settings{
		DownloadDir:       downloadDir,
		DownloadQueueSize: 5,
		PeersPerTorrent:   50,
		AltSpeedDown:      50_000,
		AltSpeedUp:        50_000,
		AltBegin:          9 * 60,
		AltEnd:            17 * 60,
	}
}

// Daemon manages many torrents. Create it with Open, drive it with Run.
type Daemon struct {
	cfg       Config
	log       *slog.Logger
	db        *store
	sess      *session.Session // peer listener, DHT, announces
	rpcLn     net.Listener
	sessionID string
	hosts     hostAllowList // Host headers Handler answers to
	up, down  *rate.Limiter // global limits, shared by every torrent
	kick      chan struct{}
	metrics   *metrics
	// wrapStorage, if set (by tests), wraps each run's storage, e.g. to
	// simulate a full disk.
	wrapStorage func(storage.Storage) storage.Storage
	// lastListSize is the length of the last torrent-get reply, to size
	// the next one's buffer in one allocation.
	lastListSize atomic.Int64
	gzPool       sync.Pool // *gzip.Writer, see gzipped

	mu       sync.Mutex // guards everything below and every torrent's fields
	settings Settings
	torrents map[[20]byte]*torrent
	byID     map[int]*torrent
	runCtx   context.Context               // set while Run runs; torrents start under it
	extra    map[[20]byte][]netip.AddrPort // peers given by AddPeers, offered at every start
	wg       sync.WaitGroup                // torrent goroutines
	// parkedSinceRelease counts torrents parked since releaseMemory last
	// ran, at lastRelease; allocsAtRelease is the heap's cumulative
	// allocated bytes when it last returned memory.
	parkedSinceRelease int
	lastRelease        time.Time
	allocsAtRelease    uint64
	username           string
	cred               credential // RPC password; unset: none asked
}

// Open loads the state in cfg.DataDir and opens the peer (and RPC)
// listeners, so their addresses are known before Run.
func Open(cfg Config) (*Daemon, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("daemon: no data folder")
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = 5 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 30 * time.Second
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	if cfg.ParkAfter == 0 {
		cfg.ParkAfter = DefaultParkAfter
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.FetchTimeout}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	explicitDir := cfg.DownloadDir != ""
	if !explicitDir {
		cfg.DownloadDir = filepath.Join(cfg.DataDir, "downloads")
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = ":6881"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("daemon: data folder: %w", err)
	}
	db, err := openStore(filepath.Join(cfg.DataDir, "sower.db"))
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:       cfg,
		log:       cfg.Logger,
		db:        db,
		sessionID: randomToken(24),
		hosts:     newHostAllowList(cfg.RPCAddr, cfg.RPCHosts),
		up:        rate.NewLimiter(rate.Inf, 4<<20),
		down:      rate.NewLimiter(rate.Inf, 4<<20),
		kick:      make(chan struct{}, 1),
		torrents:  make(map[[20]byte]*torrent),
		byID:      make(map[int]*torrent),
		extra:     make(map[[20]byte][]netip.AddrPort),
		settings:  defaultSettings(cfg.DownloadDir),
	}
	fail := func(err error) (*Daemon, error) {
		if d.sess != nil {
			d.sess.Close()
		}
		if d.rpcLn != nil {
			d.rpcLn.Close()
		}
		db.close()
		return nil, err
	}
	found, err := db.loadSettings(&d.settings)
	if err != nil {
		return fail(err)
	}
	if explicitDir || !found {
		if explicitDir {
			d.settings.DownloadDir = cfg.DownloadDir
		}
		if err := db.saveSettings(&d.settings); err != nil {
			return fail(err)
		}
	}
	if cfg.Encryption != "" && cfg.Encryption != d.settings.Encryption {
		d.settings.Encryption = cfg.Encryption
		if err := db.saveSettings(&d.settings); err != nil {
			return fail(err)
		}
	}
	enc, err := d.settings.encryption()
	if err != nil {
		return fail(fmt.Errorf("daemon: %w", err))
	}
	if err := d.loadTorrents(); err != nil {
		return fail(err)
	}
	d.sess, err = session.New(session.Config{
		Encryption:    enc,
		Listen:        cfg.PeerAddr,
		NoDHT:         cfg.NoDHT,
		DHTBootstrap:  cfg.DHTBootstrap,
		DHTState:      db,
		AnnounceFloor: cfg.AnnounceFloor,
		Logger:        cfg.Logger,
	})
	if err != nil {
		return fail(fmt.Errorf("daemon: %w", err))
	}
	if cfg.RPCAddr != "" {
		d.rpcLn, err = net.Listen("tcp", cfg.RPCAddr)
		if err != nil {
			return fail(fmt.Errorf("daemon: listen for RPC on %s: %w", cfg.RPCAddr, err))
		}
		if err := d.setupAuth(d.rpcLn.Addr()); err != nil {
			return fail(err)
		}
	}
	d.metrics = newMetrics(d)
	d.applyLimits(time.Now())
	return d, nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *Daemon) loadTorrents() error {
	recs, metas, err := d.db.loadAll()
	if err != nil {
		return err
	}
	for i := range recs {
		t := &torrent{rec: recs[i]}
		t.rec.DownloadDir = internDir(t.rec.DownloadDir)
		ih, err := parseHash(t.rec.InfoHash)
		if err != nil {
			return fmt.Errorf("state: torrent record %q: %w", t.rec.InfoHash, err)
		}
		t.ih = ih
		if metas[i] != nil {
			mi, err := metainfo.Parse(metas[i])
			if err == nil {
				err = t.setMeta(mi)
			}
			if err != nil {
				t.rec.Error = fmt.Sprintf("stored metainfo unreadable: %v", err)
			}
		}
		t.initState()
		if t.complete && t.rec.Error == "" && !t.rec.Paused {
			// A verified seed needs no engine until a peer shows up.
			d.parkLocked(t)
		}
		d.torrents[ih] = t
		d.byID[t.rec.ID] = t
	}
	return nil
}

// PeerPort is the port peers connect to, shared by all torrents.
func (d *Daemon) PeerPort() uint16 { return d.sess.Port() }

// RPCAddr is the address Run serves HTTP on, or nil without Config.RPCAddr.
func (d *Daemon) RPCAddr() net.Addr {
	if d.rpcLn == nil {
		return nil
	}
	return d.rpcLn.Addr()
}

// Run starts the torrents and serves until ctx is cancelled; then it
// stops every torrent (each writes an exact checkpoint) and closes the
// state database. A Daemon runs once.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	serveErr := make(chan error, 1)
	var srv *http.Server
	if d.rpcLn != nil {
		srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second}
		bg.Go(func() {
			if err := srv.Serve(d.rpcLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("RPC server: %w", err)
			}
		})
	}
	d.mu.Lock()
	d.runCtx = ctx
	for _, t := range d.torrents {
		if t.life == lifeParked {
			d.announceStartLocked(t)
		}
	}
	d.mu.Unlock()
	d.log.Info("daemon running", "peer_port", d.PeerPort(), "rpc", d.RPCAddr())

	var result error
	tick := time.NewTicker(d.cfg.CheckpointInterval)
	defer tick.Stop()
	d.schedule(time.Now())
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			result = err
			break loop
		case <-d.kick:
			d.schedule(time.Now())
		case now := <-tick.C:
			d.checkpoint()
			d.applyLimits(now)
			d.parkIdle(now)
			d.schedule(now)
			d.releaseMemory(now)
		}
	}
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		scancel()
	}
	d.mu.Lock()
	d.runCtx = nil
	for _, t := range d.torrents {
		if t.run != nil {
			t.run.cancel()
		}
	}
	d.mu.Unlock()
	cancel()
	d.wg.Wait()
	// Every run has ended: now the trackers hear "stopped".
	d.sess.Close()
	bg.Wait()
	if err := d.db.close(); err != nil && result == nil {
		result = fmt.Errorf("close state database: %w", err)
	}
	return result
}

// kickScheduler asks Run to re-plan soon, without blocking.
func (d *Daemon) kickScheduler() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// applyLimits sets the global limiters from the settings and the
// alternative speed schedule.
func (d *Daemon) applyLimits(now time.Time) {
	d.mu.Lock()
	down, up := d.effectiveLimits(now)
	d.mu.Unlock()
	setLimiter(d.down, down)
	setLimiter(d.up, up)
}

// effectiveLimits is called with d.mu held.
func (d *Daemon) effectiveLimits(now time.Time) (down, up int64) {
	s := &d.settings
	alt := s.AltSpeedEnabled
	if s.AltTimeEnabled {
		m := now.Hour()*60 + now.Minute()
		if s.AltBegin <= s.AltEnd {
			alt = alt || (m >= s.AltBegin && m < s.AltEnd)
		} else { // the window crosses midnight
			alt = alt || m >= s.AltBegin || m < s.AltEnd
		}
	}
	if alt {
		return s.AltSpeedDown, s.AltSpeedUp
	}
	return s.SpeedLimitDown, s.SpeedLimitUp
}

func setLimiter(l *rate.Limiter, bps int64) {
	if bps <= 0 {
		if l.Limit() != rate.Inf {
			l.SetLimit(rate.Inf)
			l.SetBurst(4 << 20)
		}
		return
	}
	if l.Limit() != rate.Limit(bps) {
		l.SetBurst(engine.NewLimiter(bps).Burst())
		l.SetLimit(rate.Limit(bps))
	}
}

// schedule starts and stops torrents to honour pauses, queue limits and
// seeding limits.
func (d *Daemon) schedule(now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.runCtx == nil || d.runCtx.Err() != nil {
		return
	}
	s := &d.settings
	var downloads, seeds []*torrent
	for _, t := range d.torrents {
		if t.life == lifeRemoving || t.life == lifeHeld || t.rec.Paused {
			if t.run != nil && (t.rec.Paused || t.life == lifeRemoving) {
				t.run.cancel()
			}
			continue
		}
		if t.life == lifeParked {
			if t.seedLimitReached(s, now) {
				t.rec.Paused = true
				d.announceStopLocked(t)
				d.unparkLocked(t)
				d.saveLocked(t)
				continue
			}
			seeds = append(seeds, t)
			continue
		}
		if t.mi == nil {
			if t.run == nil && (t.rec.Error == "" || now.UnixNano() >= t.retryAt) {
				t.rec.Error = ""
				d.startFetchLocked(t)
			}
			continue
		}
		if t.rec.Error != "" {
			if t.run != nil || now.UnixNano() < t.retryAt {
				continue
			}
			t.rec.Error = "" // try again: the disk may have room now
		}
		if t.complete && t.seedLimitReached(s, now) {
			t.rec.Paused = true
			d.saveLocked(t)
			if t.run != nil {
				t.run.cancel()
			}
			continue
		}
		if t.complete {
			seeds = append(seeds, t)
		} else {
			downloads = append(downloads, t)
		}
	}
	d.admit(downloads, s.DownloadQueueSize)
	d.admit(seeds, s.SeedQueueSize)
}

// admit runs the first limit torrents by queue position (0 = all) and
// queues the rest. Running torrents keep their slot over queued ones of
// the same kind only by position, as Transmission does.
func (d *Daemon) admit(ts []*torrent, limit int) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].rec.Queue < ts[j].rec.Queue })
	for i, t := range ts {
		run := limit <= 0 || i < limit
		switch {
		case t.life == lifeParked && !run:
			d.announceStopLocked(t)
			d.unparkLocked(t) // queued: idle, not paused
		case t.life == lifeParked:
		case run && t.run == nil:
			d.startLocked(t, lifeChecking)
		case !run && t.run != nil:
			t.run.cancel() // queued once it ends
		}
	}
}

// saveLocked persists t's record; d.mu is held. Failures are logged:
// the record stays in memory and is written again at the next change.
func (d *Daemon) saveLocked(t *torrent) {
	rec := t.rec
	if err := d.db.put(nil, &rec); err != nil {
		d.log.Error("save torrent state", "torrent", t.rec.Name, "err", err)
	}
}

// Settings returns the session settings.
func (d *Daemon) Settings() Settings {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settings
}

// UpdateSettings changes the session settings through f and stores them.
func (d *Daemon) UpdateSettings(f func(*Settings) error) error {
	d.mu.Lock()
	s := d.settings
	if err := f(&s); err != nil {
		d.mu.Unlock()
		return err
	}
	if s.DownloadQueueSize < 0 || s.SeedQueueSize < 0 || s.PeersPerTorrent < 0 || s.SeedRatioLimit < 0 || s.SeedTimeMinutes < 0 {
		d.mu.Unlock()
		return errors.New("settings: queue sizes, peer limits and seeding limits must not be negative")
	}
	if s.SpeedLimitDown < 0 || s.SpeedLimitUp < 0 || s.AltSpeedDown < 0 || s.AltSpeedUp < 0 {
		d.mu.Unlock()
		return errors.New("settings: speed limits must not be negative")
	}
	enc, err := s.encryption()
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("settings: %w", err)
	}
	if err := d.db.saveSettings(&s); err != nil {
		d.mu.Unlock()
		return err
	}
	d.settings = s
	d.mu.Unlock()
	if err := d.sess.SetEncryption(enc); err != nil {
		return err
	}
	d.applyLimits(time.Now())
	d.kickScheduler()
	return nil
}

// AddPeers offers peer addresses for a torrent (from the user, a script
// or a test), now if it runs and again whenever it starts.
func (d *Daemon) AddPeers(ih [20]byte, addrs ...netip.AddrPort) error {
	d.mu.Lock()
	t, err := d.lookup(ih)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	d.extra[ih] = append(d.extra[ih], addrs...)
	w, parked := t.swarm, t.parked()
	d.mu.Unlock()
	if w != nil {
		// To the engine, or the metadata fetch, or kept for the engine
		// a wake attaches.
		w.AddPeers(addrs...)
	}
	if parked {
		// They may want what we seed: wake it.
		d.wakeEngine(ih)
	}
	return nil
}
