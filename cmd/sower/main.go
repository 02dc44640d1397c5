// Command sower is a BitTorrent client and tracker. Each feature is a
// subcommand (create, info, get, seed, ...); `sower COMMAND --help`
// describes one. Results go to stdout, progress, logs and errors to
// stderr, so the output of a command can be piped or parsed.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is reported by `sower --version` and written as the creator of
// new torrents.
const version = "0.1.0"

// Exit codes: scripts can tell a mistake in the command line from a failure
// of the work itself.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks a mistake in the command line, for which the usage of
// the command is shown after the error.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// run executes the command line args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "sower: %s\n", oneLine(err.Error()))
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command ") {
		fmt.Fprint(stderr, cmd.UsageString())
		return exitUsage
	}
	return exitFailure
}

// oneLine keeps an error to a single line, as the command line promises.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// newRootCmd assembles the command tree. To add a command, add its
// constructor to the AddCommand call.
func newRootCmd() *cobra.Command {
	var (
		verbose     bool
		cpuProfile  string
		traceFile   string
		stopProfile = func() {}
	)
	root := &cobra.Command{
		Use:   "sower",
		Short: "BitTorrent client and tracker",
		Long: `sower creates, inspects, downloads and seeds torrents, and runs trackers.

Results are printed on stdout; progress, logs and errors on stderr.`,
		Example:       "  sower create --tracker http://127.0.0.1:6969/announce ./photos\n  sower info photos.torrent",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			setupLogging(cmd.ErrOrStderr(), verbose)
			var err error
			stopProfile, err = startProfiles(cpuProfile, traceFile)
			return err
		},
		PersistentPostRun: func(*cobra.Command, []string) { stopProfile() },
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "print debug logs on stderr")
	// For finding where the time goes in a benchmark; hidden from --help.
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (pprof) to this file")
	root.PersistentFlags().StringVar(&traceFile, "trace", "", "write an execution trace (go tool trace) to this file")
	root.PersistentFlags().MarkHidden("trace")
	root.PersistentFlags().MarkHidden("cpuprofile")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	root.AddCommand(newCreateCmd(), newInfoCmd(), newGetCmd(), newSeedCmd(), newDemoCmd())
	root.AddCommand(newTrackerCmd())
	root.AddCommand(newScrapeCmd())
	root.AddCommand(newDHTCmd())
	root.AddCommand(newDaemonCmd(), newAddCmd(), newLsCmd(), newRmCmd(), newStartCmd(), newStopCmd())

	wrapArgs(root)
	return root
}

// wrapArgs makes wrong argument counts usage mistakes, in every command
// and subcommand, so they are reported like flag errors.
func wrapArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		if sub.Args != nil {
			check := sub.Args
			sub.Args = func(cmd *cobra.Command, args []string) error {
				if err := check(cmd, args); err != nil {
					return &usageError{err}
				}
				return nil
			}
		}
		wrapArgs(sub)
	}
}

// setupLogging sends slog output to stderr: warnings and errors normally,
// everything with -v. Timestamps are kept only in verbose mode, where they
// help to follow a long run.
func setupLogging(w io.Writer, verbose bool) {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if !verbose && len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, opts)))
}
