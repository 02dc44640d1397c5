// Package metainfo reads, validates, writes and builds BitTorrent v1
// metainfo (.torrent) files as described by BEP 3, with the extensions
// clients meet in practice: multiple trackers (BEP 12), web seeds (BEP 19
// url-list and BEP 17 httpseeds), private torrents (BEP 27), DHT nodes
// (BEP 5), padding files and file attributes (BEP 47). Hybrid v1+v2
// torrents (BEP 52) are handled through their v1 part; v2-only torrents
// are rejected with ErrV2Only.
//
// # Tolerance
//
// Old torrent creators wrote dictionaries with unsorted keys, so the outer
// dictionary and the info dictionary are decoded with unsorted keys
// allowed. The info-hash is nevertheless always the SHA-1 of the info
// dictionary's bytes exactly as they appear in the file, never of a
// re-encoding, as BEP 3 demands. When an info dictionary carries
// "name.utf-8" or a file carries "path.utf-8" (written by creators that
// stored the legacy key in a local code page), the UTF-8 variant wins.
//
// # Safety
//
// Everything that becomes a file name is checked with ValidatePath, so a
// torrent cannot name files outside its download folder. Piece length is
// bounded by MaxPieceLength, sizes are checked for overflow, the piece
// count must match the total size, and Load refuses files larger than
// MaxFileSize, so hostile input gets an error naming the offending field
// rather than a panic or an unbounded allocation.
package metainfo

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sowerbt/sower/bencode"
)

// MaxPieceLength is the largest piece length accepted. Real torrents use at
// most 16 MiB (libtorrent caps at 128 MiB); 256 MiB leaves room for any sane
// creator while keeping a single piece buffer affordable for a peer.
const MaxPieceLength = 256 << 20

// MaxFileSize bounds the size of a .torrent file read by Load. The largest
// real torrents (hundreds of thousands of files or of pieces) stay well
// below it.
const MaxFileSize = 64 << 20

// ErrV2Only is returned for a BEP 52 torrent that has no v1 piece hashes:
// sower speaks only the v1 protocol, so it cannot download such a torrent.
var ErrV2Only = errors.New("v2-only torrents are not supported (no v1 \"pieces\" in the info dictionary)")

// MetaInfo is a parsed .torrent file. InfoBytes and InfoHash always
// describe the same bytes; Encode writes InfoBytes unchanged so that a
// re-written file keeps its info-hash.
type MetaInfo struct {
	Info         Info
	InfoBytes    bencode.RawMessage // the exact bytes of the info dict as they were in the file
	InfoHash     [20]byte           // SHA-1 of InfoBytes, never of a re-encoding
	Announce     string
	AnnounceList [][]string
	URLList      []string // BEP 19 web seeds (a single string or a list in the file)
	HTTPSeeds    []string // BEP 17
	Nodes        []string // "host:port" from the trackerless `nodes` key (BEP 5)
	Comment      string
	CreatedBy    string
	CreationDate time.Time // zero if absent
}

// Info is the content description shared by every peer of a swarm; its
// encoded form is what the info-hash identifies.
type Info struct {
	Name        string
	PieceLength int64
	Pieces      [][20]byte
	Private     bool
	Length      int64  // single-file
	Files       []File // multi-file (nil for single-file)
}

// File is one entry of a multi-file torrent. Path is relative to the
// torrent's top folder (Info.Name) and has been checked by ValidatePath.
type File struct {
	Path   []string
	Length int64
	Attr   string // BEP 47 attribute letters ("p" pad, "x", "h", "l"), unknown ones kept
}

// IsPadding reports whether the file is a BEP 47 padding file: its
// contents are zeros that need not be stored on disk.
func (f File) IsPadding() bool { return strings.Contains(f.Attr, "p") }

// IsMultiFile reports whether the torrent describes a folder of files
// rather than a single file.
func (i *Info) IsMultiFile() bool { return i.Files != nil }

// TotalLength is the size of the piece space: the sum of all file lengths,
// padding files included.
func (i *Info) TotalLength() int64 {
	if !i.IsMultiFile() {
		return i.Length
	}
	var n int64
	for _, f := range i.Files {
		n += f.Length
	}
	return n
}

// NumPieces is the number of pieces, which a parsed Info guarantees to
// equal ceil(TotalLength/PieceLength).
func (i *Info) NumPieces() int { return len(i.Pieces) }

// PieceSize is the length of piece p: PieceLength for all pieces but the
// last, which holds the remainder. It is 0 for an index out of range.
func (i *Info) PieceSize(p int) int64 {
	n := i.NumPieces()
	if p < 0 || p >= n {
		return 0
	}
	if p < n-1 {
		return i.PieceLength
	}
	return i.TotalLength() - int64(n-1)*i.PieceLength
}

// FileEntry is a file placed in the piece space, as storage sees it.
type FileEntry struct {
	// Path is slash-separated and relative to the download folder: the
	// torrent name for a single-file torrent, "name/dir/file" otherwise.
	Path    string
	Length  int64
	Offset  int64 // first byte of the file in the piece space
	Padding bool  // BEP 47 padding: zeros, not to be written to disk
}

// FileEntries lists the files in piece-space order with their global
// offsets, so that storage can map a piece onto the files it spans.
func (i *Info) FileEntries() []FileEntry {
	if !i.IsMultiFile() {
		return []FileEntry{{Path: i.Name, Length: i.Length}}
	}
	out := make([]FileEntry, 0, len(i.Files))
	var off int64
	for _, f := range i.Files {
		p := i.Name + "/" + strings.Join(f.Path, "/")
		out = append(out, FileEntry{Path: p, Length: f.Length, Offset: off, Padding: f.IsPadding()})
		off += f.Length
	}
	return out
}

// Tiers returns the trackers grouped in tiers as BEP 12 orders them: the
// announce-list when present, otherwise the single announce URL as one
// tier, otherwise nothing (a trackerless torrent). The result is a copy.
func (m *MetaInfo) Tiers() [][]string {
	var out [][]string
	for _, tier := range m.AnnounceList {
		var t []string
		for _, u := range tier {
			if u != "" {
				t = append(t, u)
			}
		}
		if len(t) > 0 {
			out = append(out, t)
		}
	}
	if len(out) > 0 {
		return out
	}
	if m.Announce != "" {
		return [][]string{{m.Announce}}
	}
	return nil
}

// WebSeeds returns the BEP 19 web seed URLs (url-list). BEP 17 httpseeds
// speak a different protocol and are left in HTTPSeeds.
func (m *MetaInfo) WebSeeds() []string { return slices.Clone(m.URLList) }
