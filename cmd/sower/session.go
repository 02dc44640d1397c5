package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/sowerbt/sower/magnet"
	"github.com/sowerbt/sower/metainfo"
	"github.com/sowerbt/sower/session"
)

// openSession starts the session get and seed run their one torrent in.
// The DHT is on unless --no-dht or the torrent is private (BEP 27); nodes
// named by the torrent (its BEP 5 "nodes" key) join the bootstrap list,
// so a trackerless torrent works without flags.
func openSession(sf swarmFlags, private bool, nodes []string) (*session.Session, error) {
	listen, err := sf.listenAddr()
	if err != nil {
		return nil, err
	}
	enc, err := session.ParseEncryption(sf.encryption)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--encryption: %w", err)}
	}
	var bootstrap []string
	if len(sf.dhtBootstrap)+len(nodes) > 0 {
		bootstrap = append(append(bootstrap, sf.dhtBootstrap...), nodes...)
	}
	return session.New(session.Config{
		Listen:       listen,
		NoDHT:        sf.noDHT || private,
		DHTBootstrap: bootstrap,
		Encryption:   enc,
		Logger:       slog.Default(),
	})
}

// listenAddr is the peer listener's address from --listen or --port.
func (f *swarmFlags) listenAddr() (string, error) {
	if f.listen != "" {
		if f.portSet {
			return "", &usageError{errors.New("give --listen HOST:PORT or --port N, not both")}
		}
		if _, err := netip.ParseAddrPort(f.listen); err != nil {
			return "", &usageError{fmt.Errorf("--listen %q: want IP:PORT (e.g. 127.0.0.1:6881 or [::1]:0): %w", f.listen, err)}
		}
		return f.listen, nil
	}
	if f.port < 0 || f.port > 65535 {
		return "", &usageError{fmt.Errorf("--port %d: out of range", f.port)}
	}
	return fmt.Sprintf(":%d", f.port), nil
}

// peerAddrs parses --peer.
func (f *swarmFlags) peerAddrs() ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, s := range f.peers {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, &usageError{fmt.Errorf("--peer %q: want IP:PORT: %w", s, err)}
		}
		out = append(out, ap)
	}
	return out, nil
}

// fetchMetadata joins a magnet link's swarm (its trackers, x.pe peers,
// --peer and the DHT) and gets the info dictionary from its peers. The
// swarm is returned for the download to run in; the caller leaves it.
func fetchMetadata(ctx context.Context, s *session.Session, m *magnet.Magnet, peers []netip.AddrPort, quiet bool) (*metainfo.MetaInfo, *session.Swarm, error) {
	if !quiet {
		fmt.Fprintf(os.Stderr, "fetching metadata for %x from peers...\n", m.InfoHash)
	}
	o := session.MagnetOptions(m)
	o.Peers = append(o.Peers, peers...)
	w, err := s.Join(m.InfoHash, o)
	if err != nil {
		return nil, nil, err
	}
	info, err := w.FetchMetadata(ctx)
	if err != nil {
		w.Leave()
		if errors.Is(err, context.Canceled) {
			return nil, nil, errors.New("interrupted while fetching metadata")
		}
		return nil, nil, err
	}
	mi, err := session.MetaInfo(m, info)
	if err != nil {
		w.Leave()
		return nil, nil, err
	}
	return mi, w, nil
}
