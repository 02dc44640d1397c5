package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sowerbt/sower/metainfo"
)

// Mode is one way of running the swarm.
type Mode string

// Modes. End-game policies only exist for Sower; the others run their
// own default end game.
const (
	ModeAllRequested Mode = "endgame=all-requested"
	ModeAllStarted   Mode = "endgame=all-started"
	ModeDefault      Mode = "default"
	ModeSuperSeed    Mode = "super-seed"
)

// Scenario is one swarm: a rate-limited seed and N leechers of one file.
type Scenario struct {
	Leechers int
	Rate     int64  // the seed's upload limit, bytes per second
	Data     string // the file, in its own folder
	Torrent  string // its .torrent file
	Meta     *metainfo.MetaInfo
	Size     int64
	Work     string        // scratch folder for this run
	Timeout  time.Duration // for the download phase
	Debug    bool          // verbose logs into Work
	Slots    int           // Sower's upload slots per peer (engine.Config.MaxUnchoked); 0 is the engine's default
}

// Ideal is the fastest any swarm can finish: every byte must leave the
// seed once, at its rate.
func (s *Scenario) Ideal() time.Duration {
	return time.Duration(float64(s.Size) / float64(s.Rate) * float64(time.Second))
}

// Result is what one run measured.
type Result struct {
	Impl     string
	Mode     Mode
	Leechers int
	Size     int64
	Ideal    time.Duration
	First    time.Duration // first leecher complete, from the release
	Median   time.Duration
	Last     time.Duration
	SeedUp   int64 // payload the seed uploaded
	TotalUp  int64 // payload everyone uploaded
	Wasted   int64 // -1 when the program does not count it
	Note     string
}

// Copies is the seed's upload in copies of the file.
func (r Result) Copies() float64 { return float64(r.SeedUp) / float64(r.Size) }

// Slowdown is the last completion over the ideal time.
func (r Result) Slowdown() float64 { return r.Last.Seconds() / r.Ideal.Seconds() }

// Excess is what everyone uploaded beyond the N copies needed: redundant
// blocks, whatever the program counts itself.
func (r Result) Excess() int64 { return r.TotalUp - int64(r.Leechers)*r.Size }

// summarise fills First, Median and Last from the completion times.
func (r *Result) summarise(done []time.Duration) {
	if len(done) == 0 {
		return
	}
	d := slices.Clone(done)
	slices.Sort(d)
	r.First, r.Median, r.Last = d[0], d[len(d)/2], d[len(d)-1]
}

// parseSize reads a byte count with an optional KiB, MiB or GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number with an optional KiB, MiB or GiB suffix", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// formatSize writes n in MiB (or KiB/B when smaller).
func formatSize(n int64) string {
	switch {
	case n >= 1<<20 || n <= -(1<<20):
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10 || n <= -(1<<10):
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	default:
		return strconv.FormatInt(n, 10) + " B"
	}
}

// makeData writes size pseudo-random bytes (seeded, so every run of the
// same size uses the same file) to dir/swarm-SIZE.bin and builds its
// torrent with the given piece length, with no tracker: every program is
// told its peers.
func makeData(ctx context.Context, dir string, size, pieceLen int64) (data, torrent string, mi *metainfo.MetaInfo, err error) {
	src := filepath.Join(dir, fmt.Sprintf("data-%d", size))
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", "", nil, fmt.Errorf("make data: %w", err)
	}
	data = filepath.Join(src, fmt.Sprintf("swarm-%d.bin", size))
	if err := writeRandom(data, size); err != nil {
		return "", "", nil, fmt.Errorf("make data: %w", err)
	}
	mi, err = metainfo.Build(ctx, data, metainfo.BuildOptions{PieceLength: pieceLen, CreatedBy: "sower bench/swarm", NoDate: true}, nil)
	if err != nil {
		return "", "", nil, fmt.Errorf("make torrent: %w", err)
	}
	enc, err := mi.Encode()
	if err != nil {
		return "", "", nil, fmt.Errorf("make torrent: %w", err)
	}
	torrent = filepath.Join(dir, fmt.Sprintf("swarm-%d.torrent", size))
	if err := os.WriteFile(torrent, enc, 0o644); err != nil {
		return "", "", nil, fmt.Errorf("make torrent: %w", err)
	}
	return data, torrent, mi, nil
}

func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(uint64(size), 0x5357524d))
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], r.Uint64())
		}
		n := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}
