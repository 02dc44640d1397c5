package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/dht"
)

// publicRouters bootstrap the client commands when no --bootstrap is given;
// `sower dht` itself starts alone then, so it can be the first node of a
// private network.
var publicRouters = []string{"router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881"}

// dhtFlags are the options shared by the dht commands.
type dhtFlags struct {
	listen    string
	bootstrap []string
	state     string
	rateLimit float64
}

func (f *dhtFlags) add(cmd *cobra.Command, listen string) {
	cmd.Flags().StringVar(&f.listen, "listen", listen, "UDP address of the DHT node")
	cmd.Flags().StringArrayVar(&f.bootstrap, "bootstrap", nil, "HOST:PORT of a node to join through (repeatable)")
	cmd.Flags().StringVar(&f.state, "state", "", "file that keeps the node id and routing table across runs")
	cmd.Flags().Float64Var(&f.rateLimit, "rate-limit", dht.DefaultRateLimit, "queries per second answered per source IP (0: no limit, for local test networks)")
}

func (f *dhtFlags) config(bootstrap []string) dht.Config {
	rl := f.rateLimit
	if rl <= 0 {
		rl = -1
	}
	return dht.Config{Addr: f.listen, Bootstrap: bootstrap, StateFile: f.state, RateLimit: rl, Logger: slog.Default()}
}

// startNode creates a node and runs it until ctx ends; wait returns once
// it has stopped.
func startNode(ctx context.Context, cfg dht.Config) (n *dht.Node, wait func(), err error) {
	n, err = dht.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			slog.Error("dht node stopped", "err", err)
		}
	}()
	return n, func() { cancel(); <-done }, nil
}

func parseInfoHash(s string) ([20]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 20 {
		return [20]byte{}, &usageError{fmt.Errorf("info-hash %q: want 40 hex digits", s)}
	}
	return [20]byte(b), nil
}

func newDHTCmd() *cobra.Command {
	var f dhtFlags
	cmd := &cobra.Command{
		Use:   "dht [--listen ADDR] [--bootstrap HOST:PORT]...",
		Short: "Run a standalone DHT node (BEP 5)",
		Long: `Run a Mainline DHT node until interrupted. It answers other nodes' queries
and keeps its routing table fresh. Without --bootstrap it starts alone, ready to be
the bootstrap node of a private network. The first line on stdout is
  listening on ADDR id HEX
with the actual address (useful with port 0). On exit it prints its counters on
stderr.`,
		Example: "  sower dht --listen 127.0.0.1:6881\n  sower dht --bootstrap router.bittorrent.com:6881 --state ~/.sower/dht.state",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, wait, err := startNode(cmd.Context(), f.config(f.bootstrap))
			if err != nil {
				return err
			}
			id := n.ID()
			fmt.Fprintf(cmd.OutOrStdout(), "listening on %s id %s\n", n.Addr(), hex.EncodeToString(id[:]))
			<-cmd.Context().Done()
			wait()
			s := n.Stats()
			fmt.Fprintf(cmd.ErrOrStderr(), "dht: %d nodes, %d peers for %d torrents stored; %d queries answered, %d rate-limited, %d malformed\n",
				s.Nodes, s.Peers, s.Torrents, s.QueriesReceived, s.RateLimited, s.Malformed)
			return nil
		},
	}
	f.add(cmd, "0.0.0.0:6881")
	cmd.AddCommand(newDHTGetPeersCmd(), newDHTAnnounceCmd())
	return cmd
}

// joinDHT starts a client node and bootstraps it, failing if no bootstrap
// node answers.
func joinDHT(ctx context.Context, f *dhtFlags) (*dht.Node, func(), error) {
	bs := f.bootstrap
	if len(bs) == 0 {
		bs = publicRouters
	}
	n, wait, err := startNode(ctx, f.config(bs))
	if err != nil {
		return nil, nil, err
	}
	if err := n.Bootstrap(ctx); err != nil {
		wait()
		return nil, nil, fmt.Errorf("joining the DHT through %v: %w", bs, err)
	}
	return n, wait, nil
}

func newDHTGetPeersCmd() *cobra.Command {
	var f dhtFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "get-peers [--bootstrap HOST:PORT]... INFOHASH",
		Short: "Find peers for a torrent in the DHT",
		Long: `Join the DHT (through --bootstrap nodes, or the public routers by default),
look up the torrent given by its hex info-hash and print each peer found as
IP:PORT, one per line, as they arrive. Fails if no peer is found.`,
		Example: "  sower dht get-peers --bootstrap 127.0.0.1:6881 0123456789abcdef0123456789abcdef01234567",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ih, err := parseInfoHash(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			n, wait, err := joinDHT(ctx, &f)
			if err != nil {
				return err
			}
			defer wait()
			peers, err := n.GetPeers(ctx, ih)
			if err != nil {
				return fmt.Errorf("get_peers: %w", err)
			}
			found := 0
			for p := range peers {
				found++
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			if found == 0 {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fmt.Errorf("no peers found for %s within %s", args[0], timeout)
				}
				return fmt.Errorf("no peers found for %s", args[0])
			}
			return nil
		},
	}
	f.add(cmd, "0.0.0.0:0")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}

func newDHTAnnounceCmd() *cobra.Command {
	var f dhtFlags
	var timeout time.Duration
	var port uint16
	cmd := &cobra.Command{
		Use:   "announce [--bootstrap HOST:PORT]... --port N INFOHASH",
		Short: "Announce that this host has a torrent, on the DHT",
		Long: `Join the DHT, find the nodes closest to the info-hash and announce this
host's IP with --port to them (with --port 0, the node's own UDP port, as
implied_port). Announces expire after 30 minutes on most nodes.`,
		Example: "  sower dht announce --bootstrap 127.0.0.1:6881 --port 6881 0123456789abcdef0123456789abcdef01234567",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ih, err := parseInfoHash(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			n, wait, err := joinDHT(ctx, &f)
			if err != nil {
				return err
			}
			defer wait()
			return n.Announce(ctx, ih, port, port == 0)
		},
	}
	f.add(cmd, "0.0.0.0:0")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	cmd.Flags().Uint16Var(&port, "port", 0, "peer port to announce (0: the DHT node's port)")
	return cmd
}
