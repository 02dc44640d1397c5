package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/daemon"
	"github.com/sowerbt/sower/metainfo"
)

// remoteFlags locate and authenticate a running daemon.
type remoteFlags struct {
	rpc      string
	user     string
	password string
}

func (f *remoteFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.rpc, "rpc", "127.0.0.1:9091", "address of the daemon's RPC (HOST:PORT or URL)")
	cmd.Flags().StringVar(&f.user, "user", "sower", "RPC user name")
	cmd.Flags().StringVar(&f.password, "password", "", "RPC password (default $SOWER_RPC_PASSWORD)")
}

// remote talks to a daemon's JSON API, doing the session-token handshake.
type remote struct {
	base       string
	user, pass string
	token      string
	hc         *http.Client
}

func (f *remoteFlags) client() *remote {
	base := f.rpc
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	pass := f.password
	if pass == "" {
		pass = os.Getenv("SOWER_RPC_PASSWORD")
	}
	return &remote{base: strings.TrimSuffix(base, "/"), user: f.user, pass: pass, hc: &http.Client{Timeout: 60 * time.Second}}
}

// do sends one request; out, if not nil, receives the JSON answer.
func (r *remote) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, r.base+path, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("daemon at %s: %w", r.base, err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Transmission-Session-Id", r.token)
		if r.pass != "" {
			req.SetBasicAuth(r.user, r.pass)
		}
		resp, err := r.hc.Do(req)
		if err != nil {
			return fmt.Errorf("daemon at %s: %w (is `sower daemon` running?)", r.base, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("daemon at %s: reading answer: %w", r.base, err)
		}
		switch {
		case resp.StatusCode == http.StatusConflict && attempt == 0:
			r.token = resp.Header.Get("X-Transmission-Session-Id")
			continue
		case resp.StatusCode == http.StatusUnauthorized:
			return fmt.Errorf("daemon at %s: authentication failed: give --password or set SOWER_RPC_PASSWORD", r.base)
		case resp.StatusCode == http.StatusMisdirectedRequest:
			return fmt.Errorf("daemon at %s does not answer to that host name (against DNS rebinding): use its IP address, or start it with --rpc-host NAME", r.base)
		case resp.StatusCode != http.StatusOK:
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(data, &e) == nil && e.Error != "" {
				return errors.New(e.Error)
			}
			return fmt.Errorf("daemon at %s: HTTP %s", r.base, resp.Status)
		}
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("daemon at %s: bad answer: %w", r.base, err)
			}
		}
		return nil
	}
}

func newAddCmd() *cobra.Command {
	var (
		rf     remoteFlags
		dir    string
		paused bool
	)
	cmd := &cobra.Command{
		Use:   "add [flags] TORRENT_FILE|MAGNET|URL...",
		Short: "Add torrents to a running daemon",
		Long: `Add torrents to a running sower daemon: .torrent files (read here and sent),
magnet links, or http(s) URLs of .torrent files (fetched by the daemon).
Prints the id, info-hash and name of each.`,
		Example: `  sower add ubuntu.iso.torrent
  sower add --download-dir /srv/media --paused 'magnet:?xt=urn:btih:...'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := rf.client()
			for _, a := range args {
				body := daemon.AddBody{DownloadDir: dir, Paused: paused}
				if strings.Contains(a, ":") && !fileExists(a) {
					body.URL = a
				} else {
					st, err := os.Stat(a)
					if err != nil {
						return err
					}
					if st.Size() > metainfo.MaxFileSize {
						return fmt.Errorf("%s: larger than the %d-byte .torrent limit", a, metainfo.MaxFileSize)
					}
					if body.Metainfo, err = os.ReadFile(a); err != nil {
						return err
					}
				}
				var res daemon.AddReply
				if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/torrents", body, &res); err != nil {
					return fmt.Errorf("add %s: %w", a, err)
				}
				note := ""
				if res.Duplicate {
					note = "  (already added)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d\t%s\t%s%s\n", res.ID, res.InfoHash, res.Name, note)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "download-dir", "o", "", "folder to download into (default: the daemon's)")
	cmd.Flags().BoolVar(&paused, "paused", false, "add without starting")
	rf.register(cmd)
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func newLsCmd() *cobra.Command {
	var (
		rf     remoteFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "ls [flags]",
		Short:   "List the torrents of a running daemon",
		Example: "  sower ls\n  sower ls --json | jq '.[].name'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list []daemon.Status
			if err := rf.client().do(cmd.Context(), http.MethodGet, "/api/v1/torrents", nil, &list); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tDONE\tSIZE\tSTATE\tDOWN\tUP\tRATIO\tETA\tNAME")
			for _, s := range list {
				eta := "-"
				if s.ETA > 0 {
					eta = (time.Duration(s.ETA) * time.Second).String()
				}
				state := s.State
				if s.Error != "" && s.State == "error" {
					state += ": " + s.Error
				}
				fmt.Fprintf(tw, "%d\t%.1f%%\t%s\t%s\t%s/s\t%s/s\t%.2f\t%s\t%s\n", s.ID, s.Progress*100, formatSize(s.Wanted),
					state, formatSize(int64(s.DownloadRate)), formatSize(int64(s.UploadRate)), s.Ratio, eta, s.Name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the full status of every torrent as JSON")
	rf.register(cmd)
	return cmd
}

// resolve turns ids and info-hashes given on the command line into hashes.
func resolve(ctx context.Context, c *remote, args []string) ([]string, error) {
	var list []daemon.Status
	if err := c.do(ctx, http.MethodGet, "/api/v1/torrents", nil, &list); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(args))
	for _, a := range args {
		found := ""
		id, idErr := strconv.Atoi(a)
		for _, s := range list {
			if (idErr == nil && s.ID == id) || strings.EqualFold(s.InfoHash, a) {
				found = s.InfoHash
			}
		}
		if found == "" {
			return nil, fmt.Errorf("%q: no torrent with that id or info-hash", a)
		}
		out = append(out, found)
	}
	return out, nil
}

// newActionCmd builds rm, start and stop: one POST per torrent.
func newActionCmd(use, short, example, action string, body func() any, extra func(*cobra.Command)) *cobra.Command {
	var rf remoteFlags
	cmd := &cobra.Command{
		Use:     use + " [flags] ID|INFOHASH...",
		Short:   short,
		Example: example,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := rf.client()
			hashes, err := resolve(cmd.Context(), c, args)
			if err != nil {
				return err
			}
			for _, h := range hashes {
				if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/torrents/"+h+"/"+action, body(), nil); err != nil {
					return fmt.Errorf("%s %s: %w", use, h, err)
				}
			}
			return nil
		},
	}
	rf.register(cmd)
	if extra != nil {
		extra(cmd)
	}
	return cmd
}

func newRmCmd() *cobra.Command {
	var deleteData bool
	return newActionCmd("rm", "Remove torrents from a running daemon", "  sower rm 3\n  sower rm --delete-data 3 7", "remove",
		func() any { return map[string]bool{"delete_data": deleteData} },
		func(c *cobra.Command) {
			c.Flags().BoolVar(&deleteData, "delete-data", false, "also delete the downloaded files")
		})
}

func newStartCmd() *cobra.Command {
	return newActionCmd("start", "Start (resume) torrents of a running daemon", "  sower start 3", "start",
		func() any { return struct{}{} }, nil)
}

func newStopCmd() *cobra.Command {
	return newActionCmd("stop", "Stop (pause) torrents of a running daemon", "  sower stop 3", "stop",
		func() any { return struct{}{} }, nil)
}
