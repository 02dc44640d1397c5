package bencode

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

type benchFile struct {
	Length int64    `bencode:"length"`
	Path   []string `bencode:"path"`
	MD5    string   `bencode:"md5sum,omitempty"`
}

type benchInfo struct {
	Name        string      `bencode:"name"`
	PieceLength int64       `bencode:"piece length"`
	Pieces      []byte      `bencode:"pieces"`
	Private     bool        `bencode:"private,omitempty"`
	Files       []benchFile `bencode:"files"`
}

type benchTorrent struct {
	Announce     string     `bencode:"announce"`
	AnnounceList [][]string `bencode:"announce-list"`
	Comment      string     `bencode:"comment,omitempty"`
	CreatedBy    string     `bencode:"created by,omitempty"`
	CreationDate int64      `bencode:"creation date"`
	Info         benchInfo  `bencode:"info"`
	URLList      []string   `bencode:"url-list,omitempty"`
}

// benchTorrentValue builds a multi-file torrent of about 100 KB: 4000
// piece hashes and 300 files in nested directories.
func benchTorrentValue() benchTorrent {
	pieces := make([]byte, 4000*20)
	for i := range pieces {
		pieces[i] = byte(i*131 + i>>8)
	}
	files := make([]benchFile, 300)
	for i := range files {
		files[i] = benchFile{
			Length: int64(1<<20 + i*4099),
			Path:   []string{fmt.Sprintf("disc %d", i/50), fmt.Sprintf("track %03d - some title.flac", i)},
		}
	}
	return benchTorrent{
		Announce:     "http://tracker.example.org:6969/announce",
		AnnounceList: [][]string{{"http://tracker.example.org:6969/announce"}, {"udp://backup.example.net:1337/announce", "udp://other.example.com:80"}},
		Comment:      "benchmark torrent",
		CreatedBy:    "sower",
		CreationDate: 1700000000,
		Info:         benchInfo{Name: "collection", PieceLength: 1 << 18, Pieces: pieces, Files: files},
		URLList:      []string{"https://mirror.example.org/collection/"},
	}
}

func BenchmarkDecodeTorrent(b *testing.B) {
	data, err := Marshal(benchTorrentValue())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var t benchTorrent
		if err := Unmarshal(data, &t); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeTorrent(b *testing.B) {
	v := benchTorrentValue()
	data, err := Marshal(&v)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(&v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTorrentAny(b *testing.B) {
	data, err := Marshal(benchTorrentValue())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v any
		if err := Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTorrentRaw(b *testing.B) {
	data, err := Marshal(benchTorrentValue())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var v struct {
			Info RawMessage `bencode:"info"`
		}
		if err := Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecoderSmallMessages(b *testing.B) {
	msg, err := Marshal(map[string]any{"id": "abcdefghij0123456789", "port": 6881, "t": "aa", "y": "q"})
	if err != nil {
		b.Fatal(err)
	}
	stream := bytes.Repeat(msg, 1000)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		dec := NewDecoder(bytes.NewReader(stream))
		for {
			var v struct {
				ID   [20]byte `bencode:"id"`
				Port uint16   `bencode:"port"`
			}
			if err := dec.Decode(&v); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}
