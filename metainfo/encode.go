package metainfo

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sowerbt/sower/bencode"
	"github.com/sowerbt/sower/magnet"
)

// torrentFile is the outer dictionary as written by Encode. Fields are in
// key order; unknown keys of a parsed file are not kept.
type torrentFile struct {
	Announce     string             `bencode:"announce,omitempty"`
	AnnounceList [][]string         `bencode:"announce-list,omitempty"`
	Comment      string             `bencode:"comment,omitempty"`
	CreatedBy    string             `bencode:"created by,omitempty"`
	CreationDate int64              `bencode:"creation date,omitempty"`
	HTTPSeeds    []string           `bencode:"httpseeds,omitempty"`
	Info         bencode.RawMessage `bencode:"info"`
	Nodes        [][]any            `bencode:"nodes,omitempty"`
	URLList      []string           `bencode:"url-list,omitempty"`
}

// Encode serialises the torrent. The info value is InfoBytes written
// verbatim, so the info-hash of the result is InfoHash even for a file
// that was parsed with unsorted keys. Keys outside the info dictionary
// that this package does not model are dropped.
func (m *MetaInfo) Encode() ([]byte, error) {
	if len(m.InfoBytes) == 0 {
		return nil, errors.New("encode torrent: InfoBytes is empty")
	}
	t := torrentFile{
		Announce:     m.Announce,
		AnnounceList: m.AnnounceList,
		Comment:      m.Comment,
		CreatedBy:    m.CreatedBy,
		HTTPSeeds:    m.HTTPSeeds,
		Info:         m.InfoBytes,
		URLList:      m.URLList,
	}
	if !m.CreationDate.IsZero() {
		t.CreationDate = m.CreationDate.Unix()
	}
	for _, n := range m.Nodes {
		host, portStr, err := net.SplitHostPort(n)
		if err != nil {
			return nil, fmt.Errorf("encode torrent: node %q: %w", n, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("encode torrent: node %q: port must be 1..65535", n)
		}
		t.Nodes = append(t.Nodes, []any{host, int64(port)})
	}
	out, err := bencode.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode torrent: %w", err)
	}
	return out, nil
}

// infoDict is the v1 info dictionary as Build writes it, fields in key
// order.
type infoDict struct {
	Files       []fileDict `bencode:"files,omitempty"`
	Length      int64      `bencode:"length,omitempty"`
	Name        string     `bencode:"name"`
	PieceLength int64      `bencode:"piece length"`
	Pieces      string     `bencode:"pieces"`
	Private     int64      `bencode:"private,omitempty"`
}

type fileDict struct {
	Attr   string   `bencode:"attr,omitempty"`
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
}

// encodeInfo produces the canonical (sorted, minimal) encoding of info.
func encodeInfo(info *Info) ([]byte, error) {
	var b strings.Builder
	b.Grow(len(info.Pieces) * 20)
	for _, p := range info.Pieces {
		b.Write(p[:])
	}
	d := infoDict{
		Name:        info.Name,
		PieceLength: info.PieceLength,
		Pieces:      b.String(),
	}
	if info.Private {
		d.Private = 1
	}
	if info.IsMultiFile() {
		d.Files = make([]fileDict, len(info.Files))
		for i, f := range info.Files {
			d.Files[i] = fileDict{Attr: f.Attr, Length: f.Length, Path: f.Path}
		}
	} else {
		d.Length = info.Length
	}
	out, err := bencode.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode info: %w", err)
	}
	return out, nil
}

// Magnet returns a magnet URI for the torrent: the v1 info-hash (xt), the
// name (dn), the total size (xl), every tracker of every tier in order (tr)
// and the web seeds (ws), which is what a client needs to join the swarm
// and fetch the metadata from peers (BEP 9).
func (m *MetaInfo) Magnet() string {
	mg := magnet.Magnet{
		InfoHash: m.InfoHash,
		Name:     m.Info.Name,
		Length:   m.Info.TotalLength(),
		WebSeeds: m.WebSeeds(),
	}
	seen := make(map[string]bool)
	for _, tier := range m.Tiers() {
		for _, tr := range tier {
			if !seen[tr] {
				seen[tr] = true
				mg.Trackers = append(mg.Trackers, tr)
			}
		}
	}
	return mg.String()
}
