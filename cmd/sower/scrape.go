package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/tracker"
)

func newScrapeCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "scrape TRACKER_URL INFOHASH...",
		Short: "Ask a tracker for the seeder, leecher and download counts of torrents",
		Long: `Ask a tracker (http://, https:// or udp:// announce URL) for the counts of
torrents given by their hex info-hash. One line per torrent on stdout:
  INFOHASH seeders=N leechers=N downloaded=N
or "INFOHASH unknown" when an HTTP tracker does not know it (UDP trackers
answer zeros instead).`,
		Example: "  sower scrape http://127.0.0.1:6969/announce 0123456789abcdef0123456789abcdef01234567",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			hashes := make([][20]byte, 0, len(args)-1)
			for i, a := range args[1:] {
				b, err := hex.DecodeString(a)
				if err != nil || len(b) != 20 {
					return &usageError{fmt.Errorf("info-hash %d %q: want 40 hex digits", i+1, a)}
				}
				hashes = append(hashes, [20]byte(b))
			}
			c := &tracker.Client{HTTPTimeout: timeout, UserAgent: "sower/" + version}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			st, err := c.Scrape(ctx, args[0], hashes)
			if err != nil {
				return fmt.Errorf("scrape %s: %w", args[0], err)
			}
			out := cmd.OutOrStdout()
			for _, h := range hashes {
				hx := hex.EncodeToString(h[:])
				s, ok := st[h]
				if !ok {
					fmt.Fprintf(out, "%s unknown\n", hx)
					continue
				}
				fmt.Fprintf(out, "%s seeders=%d leechers=%d downloaded=%d\n", hx, s.Complete, s.Incomplete, s.Downloaded)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
	return cmd
}
