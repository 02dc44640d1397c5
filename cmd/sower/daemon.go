package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/daemon"
	"github.com/sowerbt/sower/session"
)

func newDaemonCmd() *cobra.Command {
	var (
		rpcAddr, dataDir, downloadDir string
		port                          int
		listen, encryption            string
		user, password                string
		noDHT                         bool
		dhtBootstrap                  []string
		rpcHosts                      []string
	)
	cmd := &cobra.Command{
		Use:   "daemon [flags]",
		Short: "Run the torrent service: many torrents, RPC, web UI",
		Long: `Run Sower as a long-lived service managing many torrents on one peer port.
The state (torrents, settings, verified pieces) lives in DATA/sower.db, so a
restart resumes without re-hashing. Drive it with sower add/ls/rm, with
transmission-remote or any Transmission RPC client at
http://ADDR/transmission/rpc, or with the web UI at http://ADDR/.
Prometheus metrics are at http://ADDR/metrics. On an address other than
loopback the RPC asks for a password: --password (or $SOWER_RPC_PASSWORD), or
one generated at the first start, printed then on the terminal that started
the daemon and kept only as a hash (with no terminal, give --password). It
answers only to requests addressed to localhost, an IP address or a name
given with --rpc-host (against DNS rebinding).`,
		Example: `  sower daemon
  sower daemon --rpc 127.0.0.1:9091 --port 51413 --data ~/.local/share/sower --download-dir ~/Downloads
  transmission-remote 127.0.0.1:9091 -a file.torrent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sf := swarmFlags{port: port, portSet: cmd.Flags().Changed("port"), listen: listen}
			peerAddr, err := sf.listenAddr()
			if err != nil {
				return err
			}
			if encryption != "" {
				if _, err := session.ParseEncryption(encryption); err != nil {
					return &usageError{fmt.Errorf("--encryption: %w", err)}
				}
			}
			if dataDir == "" {
				base, err := os.UserConfigDir()
				if err != nil {
					return errors.New("--data: no default folder on this system; give one")
				}
				dataDir = filepath.Join(base, "sower")
			}
			if password == "" {
				password = os.Getenv("SOWER_RPC_PASSWORD")
			}
			d, err := daemon.Open(daemon.Config{
				DataDir:      dataDir,
				DownloadDir:  downloadDir,
				PeerAddr:     peerAddr,
				NoDHT:        noDHT,
				Encryption:   encryption,
				DHTBootstrap: dhtBootstrap,
				RPCAddr:      rpcAddr,
				RPCHosts:     rpcHosts,
				Username:     user,
				Password:     password,
				ShowPassword: func(u, pw string) error {
					return showOnTerminal(cmd.ErrOrStderr(), fmt.Sprintf(
						"sower daemon: the RPC is reachable beyond loopback: generated credentials, shown only this once (only a hash is kept; --password sets another):\n  user %s\n  password %s\n",
						u, pw))
				},
				Logger: slog.Default(),
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sower daemon: RPC and web UI on http://%s/ , peers on port %d, state in %s\n",
				d.RPCAddr(), d.PeerPort(), dataDir)
			return d.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&rpcAddr, "rpc", "127.0.0.1:9091", "address of the RPC, web UI and metrics")
	cmd.Flags().IntVar(&port, "port", 6881, "TCP port for peers, shared by all torrents (0 picks a free one)")
	cmd.Flags().StringVar(&listen, "listen", "", "accept peers on this IP:PORT only, e.g. 127.0.0.1:6881 (instead of --port)")
	cmd.Flags().StringVar(&encryption, "encryption", "", "peer connection encryption (MSE): off, prefer or require; stored, and kept on later starts without the flag (default prefer)")
	cmd.Flags().BoolVar(&noDHT, "no-dht", false, "do not use the DHT (by default it runs on the peer port, UDP)")
	cmd.Flags().StringArrayVar(&dhtBootstrap, "dht-bootstrap", nil, "DHT bootstrap node HOST:PORT (repeatable; default the public routers)")
	cmd.Flags().StringVar(&dataDir, "data", "", "folder for the daemon's state (default: the user config folder/sower)")
	cmd.Flags().StringVar(&downloadDir, "download-dir", "", "default folder for downloads (default DATA/downloads)")
	cmd.Flags().StringArrayVar(&rpcHosts, "rpc-host", nil, "a host name the RPC and web UI answer to besides localhost, IP addresses and --rpc's host (repeatable); others are refused, against DNS rebinding")
	cmd.Flags().StringVar(&user, "user", "sower", "RPC user name, with --password")
	cmd.Flags().StringVar(&password, "password", "", "RPC password (or $SOWER_RPC_PASSWORD); required beyond loopback, generated if absent")
	return cmd
}

// showOnTerminal writes msg on the terminal that started the command: its
// standard error if that is one, else its controlling terminal. A secret
// shown this way does not land in a log that standard error is sent to;
// with no terminal at all it is not shown, and that is an error.
func showOnTerminal(stderr io.Writer, msg string) error {
	if isTerminal(stderr) {
		_, err := io.WriteString(stderr, msg)
		return err
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		return errors.New("no terminal to show a generated password on: give --password or set SOWER_RPC_PASSWORD")
	}
	defer tty.Close()
	_, err = io.WriteString(tty, msg)
	return err
}
