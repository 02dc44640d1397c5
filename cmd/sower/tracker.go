package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/trackerserver"
	"github.com/sowerbt/sower/trackerserver/redisstore"
)

// defaultTrackerAddr is the well-known tracker port on every interface.
const defaultTrackerAddr = ":6969"

// defaultTrackerData is where the tracker keeps passkeys, counts and
// uploads unless --data says otherwise: the XDG data directory.
func defaultTrackerData() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sower", "tracker")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "sower", "tracker")
	}
	return "sower-tracker"
}

func newTrackerCmd() *cobra.Command {
	var (
		httpAddr, udpAddr, dataDir, whitelist, configFile string
		private, fullScrape, allowUnregistered            bool
		interval                                          time.Duration
		realIPHeader, title                               string
		gcPercent                                         int
		stores                                            []string
	)
	cmd := &cobra.Command{
		Use:   "tracker [--http ADDR] [--udp ADDR] [--data DIR] [--private] [--whitelist FILE]",
		Short: "Run a BitTorrent tracker (HTTP and UDP) with a web index",
		Long: `Run a BitTorrent tracker: HTTP announce/scrape at /announce and /scrape,
the UDP tracker protocol, an index page of the tracked torrents at /, operator
uploads at /upload and Prometheus metrics at /metrics, until Ctrl-C.

Access modes: open (default), whitelist (--whitelist FILE with one hex
info-hash per line, re-read when it changes; uploaded torrents are allowed
too) and private (--private: announces go to /<passkey>/announce, see
'sower tracker passkey'; only torrents uploaded or in --whitelist are
tracked unless --allow-unregistered, UDP scrapes are refused as they carry
no passkey, and the index page is shown to the operator only).
Limits and their defaults are listed in docs/security.md.

Passkeys, download counts and uploaded torrents are kept in --data DIR
(default ` + defaultTrackerData() + `; --data "" keeps nothing).

Several trackers can share swarms through Redis or Valkey: --store
redis://HOST:PORT[/DB] (rediss:// for TLS; the password in the URL or in
$SOWER_REDIS_PASSWORD), and for a Redis Cluster --store redis+cluster://HOST:PORT
or several --store seeds. Then swarms, download counts, passkeys with their
traffic and the whitelist live in the store, and any instance answers any
announce or scrape; --data keeps only uploads and the upload password. Settings may
also come from a JSON --config file (keys: data, mode, whitelist, interval,
min_interval, expire_factor, numwant, max_numwant, max_torrents,
max_peers_per_torrent, max_peers, max_scrape_hashes, full_scrape,
real_ip_header, trusted_proxies, flush_interval, title, allow_unregistered,
max_conns, header_timeout); flags win.
--http "" or --udp "" turns a protocol off.`,
		Example: `  sower tracker --http 127.0.0.1:6969 --udp 127.0.0.1:6969
  sower tracker --private --data /var/lib/sower-tracker
  sower tracker passkey add alice
  sower tracker --store redis://10.0.0.5:6379 --private --data ""
  sower tracker --store redis+cluster://10.0.0.5:7000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg trackerserver.Config
			if configFile != "" {
				b, err := os.ReadFile(configFile)
				if err != nil {
					return fmt.Errorf("config: %w", err)
				}
				if cfg, err = trackerserver.ParseConfig(b); err != nil {
					return fmt.Errorf("%s: %w", configFile, err)
				}
			}
			f := cmd.Flags()
			if f.Changed("data") || cfg.DataDir == "" {
				cfg.DataDir = dataDir
			}
			if f.Changed("whitelist") {
				cfg.WhitelistFile = whitelist
			}
			if cfg.WhitelistFile != "" && cfg.Mode == "" {
				cfg.Mode = trackerserver.ModeWhitelist
			}
			if private {
				cfg.Mode = trackerserver.ModePrivate
			}
			if f.Changed("allow-unregistered") {
				cfg.AllowUnregistered = allowUnregistered
			}
			if f.Changed("full-scrape") {
				cfg.FullScrape = fullScrape
			}
			if f.Changed("interval") {
				cfg.Interval = trackerserver.Duration(interval)
			}
			if f.Changed("real-ip-header") {
				cfg.RealIPHeader = realIPHeader
			}
			if f.Changed("title") {
				cfg.Title = title
			}
			if f.Changed("gc-percent") || os.Getenv("GOGC") == "" {
				if gcPercent <= 0 {
					return &usageError{fmt.Errorf("--gc-percent %d: must be positive", gcPercent)}
				}
				debug.SetGCPercent(gcPercent)
			}
			if len(stores) > 0 {
				st, err := openStore(cmd.Context(), stores)
				if err != nil {
					return err
				}
				defer st.Close()
				cfg.Store = st
				if !f.Changed("data") && cfg.DataDir == defaultTrackerData() {
					// On a shared store the data directory holds only
					// uploads: none unless asked for.
					cfg.DataDir = ""
				}
			}
			return runTracker(cmd.Context(), cmd.OutOrStdout(), cfg, httpAddr, udpAddr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&httpAddr, "http", defaultTrackerAddr, "TCP address for HTTP announces, scrapes and the web index (\"\" = off)")
	f.StringVar(&udpAddr, "udp", defaultTrackerAddr, "UDP address for the BEP 15 tracker protocol (\"\" = off)")
	f.StringVar(&dataDir, "data", defaultTrackerData(), "directory of the tracker database (\"\" = memory only)")
	f.BoolVar(&private, "private", false, "private tracker: require a passkey (/<passkey>/announce)")
	f.StringVar(&whitelist, "whitelist", "", "file of allowed info-hashes (40 hex digits per line)")
	f.BoolVar(&allowUnregistered, "allow-unregistered", false, "private tracker: track any torrent a passkey holder announces, not only uploaded or whitelisted ones")
	f.StringVar(&configFile, "config", "", "JSON configuration file; flags override it")
	f.BoolVar(&fullScrape, "full-scrape", false, "answer scrapes without info_hash with every torrent")
	f.DurationVar(&interval, "interval", trackerserver.DefaultInterval, "re-announce interval told to clients")
	f.StringVar(&realIPHeader, "real-ip-header", "", "header with the client address set by a reverse proxy on loopback (e.g. X-Forwarded-For)")
	f.StringVar(&title, "title", "", "title of the index page")
	// The tracker's heap is almost all pointer-free peer records and its
	// request paths allocate little, so collecting when the heap has grown
	// by a quarter (rather than Go's default of doubling) costs little CPU
	// and keeps the resident size near the live peers.
	f.IntVar(&gcPercent, "gc-percent", 25, "garbage collector target percentage (as GOGC; the GOGC variable wins unless this is given)")
	f.StringArrayVar(&stores, "store", nil, "share swarms through Redis/Valkey: redis://HOST:PORT[/DB], rediss://..., redis+cluster://HOST:PORT, or several seeds of a Cluster (repeat the flag)")
	cmd.AddCommand(newPasskeyCmd(&dataDir))
	return cmd
}

// openStore connects to the shared store named by the --store URLs.
func openStore(ctx context.Context, urls []string) (*redisstore.Store, error) {
	o, err := redisstore.ParseURLs(urls, os.Getenv)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--store: %w", err)}
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return redisstore.Open(ctx, o)
}

// runTracker listens, serves until ctx ends and shuts down cleanly.
func runTracker(ctx context.Context, out io.Writer, cfg trackerserver.Config, httpAddr, udpAddr string) error {
	if httpAddr == "" && udpAddr == "" {
		return &usageError{errors.New("--http and --udp are both off: nothing to serve")}
	}
	srv, err := trackerserver.New(cfg, slog.Default())
	if err != nil {
		return err
	}
	var lns []net.Listener
	var pcs []net.PacketConn
	closeAll := func() {
		for _, l := range lns {
			l.Close()
		}
		for _, p := range pcs {
			p.Close()
		}
		srv.Close()
	}
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("--http: %w", err)
		}
		lns = append(lns, ln)
		base := "http://" + displayAddr(ln.Addr())
		if cfg.Mode == trackerserver.ModePrivate {
			fmt.Fprintf(out, "HTTP tracker: %s/<passkey>/announce\n", base)
		} else {
			fmt.Fprintf(out, "HTTP tracker: %s/announce\n", base)
		}
		fmt.Fprintf(out, "Web index:    %s/  (metrics at /metrics)\n", base)
	}
	if udpAddr != "" {
		pc, err := net.ListenPacket("udp", udpAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("--udp: %w", err)
		}
		pcs = append(pcs, pc)
		fmt.Fprintf(out, "UDP tracker:  udp://%s/announce\n", displayAddr(pc.LocalAddr()))
	}
	if tok := srv.AdminToken(); tok != "" && httpAddr != "" {
		fmt.Fprintf(out, "Upload password (any user name): %s\n", tok)
	}
	serveErr := srv.Serve(ctx, lns, pcs)
	if err := srv.Close(); serveErr == nil && err != nil {
		serveErr = fmt.Errorf("close tracker database: %w", err)
	}
	return serveErr
}

// displayAddr shows a listening address as clients would dial it
// locally: an unspecified host becomes 127.0.0.1 for readability.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func newPasskeyCmd(dataDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "passkey",
		Short: "Manage the passkeys of a private tracker (while the tracker is stopped)",
		Long: `Add, rotate, revoke and list the users of a private tracker. These work on
the database in --data DIR and need the tracker to be stopped, since only one
process may hold the database; with --store URL they work on the shared store
while the trackers run, and every instance sees a change at once.`,
		Example: "  sower tracker passkey add alice\n  sower tracker passkey list",
	}
	var stores []string
	withStore := func(cmd *cobra.Command, fn func(userAdmin) error) error {
		if len(stores) > 0 {
			st, err := openStore(cmd.Context(), stores)
			if err != nil {
				return err
			}
			defer st.Close()
			return fn(redisUsers{st, cmd.Context()})
		}
		if *dataDir == "" {
			return &usageError{errors.New("--data: a private tracker needs a data directory (or --store)")}
		}
		st, err := trackerserver.OpenStore(*dataDir)
		if err != nil {
			return err
		}
		err = fn(st)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		return err
	}
	show := func(cmd *cobra.Command, u trackerserver.User, verb string) {
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s: passkey %s (announce URL path /%s/announce)\n", verb, u.Name, u.Passkey, u.Passkey)
	}
	one := func(use, short, verb string, op func(userAdmin, string) (trackerserver.User, error)) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1),
			Example: "  sower tracker passkey " + use + " alice",
			RunE: func(cmd *cobra.Command, args []string) error {
				return withStore(cmd, func(st userAdmin) error {
					u, err := op(st, args[0])
					if err != nil {
						return err
					}
					if u.Passkey == "" {
						fmt.Fprintf(cmd.OutOrStdout(), "%s %s: passkey revoked\n", verb, u.Name)
						return nil
					}
					show(cmd, u, verb)
					return nil
				})
			},
		}
	}
	cmd.AddCommand(
		one("add", "Create a user with a new passkey", "added", userAdmin.AddUser),
		one("rotate", "Give a user a new passkey (the old one stops working)", "rotated", userAdmin.RotateUser),
		one("revoke", "Remove a user's passkey (counts are kept)", "revoked", userAdmin.RevokeUser),
		&cobra.Command{
			Use: "list", Short: "List users with their traffic", Args: cobra.NoArgs,
			Example: "  sower tracker passkey list",
			RunE: func(cmd *cobra.Command, _ []string) error {
				return withStore(cmd, func(st userAdmin) error {
					us, err := st.Users()
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "NAME\tPASSKEY\tUPLOADED\tDOWNLOADED\tRATIO")
					for _, u := range us {
						pk := u.Passkey
						if pk == "" {
							pk = "(revoked)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2f\n", u.Name, pk, u.Uploaded, u.Downloaded, u.Ratio())
					}
					return tw.Flush()
				})
			},
		},
	)
	cmd.PersistentFlags().StringVar(dataDir, "data", defaultTrackerData(), "directory of the tracker database")
	cmd.PersistentFlags().StringArrayVar(&stores, "store", nil, "manage the users in this shared store (as tracker --store) instead of --data; works while trackers run")
	return cmd
}

// userAdmin is what the passkey commands need of a user database: the
// tracker's own (--data) or a shared store's (--store).
type userAdmin interface {
	AddUser(name string) (trackerserver.User, error)
	RotateUser(name string) (trackerserver.User, error)
	RevokeUser(name string) (trackerserver.User, error)
	Users() ([]trackerserver.User, error)
}

// redisUsers is a shared store's users as a userAdmin.
type redisUsers struct {
	st  *redisstore.Store
	ctx context.Context
}

func (r redisUsers) AddUser(name string) (trackerserver.User, error) {
	return r.st.AddUser(r.ctx, name)
}
func (r redisUsers) RotateUser(name string) (trackerserver.User, error) {
	return r.st.RotateUser(r.ctx, name)
}
func (r redisUsers) RevokeUser(name string) (trackerserver.User, error) {
	return r.st.RevokeUser(r.ctx, name)
}
func (r redisUsers) Users() ([]trackerserver.User, error) { return r.st.Users(r.ctx) }
