package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metainfo"
)

// torrentJSON is the stable output of `sower info --json` for a torrent
// file. Every key is always present (empty lists as [], an absent creation
// date as null) so that scripts need no existence checks; new keys may be
// added, existing ones never change meaning.
type torrentJSON struct {
	Kind         string     `json:"kind"` // "torrent"
	Name         string     `json:"name"`
	InfoHash     string     `json:"info_hash"` // 40 lower-case hex digits, v1 (SHA-1)
	TotalSize    int64      `json:"total_size"`
	PieceLength  int64      `json:"piece_length"`
	PieceCount   int        `json:"piece_count"`
	Private      bool       `json:"private"`
	CreationDate *string    `json:"creation_date"` // RFC 3339, UTC
	CreatedBy    string     `json:"created_by"`
	Comment      string     `json:"comment"`
	Files        []fileJSON `json:"files"`
	Trackers     [][]string `json:"trackers"` // tiers, BEP 12 order
	WebSeeds     []string   `json:"web_seeds"`
	HTTPSeeds    []string   `json:"http_seeds"`
	DHTNodes     []string   `json:"dht_nodes"`
	Magnet       string     `json:"magnet"`
}

// fileJSON is one file of the piece space, padding files included.
type fileJSON struct {
	Path    string `json:"path"` // slash-separated, starting with the torrent name
	Length  int64  `json:"length"`
	Offset  int64  `json:"offset"` // first byte in the piece space
	Padding bool   `json:"padding"`
}

// magnetJSON is the output of `sower info --json` for a magnet link: what
// the link itself holds, before any metadata is fetched.
type magnetJSON struct {
	Kind       string   `json:"kind"` // "magnet"
	Name       string   `json:"name"`
	InfoHash   string   `json:"info_hash"`
	TotalSize  int64    `json:"total_size"` // xl, 0 when the link does not say
	Trackers   []string `json:"trackers"`
	WebSeeds   []string `json:"web_seeds"`
	Peers      []string `json:"peers"`
	SelectOnly [][2]int `json:"select_only"` // BEP 53 inclusive file index ranges; [] means all
	Magnet     string   `json:"magnet"`
}

const infoJSONHelp = `
With --json, one JSON object is printed. For a torrent file:
  {"kind": "torrent", "name": str, "info_hash": hex, "total_size": int,
   "piece_length": int, "piece_count": int, "private": bool,
   "creation_date": RFC 3339 str or null, "created_by": str, "comment": str,
   "files": [{"path": "name/dir/file", "length": int, "offset": int, "padding": bool}],
   "trackers": [[url, ...], ...] (tiers), "web_seeds": [url], "http_seeds": [url],
   "dht_nodes": ["host:port"], "magnet": str}
For a magnet link:
  {"kind": "magnet", "name": str, "info_hash": hex, "total_size": int (0 if
   unknown), "trackers": [url], "web_seeds": [url], "peers": ["host:port"],
   "select_only": [[first, last], ...] (file index ranges; [] = all), "magnet": str}
Lists are [] when empty. Keys may be added in later versions, never changed.`

func newInfoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info [--json] TORRENT_FILE|MAGNET",
		Short: "Show what a .torrent file or magnet link describes",
		Long: `Show the name, info-hash, size, pieces, flags, files, trackers, web seeds and
DHT nodes of a .torrent file, or what a magnet link holds.
` + infoJSONHelp,
		Example: `  sower info photos.torrent
  sower info --json photos.torrent | jq .info_hash
  sower info 'magnet:?xt=urn:btih:...&dn=photos'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInfo(cmd.OutOrStdout(), args[0], asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object (format below)")
	return cmd
}

func runInfo(w io.Writer, arg string, asJSON bool) error {
	if strings.HasPrefix(strings.ToLower(arg), "magnet:") {
		mg, err := magnet.Parse(arg)
		if err != nil {
			return fmt.Errorf("magnet link: %w", err)
		}
		return showMagnet(w, mg, asJSON)
	}
	m, err := metainfo.Load(arg)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, torrentToJSON(m))
	}
	showTorrent(w, m)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

// orEmpty turns nil into an empty list, so JSON shows [] rather than null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func torrentToJSON(m *metainfo.MetaInfo) torrentJSON {
	j := torrentJSON{
		Kind:        "torrent",
		Name:        m.Info.Name,
		InfoHash:    hex.EncodeToString(m.InfoHash[:]),
		TotalSize:   m.Info.TotalLength(),
		PieceLength: m.Info.PieceLength,
		PieceCount:  m.Info.NumPieces(),
		Private:     m.Info.Private,
		CreatedBy:   m.CreatedBy,
		Comment:     m.Comment,
		Files:       []fileJSON{},
		Trackers:    orEmpty(m.Tiers()),
		WebSeeds:    orEmpty(m.WebSeeds()),
		HTTPSeeds:   orEmpty(m.HTTPSeeds),
		DHTNodes:    orEmpty(m.Nodes),
		Magnet:      m.Magnet(),
	}
	if !m.CreationDate.IsZero() {
		s := m.CreationDate.UTC().Format(time.RFC3339)
		j.CreationDate = &s
	}
	for _, e := range m.Info.FileEntries() {
		j.Files = append(j.Files, fileJSON{Path: e.Path, Length: e.Length, Offset: e.Offset, Padding: e.Padding})
	}
	return j
}

func showMagnet(w io.Writer, mg *magnet.Magnet, asJSON bool) error {
	sel := [][2]int{}
	var selText []string
	for _, r := range mg.SelectOnly {
		sel = append(sel, [2]int{r.First, r.Last})
		selText = append(selText, fmt.Sprintf("%d-%d", r.First, r.Last))
	}
	if asJSON {
		return writeJSON(w, magnetJSON{
			Kind:       "magnet",
			Name:       mg.Name,
			InfoHash:   hex.EncodeToString(mg.InfoHash[:]),
			TotalSize:  mg.Length,
			Trackers:   orEmpty(mg.Trackers),
			WebSeeds:   orEmpty(mg.WebSeeds),
			Peers:      orEmpty(mg.Peers),
			SelectOnly: sel,
			Magnet:     mg.String(),
		})
	}
	fmt.Fprintf(w, "magnet link (the files are known only once the metadata is fetched from peers)\n")
	fmt.Fprintf(w, "name:       %s\n", orDash(printable(mg.Name)))
	fmt.Fprintf(w, "info-hash:  %s\n", hex.EncodeToString(mg.InfoHash[:]))
	if mg.Length > 0 {
		fmt.Fprintf(w, "size:       %s (%d bytes)\n", formatSize(mg.Length), mg.Length)
	}
	if len(selText) > 0 {
		fmt.Fprintf(w, "files:      only %s\n", strings.Join(selText, ", "))
	}
	printList(w, "trackers", mg.Trackers)
	printList(w, "web seeds", mg.WebSeeds)
	printList(w, "peers", mg.Peers)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printList(w io.Writer, title string, l []string) {
	if len(l) == 0 {
		fmt.Fprintf(w, "%s: none\n", title)
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, s := range l {
		fmt.Fprintf(w, "  %s\n", printable(s))
	}
}

// printable makes text from a torrent safe to show on a terminal: control
// characters (which could drive the terminal) become '?', and invalid UTF-8
// becomes U+FFFD.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func showTorrent(w io.Writer, m *metainfo.MetaInfo) {
	in := &m.Info
	total := in.TotalLength()
	yesNo := map[bool]string{true: "yes (BEP 27: trackers only)", false: "no"}
	date := "-"
	if !m.CreationDate.IsZero() {
		date = m.CreationDate.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "name:         %s\n", printable(in.Name))
	fmt.Fprintf(w, "info-hash:    %s\n", hex.EncodeToString(m.InfoHash[:]))
	fmt.Fprintf(w, "size:         %s (%d bytes)\n", formatSize(total), total)
	fmt.Fprintf(w, "piece length: %s (%d bytes)\n", formatSize(in.PieceLength), in.PieceLength)
	fmt.Fprintf(w, "pieces:       %d\n", in.NumPieces())
	fmt.Fprintf(w, "private:      %s\n", yesNo[in.Private])
	fmt.Fprintf(w, "created:      %s\n", date)
	fmt.Fprintf(w, "created by:   %s\n", orDash(printable(m.CreatedBy)))
	fmt.Fprintf(w, "comment:      %s\n", orDash(printable(oneLine(m.Comment))))
	printFiles(w, in)
	tiers := m.Tiers()
	if len(tiers) == 0 {
		fmt.Fprintf(w, "trackers: none\n")
	} else {
		fmt.Fprintf(w, "trackers:\n")
		for i, t := range tiers {
			fmt.Fprintf(w, "  tier %d: %s\n", i+1, printable(strings.Join(t, " ")))
		}
	}
	printList(w, "web seeds", m.WebSeeds())
	if len(m.HTTPSeeds) > 0 {
		printList(w, "http seeds", m.HTTPSeeds)
	}
	printList(w, "DHT nodes", m.Nodes)
	fmt.Fprintf(w, "magnet:       %s\n", m.Magnet())
}

// printFiles draws the files as a tree with their sizes. Padding files are
// counted but not drawn: they are never written to disk.
func printFiles(w io.Writer, in *metainfo.Info) {
	if !in.IsMultiFile() {
		fmt.Fprintf(w, "files (1):\n  %s  %s\n", printable(in.Name), formatSize(in.Length))
		return
	}
	var shown, padding int
	for _, f := range in.Files {
		if f.IsPadding() {
			padding++
		} else {
			shown++
		}
	}
	if padding > 0 {
		fmt.Fprintf(w, "files (%d, plus %d padding):\n", shown, padding)
	} else {
		fmt.Fprintf(w, "files (%d):\n", shown)
	}
	fmt.Fprintf(w, "  %s/\n", printable(in.Name))
	// Files are in path order, so a folder is printed when the path first
	// leaves the previous file's folders.
	var prev []string
	for _, f := range in.Files {
		if f.IsPadding() {
			continue
		}
		dirs := f.Path[:len(f.Path)-1]
		common := 0
		for common < len(dirs) && common < len(prev) && dirs[common] == prev[common] {
			common++
		}
		for d := common; d < len(dirs); d++ {
			fmt.Fprintf(w, "  %s%s/\n", strings.Repeat("  ", d+1), printable(dirs[d]))
		}
		fmt.Fprintf(w, "  %s%s  %s\n", strings.Repeat("  ", len(dirs)+1), printable(f.Path[len(f.Path)-1]), formatSize(f.Length))
		prev = dirs
	}
}
