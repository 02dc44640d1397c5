package session_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
)

// Download a torrent from a .torrent file into a folder. Here the only
// peer is a seed on loopback given by address; with trackers in the
// torrent, or the DHT on (the default), peers are found without it.
func Example() {
	torrentFile, seed, stop := startExampleSeed() // a seed on loopback, for the example
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	s, err := session.New(session.Config{Listen: "127.0.0.1:0", NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	mi, err := metainfo.Load(torrentFile)
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "sower-example")
	defer os.RemoveAll(dir)
	t, err := s.AddTorrent(ctx, mi, session.TorrentOptions{Dir: dir, Peers: []netip.AddrPort{seed}})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	select {
	case <-t.Done():
		fmt.Println("complete:", mi.Info.Name)
	case <-t.Stopped():
		log.Fatal(t.Err()) // a full disk, say
	case <-ctx.Done():
		log.Fatal("timed out")
	}
	// Output: complete: example.bin
}

// Download a magnet link: join its swarm, fetch the info dictionary from
// its peers, then download as from a .torrent file.
func Example_magnet() {
	torrentFile, seed, stop := startExampleSeed()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	link := exampleMagnet(torrentFile, seed) // "magnet:?xt=urn:btih:...&x.pe=127.0.0.1:..."

	s, err := session.New(session.Config{Listen: "127.0.0.1:0", NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	m, err := magnet.Parse(link)
	if err != nil {
		log.Fatal(err)
	}
	swarm, err := s.Join(m.InfoHash, session.MagnetOptions(m))
	if err != nil {
		log.Fatal(err)
	}
	defer swarm.Leave()
	info, err := swarm.FetchMetadata(ctx)
	if err != nil {
		log.Fatal(err)
	}
	mi, err := session.MetaInfo(m, info)
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "sower-example")
	defer os.RemoveAll(dir)
	t, err := s.AddTorrent(ctx, mi, session.TorrentOptions{Dir: dir, Swarm: swarm,
		Wanted: session.Wanted(m, len(mi.Info.FileEntries()))})
	if err != nil {
		log.Fatal(err)
	}
	defer t.Close()
	select {
	case <-t.Done():
		fmt.Println("complete:", mi.Info.Name)
	case <-t.Stopped():
		log.Fatal(t.Err())
	case <-ctx.Done():
		log.Fatal("timed out")
	}
	// Output: complete: example.bin
}

// startExampleSeed writes 1 MiB of random data and a torrent of it, and
// seeds it from a session of its own on loopback.
func startExampleSeed() (torrentFile string, addr netip.AddrPort, stop func()) {
	dir, err := os.MkdirTemp("", "sower-example-seed")
	if err != nil {
		log.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	path := filepath.Join(dir, "example.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatal(err)
	}
	mi, err := metainfo.Build(context.Background(), path, metainfo.BuildOptions{PieceLength: 64 << 10}, nil)
	if err != nil {
		log.Fatal(err)
	}
	torrentFile = filepath.Join(dir, "example.torrent")
	raw, err := mi.Encode()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(torrentFile, raw, 0o644); err != nil {
		log.Fatal(err)
	}
	s, err := session.New(session.Config{Listen: "127.0.0.1:0", NoDHT: true})
	if err != nil {
		log.Fatal(err)
	}
	t, err := s.AddTorrent(context.Background(), mi, session.TorrentOptions{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.Port())
	return torrentFile, addr, func() {
		t.Close()
		s.Close()
		os.RemoveAll(dir)
	}
}

func exampleMagnet(torrentFile string, seed netip.AddrPort) string {
	mi, err := metainfo.Load(torrentFile)
	if err != nil {
		log.Fatal(err)
	}
	return fmt.Sprintf("magnet:?xt=urn:btih:%x&dn=%s&x.pe=%s", mi.InfoHash, mi.Info.Name, seed)
}
